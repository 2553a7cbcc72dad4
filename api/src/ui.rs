//! The operator console: the built single-page app (`ui/dist`) served at `/`.
//!
//! Its files are public (the console asks for the operator token itself and sends it on every
//! API call), so they sit outside the token check. A path that is no file is a client route
//! of the app and gets `index.html`; a missing file under `/assets/` stays a 404 so that a
//! stale page does not load HTML as a script.

use std::path::Path;

use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

use crate::AppState;

/// Serves `dir` behind every route `app` already has.
pub fn mount(app: Router<AppState>, dir: &Path) -> Router<AppState> {
    let index = ServeFile::new(dir.join("index.html"));
    app.nest_service("/assets", ServeDir::new(dir.join("assets")))
        .fallback_service(ServeDir::new(dir).fallback(index))
}

/// True when `dir` holds a built console (an `index.html`).
pub fn is_built(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}
