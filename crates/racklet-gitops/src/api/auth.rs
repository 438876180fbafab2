//! Who a request is: the webhook's signature (`X-Hub-Signature-256`, keyed with the
//! webhook secret), the API token (a bearer token: the CLI and automation), or a
//! signed-in account's session cookie ([`super::session`]); and signing in, recorded in
//! the event log.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{session, Api};
use crate::store::StateStore;

/// True when `signature` (`sha256=HEX`) is the HMAC-SHA256 of `body` keyed with `secret`.
fn signed_by(secret: &str, body: &[u8], signature: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some(given) = signature
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2_std::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&given).is_ok()
}

pub(super) async fn auth<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path() == "/v1/webhook" {
        if let Some(sig) = req
            .headers()
            .get("X-Hub-Signature-256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
        {
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
                return StatusCode::PAYLOAD_TOO_LARGE.into_response();
            };
            if api.webhook_secret.is_empty() || !signed_by(&api.webhook_secret, &bytes, &sig) {
                return (
                    StatusCode::UNAUTHORIZED,
                    Json(serde_json::json!({"error": "the webhook signature does not match; set the webhook's secret to the contents of the control plane's webhook-secret file"})),
                )
                    .into_response();
            }
            let req = Request::from_parts(parts, axum::body::Body::from(bytes));
            return next.run(req).await;
        }
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compare without an early exit on the first differing byte.
    let same = !api.token.is_empty()
        && given.len() == api.token.len()
        && given
            .bytes()
            .zip(api.token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    let caller = if same {
        session::Caller::Token
    } else if !given.is_empty() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "wrong bearer token; it is in the control plane's token file"})),
        )
            .into_response();
    } else {
        // HTTP/1.1 names the host in a header, HTTP/2 in the request's authority.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default()
            .to_string();
        match session::authorise(
            &api.logins,
            req.method(),
            req.uri().path(),
            &host,
            req.headers(),
        ) {
            Ok(caller) => caller,
            Err((status, error)) => {
                return (status, Json(serde_json::json!({ "error": error }))).into_response()
            }
        }
    };
    let mut req = req;
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// `POST /v1/session`: signs in ([`session::sign_in`]) and records it in the event log,
/// and a name's lock-out after repeated failures; single wrong passwords are not recorded
/// (nor refusals while locked, which cost nothing to send), so nobody can flood the log.
pub(super) async fn sign_in<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    Json(request): Json<session::SignIn>,
) -> Response {
    let name = request.user_name().to_string();
    let (response, user, outcome) = session::sign_in(&api.logins, request).await;
    let event = match outcome {
        Ok(role) => Some((
            crate::events::EventReason::SignedIn,
            format!("{user} signed in ({})", role.as_str()),
        )),
        Err(racklet_accounts::LoginError::BadCredentials) if api.logins.is_locked(&name) => Some((
            crate::events::EventReason::SignInRefused,
            format!(
                "sign-in as {user:?} locked for {} s after {} wrong passwords",
                racklet_accounts::LOCKOUT_DURATION.as_secs(),
                racklet_accounts::LOCKOUT_THRESHOLD
            ),
        )),
        Err(_) => None,
    };
    if let Some((reason, note)) = event {
        if let Err(e) = api.plane.events().record(reason, &note).await {
            tracing::warn!("cannot record a sign-in in the event log: {e}");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signatures_are_checked_against_the_secret() {
        use hmac::{Hmac, Mac};
        let token = "ab".repeat(32);
        let body = br#"{"ref":"refs/heads/main"}"#;
        let mut mac = Hmac::<sha2_std::Sha256>::new_from_slice(token.as_bytes()).expect("key");
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signed_by(&token, body, &good));
        assert!(!signed_by(&token, b"{}", &good), "another body");
        assert!(!signed_by(&"cd".repeat(32), body, &good), "another secret");
        assert!(!signed_by(&token, body, "sha1=00"), "another scheme");
    }
}
