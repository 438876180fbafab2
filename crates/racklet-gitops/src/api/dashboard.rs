//! The dashboard's files (`racklet_dashboard`, embedded), served without a session: the
//! page asks the API for everything else. Every answer carries the Content-Security-Policy
//! (no inline script, nothing from elsewhere, no framing) and headers that keep browsers
//! from guessing types or sending the URL elsewhere.

use axum::extract::Path as UrlPath;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use racklet_dashboard::{Asset, CONTENT_SECURITY_POLICY};

fn serve(asset: Asset) -> Response {
    let mut r = asset.bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The page is small and changes with the binary: always ask.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /`: the page.
pub(crate) async fn index() -> Response {
    serve(racklet_dashboard::INDEX)
}

/// `GET /assets/NAME`: its script and styles.
pub(crate) async fn asset(UrlPath(name): UrlPath<String>) -> Response {
    match racklet_dashboard::asset(&name) {
        Some(a) => serve(a),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
