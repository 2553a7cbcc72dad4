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

#[tokio::test]
async fn the_client_sends_its_user_agent_and_a_token_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A bare HTTP endpoint that records the raw request head.
    let listener = ok(tokio::net::TcpListener::bind("127.0.0.1:0").await, "bind");
    let addr = ok(listener.local_addr(), "addr");
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = br#"{"user_data":[]}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        socket
            .write_all(answer.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        socket.write_all(body).await.map_err(|e| e.to_string())?;
        Ok::<String, String>(String::from_utf8_lossy(&head).to_lowercase())
    });
    let client = client_for(client_config(&format!("http://{addr}")));
    // Any call will do; a DELETE has no body to decode.
    ok(client.delete_server(ZONE, "abc").await, "delete");
    let head = ok(ok(server.await.map_err(|e| e.to_string()), "join"), "head");
    assert!(
        head.starts_with("delete /instance/v1/zones/fr-par-2/servers/abc http/1.1"),
        "{head}"
    );
    assert!(head.contains("user-agent: inferplane/"), "{head}");
    assert!(
        head.contains(&format!("x-auth-token: {}", KEY.to_lowercase())),
        "{head}"
    );
}
