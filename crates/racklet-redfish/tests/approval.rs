//! An operator approves or rejects a BMC that waits for approval, through Redfish: the
//! Manager shows its trust and identity (`Oem.Racklet`), the OEM actions
//! `RackletBmc.Approve` / `RackletBmc.Reject` take the identity the operator checked (a
//! BMC swapped in meanwhile is not the one decided on), and a rejection lasts.

// reason: tests may expect: a panic is their failure report.
#![allow(clippy::expect_used)]

mod common;
use common::{admin, call, start_with, wait_until};

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::Value;

async fn trust(f: &common::SimService, slot: u32) -> Value {
    let (status, _, body) = call(
        f,
        Method::GET,
        &format!("/redfish/v1/Managers/bmc-{slot}"),
        admin(f),
        "",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["Oem"]["Racklet"].clone()
}

async fn decide(
    f: &common::SimService,
    slot: u32,
    action: &str,
    identity: &str,
) -> (StatusCode, Value) {
    let (status, _, body) = call(
        f,
        Method::POST,
        &format!("/redfish/v1/Managers/bmc-{slot}/Actions/Oem/RackletBmc.{action}"),
        admin(f),
        &format!("{{\"Identity\": \"{identity}\"}}"),
        &[],
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn an_operator_approves_or_rejects_a_waiting_bmc_by_the_identity_it_shows() {
    let f = start_with("approval", false, |_, _| {});
    let waiting = trust(&f, 2).await;
    assert_eq!(waiting["Trust"], "PendingApproval", "{waiting}");
    let identity = waiting["Identity"].as_str().expect("identity").to_string();
    assert_eq!(identity.len(), 64);
    let other = trust(&f, 3).await["Identity"]
        .as_str()
        .expect("identity")
        .to_string();

    // Another identity than the one this BMC shows: nothing is decided.
    let (status, body) = decide(&f, 2, "Approve", &other).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("check it again"), "{body}");
    let (status, _) = decide(&f, 2, "Approve", "").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = call(
        &f,
        Method::POST,
        "/redfish/v1/Managers/bmc-2/Actions/Oem/RackletBmc.Approve",
        admin(&f),
        "{}",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the identity is required");

    // Approved: enrolled and trusted.
    let (status, body) = decide(&f, 2, "Approve", &identity.to_uppercase()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(
        wait_until(Duration::from_secs(20), || async {
            trust(&f, 2).await["Trust"] == "Trusted"
        })
        .await,
        "tray 2 trusted: {}",
        trust(&f, 2).await
    );

    // Rejected: refused, with the reason, for good.
    let (status, body) = decide(&f, 3, "Reject", &other).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let refused = trust(&f, 3).await;
    assert_eq!(refused["Trust"], "Refused", "{refused}");
    assert!(
        refused["Reason"]
            .as_str()
            .unwrap_or("")
            .contains("rejected"),
        "{refused}"
    );
    let (status, _) = decide(&f, 3, "Approve", &other).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a rejected BMC no longer waits"
    );
    let state = std::fs::read_to_string(f.dir.join("rmd/chassis-1/state.json")).expect("state");
    assert!(
        state.contains(&other),
        "the rejection is persisted: {state}"
    );
    let metrics = f.rack.lock().daemons[0].metrics();
    assert!(
        metrics.contains(
            "racklet_bmc_trust{chassis=\"chassis-1\",tray=\"3\",racklet_bmc_trust=\"refused\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("racklet_bmc_trust{chassis=\"chassis-1\",tray=\"4\",racklet_bmc_trust=\"pending_approval\"} 1"),
        "{metrics}"
    );
}
