//! Signing in to the control plane, the dashboard's door: accounts with roles
//! (Administrator, Operator, ReadOnly; `racklet_accounts`: argon2 hashes, lock-out after
//! repeated failures, the first admin password written once to an owner-only file) and
//! sessions held in a cookie (`HttpOnly`, `Secure`, `SameSite=Strict`).
//!
//! A request authenticated by its session cookie must, when it changes anything (any
//! method but GET and HEAD), also carry the session's CSRF token in `X-CSRF-Token`: the
//! page reads it from `GET /v1/session`, which a cross-site page cannot. The API token
//! (the CLI, automation) is not a cookie, so it needs none. What a role may do is decided
//! here, for every route, so a control the dashboard shows disabled is refused by the
//! server as well.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use racklet_accounts::{Accounts, LoginError, Role, Session, Verifier, SESSION_TIMEOUT};
use serde::Deserialize;

/// The email domain of a signed-in account's commits (`NAME@racklet.invalid`: the
/// account has no address; `.invalid` can never be one).
pub const ACCOUNT_EMAIL_DOMAIN: &str = "racklet.invalid";

/// The session cookie's name. `__Host-`: the browser takes it only from this host, over
/// HTTPS, for every path, so no sibling subdomain can plant one.
pub const COOKIE: &str = "__Host-racklet-session";
/// The header a cookie-authenticated change carries its CSRF token in.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// Accounts and their sessions.
pub(crate) struct Logins {
    accounts: Mutex<Accounts>,
    verifier: Verifier,
}

impl Logins {
    /// The accounts in `dir` (made on first start, with `admin`): and the file the first
    /// admin password was written to, on first start only.
    pub(crate) fn open(
        dir: &Path,
    ) -> Result<(Logins, Option<PathBuf>), racklet_accounts::AccountError> {
        let (accounts, first) = Accounts::open(dir)?;
        Ok((
            Logins {
                accounts: Mutex::new(accounts),
                verifier: Verifier::default(),
            },
            first,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether sign-ins as `name` are locked after repeated failures.
    pub(crate) fn is_locked(&self, name: &str) -> bool {
        self.lock().is_locked(name)
    }

    /// The session whose token `headers`' cookie carries, if it is open.
    pub(crate) fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let token = cookie(headers, COOKIE)?;
        self.lock().session_by_token(token)
    }
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The API token: the CLI and automation, with every right.
    Token,
    /// A signed-in account.
    User { name: String, role: Role },
}

/// The least role a request needs: accounts are an Administrator's; otherwise reading
/// needs an account, and changing anything (power, actions, commits, syncs) or typing
/// into a node's serial console an Operator.
pub fn required_role(method: &Method, path: &str) -> Role {
    let console = path.starts_with("/v1/nodes/") && path.ends_with("/console");
    if path == "/v1/session" {
        Role::ReadOnly // every account may sign itself out
    } else if path == "/v1/accounts" || path.starts_with("/v1/accounts/") {
        Role::Administrator
    } else if console {
        Role::Operator
    } else if method == Method::GET || method == Method::HEAD {
        Role::ReadOnly
    } else {
        Role::Operator
    }
}

/// The value of cookie `name` in `headers`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a cookie-authenticated request may go ahead: a change carries the session's
/// CSRF token.
pub(crate) fn csrf_ok(method: &Method, headers: &HeaderMap, session: &Session) -> bool {
    if method == Method::GET || method == Method::HEAD {
        return true;
    }
    let given = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    racklet_accounts::constant_time_eq(given.as_bytes(), session.csrf_token().as_bytes())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    #[serde(rename = "UserName")]
    user: String,
    #[serde(rename = "Password")]
    password: String,
}

impl SignIn {
    pub(crate) fn user_name(&self) -> &str {
        &self.user
    }
}

fn who(session: &Session) -> serde_json::Value {
    serde_json::json!({
        "user": session.user,
        "role": session.role.as_str(),
        "csrfToken": session.csrf_token(),
        "timeoutSeconds": SESSION_TIMEOUT.as_secs(),
    })
}

/// The session cookie: no expiry of its own (the server ends a session after
/// [`SESSION_TIMEOUT`] without use, or at sign-out); `ending` clears it.
fn set_cookie(value: &str, ending: bool) -> HeaderValue {
    let end = if ending { "; Max-Age=0" } else { "" };
    let c = format!("{COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Strict{end}");
    HeaderValue::from_str(&c).unwrap_or_else(|_| {
        HeaderValue::from_static("__Host-racklet-session=; Path=/; Secure; Max-Age=0")
    })
}

/// `POST /v1/session` `{"UserName", "Password"}`: signs in; the session is in the cookie,
/// the answer says who, with which role, and the CSRF token. Also returns what happened,
/// for the event log: the user name (shortened, printable) and the role or the refusal.
pub(crate) async fn sign_in(
    logins: &Logins,
    s: SignIn,
) -> (Response, String, Result<Role, LoginError>) {
    let shown: String = s
        .user
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    match logins
        .verifier
        .check(&logins.accounts, &s.user, &s.password)
        .await
    {
        Ok(role) => {
            let session = logins.lock().open_session(&s.user, role);
            let mut r = (StatusCode::CREATED, Json(who(&session))).into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, set_cookie(&session.token, false));
            (r, shown, Ok(role))
        }
        Err(e) => (refused_login(e), shown, Err(e)),
    }
}

fn refused_login(e: LoginError) -> Response {
    let message = match e {
        LoginError::BadCredentials => "wrong user name or password",
        LoginError::Locked => "too many failed sign-ins: this account is locked for a few minutes",
    };
    (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"error": message})),
    )
        .into_response()
}

