//! Signing in to the control plane (the dashboard's door): the first admin password file,
//! the session cookie's attributes, the CSRF token every cookie-authenticated change
//! needs, roles enforced by the server, lock-out after repeated failures, signing out.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use racklet_gitops::git::commit_files;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod common;
use common::{branch_source, examples, plane_without_chassis};

struct Plane {
    http: reqwest::Client,
    base: String,
    token: String,
    admin_password: String,
    _dir: tempfile::TempDir,
}

impl Plane {
    async fn start() -> Plane {
        let dir = tempfile::tempdir().expect("temporary directory");
        let repo = dir.path().join("repo");
        commit_files(&repo, &examples(), "seed").expect("seed");
        let plane = plane_without_chassis(dir.path(), branch_source(&repo)).await;
        let api = racklet_gitops::api::serve(
            plane,
            &dir.path().join("controlplane"),
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("serve");
        let first = api
            .initial_password_file
            .expect("the first start writes the admin password");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{} is for its owner only", first.display());
        let read =
            |p: &std::path::Path| std::fs::read_to_string(p).expect("read").trim().to_string();
        let http = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&api.cert_file).expect("cert"))
                    .expect("pem"),
            )
            .build()
            .expect("client");
        Plane {
            http,
            base: format!("https://{}", api.addr),
            token: read(&api.token_file),
            admin_password: read(&first),
            _dir: dir,
        }
    }

    async fn sign_in(&self, user: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/session", self.base))
            .json(&json!({"UserName": user, "Password": password}))
            .send()
            .await
            .expect("sign in")
    }

    /// Signs in: (the cookie to send, the CSRF token).
    async fn session(&self, user: &str, password: &str) -> (String, String) {
        let r = self.sign_in(user, password).await;
        assert_eq!(r.status(), StatusCode::CREATED, "sign in as {user}");
        let cookie = r
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .expect("a session cookie")
            .to_string();
        let body: Value = r.json().await.expect("JSON");
        let pair = cookie.split(';').next().expect("name=value").to_string();
        (pair, body["csrfToken"].as_str().expect("csrf").to_string())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: &str,
        csrf: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(COOKIE, cookie);
        if let Some(t) = csrf {
            r = r.header("X-CSRF-Token", t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("call")
    }

    async fn create(&self, user: &str, password: &str, role: &str) {
        let r = self
            .http
            .post(format!("{}/v1/accounts", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"UserName": user, "Password": password, "RoleId": role}))
            .send()
            .await
            .expect("create");
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap_or_default()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_gives_a_strict_http_only_secure_cookie_that_opens_the_api() {
    let plane = Plane::start().await;
    let r = plane.sign_in("admin", &plane.admin_password).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let cookie = r
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_string();
    for attribute in ["__Host-", "HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(
        (body["user"].as_str(), body["role"].as_str()),
        (Some("admin"), Some("Administrator"))
    );
    let pair = cookie.split(';').next().expect("pair");
    let nodes = plane
        .call(reqwest::Method::GET, "/v1/nodes", pair, None, None)
        .await;
    assert_eq!(nodes.status(), StatusCode::OK);
    let me: Value = plane
        .call(reqwest::Method::GET, "/v1/session", pair, None, None)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        me["csrfToken"], body["csrfToken"],
        "a reloaded page gets the same CSRF token"
    );

    let nobody = plane
        .http
        .get(format!("{}/v1/nodes", plane.base))
        .send()
        .await
        .expect("call");
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
    let forged = plane
        .call(
            reqwest::Method::GET,
            "/v1/nodes",
            "__Host-racklet-session=0123",
            None,
            None,
        )
        .await;
    assert_eq!(
        forged.status(),
        StatusCode::UNAUTHORIZED,
        "a made-up session opens nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_with_the_session_cookie_alone_is_refused_as_a_forged_cross_site_request() {
    let plane = Plane::start().await;
    let (cookie, csrf) = plane.session("admin", &plane.admin_password).await;
    // What a cross-site form could send: the browser attaches the cookie (were it not
    // SameSite=Strict), but the page cannot read the CSRF token.
    let forged = plane
        .call(reqwest::Method::POST, "/v1/sync", &cookie, None, None)
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let text = forged.text().await.expect("body");
    assert!(text.contains("X-CSRF-Token"), "{text}");
    let wrong = plane
        .call(
            reqwest::Method::POST,
            "/v1/sync",
            &cookie,
            Some("0000"),
            None,
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let right = plane
        .call(
            reqwest::Method::POST,
            "/v1/sync",
            &cookie,
            Some(&csrf),
            None,
        )
        .await;
    assert!(right.status().is_success(), "{}", right.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_account_reads_but_the_server_refuses_its_changes() {
    let plane = Plane::start().await;
    plane
        .create("viewer", "a long viewer password", "ReadOnly")
        .await;
    plane
        .create("ops", "a long operator password", "Operator")
        .await;
    let (cookie, csrf) = plane.session("viewer", "a long viewer password").await;
    let nodes = plane
        .call(reqwest::Method::GET, "/v1/nodes", &cookie, None, None)
        .await;
    assert_eq!(nodes.status(), StatusCode::OK);
    let power = plane
        .call(
            reqwest::Method::POST,
            "/v1/nodes/node-1/actions",
            &cookie,
            Some(&csrf),
            Some(json!({"action": "power-cycle"})),
        )
        .await;
    assert_eq!(power.status(), StatusCode::FORBIDDEN);
    let text = power.text().await.expect("body");
    assert!(
        text.contains("ReadOnly") && text.contains("Operator"),
        "{text}"
    );
    let sync = plane
        .call(
            reqwest::Method::POST,
            "/v1/sync",
            &cookie,
            Some(&csrf),
            None,
        )
        .await;
    assert_eq!(sync.status(), StatusCode::FORBIDDEN);
    let console = plane
        .call(
            reqwest::Method::GET,
            "/v1/nodes/node-1/console",
            &cookie,
            None,
            None,
        )
        .await;
    assert_eq!(
        console.status(),
        StatusCode::FORBIDDEN,
        "the console is an Operator's"
    );
    let out = plane
        .call(
            reqwest::Method::DELETE,
            "/v1/session",
            &cookie,
            Some(&csrf),
            None,
        )
        .await;
    assert_eq!(
        out.status(),
        StatusCode::NO_CONTENT,
        "a ReadOnly account signs itself out"
    );
    let after = plane
        .call(reqwest::Method::GET, "/v1/nodes", &cookie, None, None)
        .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    // An Operator may change the rack but not the accounts.
    let (cookie, csrf) = plane.session("ops", "a long operator password").await;
    let sync = plane
        .call(
            reqwest::Method::POST,
            "/v1/sync",
            &cookie,
            Some(&csrf),
            None,
        )
        .await;
    assert!(sync.status().is_success(), "{}", sync.status());
    let accounts = plane
        .call(
            reqwest::Method::POST,
            "/v1/accounts",
            &cookie,
            Some(&csrf),
            Some(json!({"UserName": "x", "Password": "another long password", "RoleId": "Administrator"})),
        )
        .await;
    assert_eq!(accounts.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_password_is_refused_and_repeated_failures_lock_the_account() {
    let plane = Plane::start().await;
    let bad = plane.sign_in("admin", "not the password").await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(
        bad.headers().get(SET_COOKIE).is_none(),
        "no cookie for a refusal"
    );
    for _ in 1..racklet_accounts::LOCKOUT_THRESHOLD {
        assert_eq!(
            plane.sign_in("admin", "not the password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = plane.sign_in("admin", &plane.admin_password).await;
    assert_eq!(
        locked.status(),
        StatusCode::UNAUTHORIZED,
        "even the right password, while locked"
    );
    let text = locked.text().await.expect("body");
    assert!(text.contains("locked"), "{text}");
    // The API token still works: an operator locked out of the dashboard keeps the CLI.
    let nodes = plane
        .http
        .get(format!("{}/v1/nodes", plane.base))
        .bearer_auth(&plane.token)
        .send()
        .await
        .expect("call");
    assert_eq!(nodes.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session() {
    let plane = Plane::start().await;
    let (cookie, csrf) = plane.session("admin", &plane.admin_password).await;
    let out = plane
        .call(
            reqwest::Method::DELETE,
            "/v1/session",
            &cookie,
            Some(&csrf),
            None,
        )
        .await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = out
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        cleared.contains("Max-Age=0"),
        "the browser forgets the cookie: {cleared}"
    );
    let after = plane
        .call(reqwest::Method::GET, "/v1/nodes", &cookie, None, None)
        .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_is_served_with_a_policy_that_allows_no_inline_script() {
    let plane = Plane::start().await;
    let page = plane
        .http
        .get(format!("{}/", plane.base))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK, "the page needs no session");
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let csp = header(&page, "content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let script = plane
        .http
        .get(format!("{}/assets/app.js", plane.base))
        .send()
        .await
        .expect("script");
    assert_eq!(script.status(), StatusCode::OK);
    assert!(header(&script, "content-type").starts_with("text/javascript"));
    let missing = plane
        .http
        .get(format!("{}/assets/nothing.js", plane.base))
        .send()
        .await
        .expect("call");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_and_refused_sign_ins_are_in_the_event_log() {
    let plane = Plane::start().await;
    let _ = plane.session("admin", &plane.admin_password).await;
    // Single wrong passwords are not recorded (a flood would push real events out);
    // the lock-out they lead to is.
    for _ in 0..racklet_accounts::LOCKOUT_THRESHOLD + 3 {
        let refused = plane.sign_in("mallory\u{7}", "guess").await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let events: Value = plane
        .http
        .get(format!("{}/v1/events", plane.base))
        .bearer_auth(&plane.token)
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("JSON");
    let items = events["items"].as_array().cloned().unwrap_or_default();
    let find = |reason: &str| {
        items
            .iter()
            .find(|e| e["reason"] == reason)
            .unwrap_or_else(|| panic!("no {reason} event: {items:#?}"))
            .clone()
    };
    let signed_in = find("SignedIn");
    assert!(
        signed_in["note"]
            .as_str()
            .is_some_and(|n| n.contains("admin")),
        "{signed_in}"
    );
    let refusals: Vec<&Value> = items
        .iter()
        .filter(|e| e["reason"] == "SignInRefused")
        .collect();
    assert_eq!(
        refusals.len(),
        1,
        "one event for the lock-out: {refusals:#?}"
    );
    let refusal = find("SignInRefused");
    assert_eq!(refusal["type"], "Warning", "{refusal}");
    let note = refusal["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("mallory") && !note.contains('\u{7}'),
        "printable: {note:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_from_another_sites_page_is_refused() {
    let plane = Plane::start().await;
    let (cookie, csrf) = plane.session("admin", &plane.admin_password).await;
    let from = |origin: String| {
        plane
            .http
            .get(format!("{}/v1/nodes", plane.base))
            .header(COOKIE, &cookie)
            .header("X-CSRF-Token", &csrf)
            .header("Origin", origin)
            .send()
    };
    let elsewhere = from("https://evil.example".into()).await.expect("call");
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    let own = from(plane.base.clone()).await.expect("call");
    assert_eq!(own.status(), StatusCode::OK, "the dashboard's own origin");
}
