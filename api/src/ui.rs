//! The operator console: the built single-page app (`ui/dist`) served at `/`.
//!
//! Its files are public (the console asks for the operator token itself and sends it on every
//! API call), so they sit outside the token check. A path that is no file is a client route
//! of the app and gets `index.html`; a missing file under `/assets/` stays a 404 so that a
//! stale page does not load HTML as a script, and unknown paths under the API prefixes
//! (`/api`, `/v1`) keep their problem-document 404.

use std::convert::Infallible;
use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::AppState;

/// Path prefixes that never fall back to the console.
const API_PREFIXES: &[&str] = &["/api/", "/v1/"];

/// Serves `dir` behind every route `app` already has.
pub fn mount(app: Router<AppState>, dir: &Path) -> Router<AppState> {
    let files = ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")));
    app.nest_service("/assets", ServeDir::new(dir.join("assets")))
        .fallback_service(tower::service_fn(move |req: Request| {
            let files = files.clone();
            async move { Ok::<Response, Infallible>(console(files, req).await) }
        }))
}

async fn console(files: ServeDir<ServeFile>, req: Request) -> Response {
    let path = req.uri().path();
    if path == "/api" || path == "/v1" || API_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return crate::routes::ops::not_found().await.into_response();
    }
    match files.oneshot(req).await {
        Ok(res) => res.map(Body::new),
        Err(never) => match never {},
    }
}

/// True when `dir` holds a built console (an `index.html`).
pub fn is_built(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}