/// `GET /v1/session`: who the request acts as; for a signed-in account also its CSRF
/// token (a page reloads it after a refresh).
pub(crate) async fn current(
    State(logins): State<std::sync::Arc<Logins>>,
    req: Request,
) -> Response {
    match req.extensions().get::<Caller>() {
        Some(Caller::User { .. }) => match logins.session(req.headers()) {
            Some(session) => Json(who(&session)).into_response(),
            None => StatusCode::UNAUTHORIZED.into_response(),
        },
        _ => Json(
            serde_json::json!({"user": null, "role": Role::Administrator.as_str(), "token": true}),
        )
        .into_response(),
    }
}

/// `DELETE /v1/session`: signs out (the session ends; the cookie is cleared).
pub(crate) async fn sign_out(
    State(logins): State<std::sync::Arc<Logins>>,
    headers: HeaderMap,
) -> Response {
    if let Some(session) = logins.session(&headers) {
        logins.lock().close_session(&session.id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", true));
    r
}

/// What the auth layer decides for a request that carries no API token: the caller, or
/// the refusal (its status and why).
pub(crate) fn authorise(
    logins: &Logins,
    method: &Method,
    path: &str,
    host: &str,
    headers: &HeaderMap,
) -> Result<Caller, (StatusCode, String)> {
    let refuse = |status: StatusCode, message: String| Err((status, message));
    let Some(session) = logins.session(headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "sign in (POST /v1/session) or give the API token as a bearer token (it is in the control plane's token file)".into(),
        );
    };
    // A browser names the page a request comes from; with a session cookie it must be
    // this one (a WebSocket handshake, which no CSRF header accompanies, included).
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.to_str().ok() != Some(format!("https://{host}").as_str()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "a request with a session cookie must come from the dashboard's own pages".into(),
            );
        }
    }
    if !csrf_ok(method, headers, &session) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("a change made with a session cookie needs the session's CSRF token in {CSRF_HEADER} (GET /v1/session gives it)"),
        );
    }
    let needed = required_role(method, path);
    if session.role < needed {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "{} is {}; this needs {} or above",
                session.user,
                session.role.as_str(),
                needed.as_str()
            ),
        );
    }
    Ok(Caller::User {
        name: session.user,
        role: session.role,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccount {
    #[serde(rename = "UserName")]
    user: String,
    #[serde(rename = "Password")]
    password: String,
    #[serde(rename = "RoleId")]
    role: String,
}

/// Shortest password an account may be given.
pub const MIN_PASSWORD: usize = 12;

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// `GET /v1/accounts`: the accounts, their roles and whether they are locked out.
pub(crate) async fn accounts(State(logins): State<std::sync::Arc<Logins>>) -> Response {
    let a = logins.lock();
    let items: Vec<serde_json::Value> = a
        .list()
        .into_iter()
        .map(|acc| {
            serde_json::json!({
                "UserName": acc.name,
                "RoleId": acc.role.as_str(),
                "Enabled": acc.enabled,
                "Locked": a.is_locked(&acc.name),
            })
        })
        .collect();
    Json(serde_json::json!({ "items": items })).into_response()
}

/// `POST /v1/accounts` `{"UserName", "Password", "RoleId"}`: a new account.
pub(crate) async fn create_account(
    State(logins): State<std::sync::Arc<Logins>>,
    Json(n): Json<NewAccount>,
) -> Response {
    let Some(role) = Role::parse(&n.role) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "RoleId {:?} is no role; use Administrator, Operator or ReadOnly",
                n.role
            ),
        );
    };
    let name_ok = !n.user.is_empty()
        && n.user.len() <= 32
        && n.user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !name_ok {
        return error(
            StatusCode::BAD_REQUEST,
            "UserName must be 1 to 32 letters, digits, '-', '_' or '.'".into(),
        );
    }
    if n.password.chars().count() < MIN_PASSWORD {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the password needs at least {MIN_PASSWORD} characters"),
        );
    }
    if logins.lock().get(&n.user).is_some() {
        return error(
            StatusCode::CONFLICT,
            format!("an account {:?} exists", n.user),
        );
    }
    // Hashed before the accounts are locked: argon2 takes tens of milliseconds.
    let hash = match logins.verifier.hash(&n.password).await {
        Ok(h) => h,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match logins.lock().create(&n.user, hash, role) {
        Ok(()) => (
            StatusCode::CREATED,
            Json(serde_json::json!({"UserName": n.user, "RoleId": role.as_str()})),
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
