//! The secret key never appears in Debug output, errors or the simulator's state.

use inferplane_scaleway::SecretKey;
use inferplane_scaleway::sim::SimConfig;

use crate::support::*;

#[tokio::test]
async fn the_key_never_appears_in_debug_output() {
    let env = env().await;
    let config = client_config(env.sim.base_url());
    let debug = format!("{config:?} {:?} {config:#?}", env.client);
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("[redacted]"));
    assert_eq!(SecretKey::new(KEY).to_string(), "[redacted]");

    let sim_config = SimConfig::default().with_secret_key(SecretKey::new(KEY));
    let debug = format!("{sim_config:?}");
    assert!(!debug.contains(KEY), "{debug}");

    // Errors built from the simulator's answers carry no key either.
    let err = env
        .client
        .get_server(ZONE, "missing")
        .await
        .map(|_| ())
        .err();
    let text = format!(
        "{err:?} {}",
        err.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    assert!(!text.contains(KEY));
    // Nor does the simulator's state.
    let state = ok(serde_json::to_string(&env.sim.state()), "state json");
    assert!(!state.contains(KEY));
}
