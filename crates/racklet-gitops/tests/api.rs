//! The control plane's HTTPS API: the bearer token opens everything, and a Git server's
//! webhook call is signed with a secret of its own, so the Git server never holds the token.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use hmac::{Hmac, Mac};
use racklet_gitops::git::commit_files;

mod common;
use common::{branch_source, examples, plane_without_chassis};

fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2_std::Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn the_webhook_takes_its_own_secret_and_the_api_token_opens_the_rest() {
    let dir = std::env::temp_dir().join(format!("racklet-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("repo");
    commit_files(&repo, &examples(), "seed").expect("seed");
    let plane = plane_without_chassis(&dir, branch_source(&repo)).await;
    let api = racklet_gitops::api::serve(
        plane,
        &dir.join("controlplane"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("serve");
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .expect("secret")
            .trim()
            .to_string()
    };
    let (token, secret) = (read(&api.token_file), read(&api.webhook_secret_file));
    assert_ne!(token, secret);
    for file in [&api.token_file, &api.webhook_secret_file] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is for its owner only", file.display());
    }
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&api.cert_file).expect("cert"))
                .expect("pem"),
        )
        .build()
        .expect("client");
    let url = |p: &str| format!("https://{}{p}", api.addr);
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let webhook = |sig: String| {
        http.post(url("/v1/webhook"))
            .header("X-Hub-Signature-256", sig)
            .body(body.clone())
            .send()
    };

    let signed = webhook(signature(&secret, &body)).await.expect("call");
    assert_eq!(signed.status(), 202, "signed with the webhook secret");
    let with_token = webhook(signature(&token, &body)).await.expect("call");
    assert_eq!(with_token.status(), 401, "signed with the API token");
    let text = with_token.text().await.expect("body");
    assert!(text.contains("webhook-secret"), "says which key: {text}");

    let nodes = |bearer: &str| http.get(url("/v1/nodes")).bearer_auth(bearer).send();
    assert_eq!(nodes(&token).await.expect("call").status(), 200);
    assert_eq!(
        nodes(&secret).await.expect("call").status(),
        401,
        "the webhook secret opens nothing else"
    );
    // `racklet sync` and scripts call the webhook with the token.
    let by_token = http
        .post(url("/v1/webhook"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("call");
    assert_eq!(by_token.status(), 202);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A control plane that starts again finds the statuses its last run published: they say
/// they were not looked at yet, instead of passing off the past as the present.
#[tokio::test]
async fn statuses_of_an_earlier_run_are_marked_unobserved_at_start() {
    let dir = std::env::temp_dir().join(format!("racklet-api-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("repo");
    commit_files(&repo, &examples(), "seed").expect("seed");
    let plane = plane_without_chassis(&dir, branch_source(&repo)).await;
    plane.sync().await.expect("sync");
    plane.reconcile().await.expect("a pass");
    let before = racklet_gitops::power::node_statuses(&**plane.store())
        .await
        .expect("statuses");
    assert_eq!(before.len(), 7);
    assert!(before
        .iter()
        .all(|s| s.reason == racklet_gitops::power::NodeReason::NoEndpoint));
    racklet_gitops::power::mark_unobserved(&**plane.store())
        .await
        .expect("marked");
    let after = racklet_gitops::power::node_statuses(&**plane.store())
        .await
        .expect("statuses");
    assert_eq!(after.len(), 7);
    for s in &after {
        assert_eq!(
            (s.sync, s.health, s.observed_power),
            (
                racklet_gitops::power::Sync::Unknown,
                racklet_gitops::power::Health::Unknown,
                None
            ),
            "{s:?}"
        );
        assert!(s.message.contains("has not read"), "{s:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
