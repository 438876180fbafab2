//! Bad requests to the Redfish service: each gets the right status and Base registry
//! message, changes nothing, and never panics. The service runs on the rack simulation
//! (twin + BMC firmware + daemon), without TLS (TLS is exercised by the validators).

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::time::Duration;

use axum::http::{Method, StatusCode};
use racklet_twin::OsState;

mod common;
use common::{admin, basic, call, message_id, wait_until, SimService as Fixture};

fn fixture(name: &str) -> Fixture {
    common::start(name, |_, _| {})
}

/// A ReadOnly account `viewer` with password `viewer-pass-1`.
async fn add_viewer(f: &Fixture) {
    let body = r#"{"UserName": "viewer", "Password": "viewer-pass-1", "RoleId": "ReadOnly"}"#;
    let (s, _, _) = call(
        f,
        Method::POST,
        "/redfish/v1/AccountService/Accounts",
        admin(f),
        body,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_json_wrong_types_and_unknown_properties_change_nothing() {
    let f = fixture("body");
    let (s, _, v) = call(
        &f,
        Method::PATCH,
        "/redfish/v1/Systems/1",
        admin(&f),
        "{\"Boot\": ",
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Base.1.22.MalformedJSON")
    );
    let (s, _, v) = call(
        &f,
        Method::PATCH,
        "/redfish/v1/Systems/1",
        admin(&f),
        r#"{"Boot": {"BootSourceOverrideTarget": 5}}"#,
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Base.1.22.PropertyValueTypeError")
    );
    let (s, _, v) = call(
        &f,
        Method::PATCH,
        "/redfish/v1/Systems/1",
        admin(&f),
        r#"{"Colour": "red", "Boot": {"BootSourceOverrideTarget": "Pxe"}}"#,
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Base.1.22.PropertyUnknown")
    );
    let (_, _, v) = call(&f, Method::GET, "/redfish/v1/Systems/1", admin(&f), "", &[]).await;
    assert_eq!(
        v["Boot"]["BootSourceOverrideTarget"], "None",
        "nothing was applied"
    );
}

#[tokio::test]
async fn body_over_the_limit_is_refused() {
    let f = fixture("size");
    let big = format!(
        "{{\"UserName\": \"{}\"}}",
        "x".repeat(racklet_redfish::MAX_BODY + 1)
    );
    let (s, _, v) = call(
        &f,
        Method::POST,
        "/redfish/v1/SessionService/Sessions",
        None,
        &big,
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "Base.1.22.PayloadTooLarge")
    );
}

#[tokio::test]
async fn bad_credentials_are_refused_and_repeated_failures_lock_the_account() {
    let f = fixture("creds");
    let (s, h, v) = call(
        &f,
        Method::GET,
        "/redfish/v1/Systems",
        Some(basic("admin", "wrong")),
        "",
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::UNAUTHORIZED, "Base.1.22.NoValidSession")
    );
    assert!(h.contains_key("www-authenticate"));
    let (s, _, _) = call(
        &f,
        Method::GET,
        "/redfish/v1/Systems",
        None,
        "",
        &[("X-Auth-Token", "not-a-token")],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    for _ in 0..5 {
        call(
            &f,
            Method::GET,
            "/redfish/v1/Systems",
            Some(basic("admin", "wrong")),
            "",
            &[],
        )
        .await;
    }
    let (s, _, _) = call(&f, Method::GET, "/redfish/v1/Systems", admin(&f), "", &[]).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "locked out even with the right password"
    );
}

#[tokio::test]
async fn read_only_user_cannot_reset_and_nothing_changes() {
    let f = fixture("readonly");
    add_viewer(&f).await;
    let (s, _, v) = call(
        &f,
        Method::POST,
        "/redfish/v1/Systems/6/Actions/ComputerSystem.Reset",
        Some(basic("viewer", "viewer-pass-1")),
        r#"{"ResetType": "On"}"#,
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::FORBIDDEN, "Base.1.22.InsufficientPrivilege")
    );
    // Nothing to wait for on tray 6 itself: wait until an allowed reset of tray 5, sent
    // after the refused one, has reached the rack, then check tray 6 stayed off.
    let os = |tray: u32| common::tray(&f.rack.lock().twin, tray).os;
    assert_eq!(os(5), OsState::Off);
    let (s, _, v) = call(
        &f,
        Method::POST,
        "/redfish/v1/Systems/5/Actions/ComputerSystem.Reset",
        admin(&f),
        r#"{"ResetType": "On"}"#,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert!(
        wait_until(Duration::from_secs(10), || async { os(5) != OsState::Off }).await,
        "tray 5 was switched on"
    );
    assert_eq!(os(6), OsState::Off);
}

#[tokio::test]
async fn invalid_and_missing_reset_types_are_refused() {
    let f = fixture("reset");
    let uri = "/redfish/v1/Systems/6/Actions/ComputerSystem.Reset";
    let (s, _, v) = call(
        &f,
        Method::POST,
        uri,
        admin(&f),
        r#"{"ResetType": "Explode"}"#,
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (
            StatusCode::BAD_REQUEST,
            "Base.1.22.ActionParameterValueNotInList"
        )
    );
    let (s, _, v) = call(&f, Method::POST, uri, admin(&f), "{}", &[]).await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Base.1.22.ActionParameterMissing")
    );
    let (s, _, _) = call(
        &f,
        Method::POST,
        uri,
        admin(&f),
        r#"{"ResetType": "On"}"#,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "a valid reset works");
}

#[tokio::test]
async fn patch_with_a_stale_etag_is_refused() {
    let f = fixture("etag");
    let body = r#"{"UserName": "op", "Password": "operator-pass", "RoleId": "Operator"}"#;
    call(
        &f,
        Method::POST,
        "/redfish/v1/AccountService/Accounts",
        admin(&f),
        body,
        &[],
    )
    .await;
    let (_, h, _) = call(
        &f,
        Method::GET,
        "/redfish/v1/AccountService/Accounts/op",
        admin(&f),
        "",
        &[],
    )
    .await;
    let etag = h
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_string();
    let (s, _, _) = call(
        &f,
        Method::PATCH,
        "/redfish/v1/AccountService/Accounts/op",
        admin(&f),
        r#"{"Enabled": false}"#,
        &[("If-Match", &etag)],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = call(
        &f,
        Method::PATCH,
        "/redfish/v1/AccountService/Accounts/op",
        admin(&f),
        r#"{"Enabled": true}"#,
        &[("If-Match", &etag)],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (
            StatusCode::PRECONDITION_FAILED,
            "Base.1.22.PreconditionFailed"
        )
    );
    let (_, _, v) = call(
        &f,
        Method::GET,
        "/redfish/v1/AccountService/Accounts/op",
        admin(&f),
        "",
        &[],
    )
    .await;
    assert_eq!(v["Enabled"], false, "the stale PATCH changed nothing");
}

#[tokio::test]
async fn path_traversal_finds_nothing() {
    let f = fixture("paths");
    for uri in [
        "/redfish/v1/Systems/../AccountService/Accounts/admin",
        "/redfish/v1/Systems/%2e%2e/AccountService",
        "/redfish/v1/Chassis/tray-1/../../../etc/passwd",
        "/redfish/v1/Systems/1%2f..%2f2",
    ] {
        let (s, _, v) = call(&f, Method::GET, uri, admin(&f), "", &[]).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(message_id(&v), "Base.1.22.ResourceNotFound", "{uri}");
    }
    let (s, _, v) = call(&f, Method::DELETE, "/redfish/v1/", admin(&f), "", &[]).await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "Base.1.22.OperationNotAllowed"
        )
    );
}

#[tokio::test]
async fn event_log_is_readable_and_only_an_administrator_clears_it() {
    let f = fixture("log");
    let uri = "/redfish/v1/Managers/rmc/LogServices/EventLog/Entries";
    let (s, _, v) = call(&f, Method::GET, uri, admin(&f), "", &[]).await;
    assert_eq!(s, StatusCode::OK);
    let before = v["Members@odata.count"].as_u64().expect("count");
    assert!(before >= 7, "enrollment events are logged: {before}");
    let body = r#"{"UserName": "op2", "Password": "operator-pass", "RoleId": "Operator"}"#;
    call(
        &f,
        Method::POST,
        "/redfish/v1/AccountService/Accounts",
        admin(&f),
        body,
        &[],
    )
    .await;
    let clear = "/redfish/v1/Managers/rmc/LogServices/EventLog/Actions/LogService.ClearLog";
    let (s, _, v) = call(
        &f,
        Method::POST,
        clear,
        Some(basic("op2", "operator-pass")),
        "{}",
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::FORBIDDEN, "Base.1.22.InsufficientPrivilege")
    );
    let (s, _, _) = call(&f, Method::POST, clear, admin(&f), "{}", &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, _, v) = call(&f, Method::GET, uri, admin(&f), "", &[]).await;
    let after = v["Members@odata.count"].as_u64().expect("count");
    assert!(after < before, "{before} -> {after}");
    assert!(v["Members"]
        .as_array()
        .expect("members")
        .iter()
        .any(|e| e["Message"] == "event log cleared"));
}

#[tokio::test]
async fn location_indicator_lights_the_trays_identify_led() {
    let f = fixture("identify");
    let (s, _, v) = call(
        &f,
        Method::PATCH,
        "/redfish/v1/Chassis/tray-2",
        admin(&f),
        r#"{"LocationIndicatorActive": true}"#,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["LocationIndicatorActive"], true);
    // The daemon's loop drives the LED.
    let lit = wait_until(Duration::from_secs(10), || async {
        common::tray(&f.rack.lock().twin, 2).indicator == racklet_hal::Indicator::Identify
    })
    .await;
    assert!(lit, "tray 2's identify LED lit");
    let (s, _, v) = call(
        &f,
        Method::PATCH,
        "/redfish/v1/Chassis/tray-2",
        admin(&f),
        r#"{"LocationIndicatorActive": "yes"}"#,
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Base.1.22.PropertyValueTypeError")
    );
}

#[tokio::test]
async fn reset_to_defaults_of_a_bmc_needs_a_valid_type_and_an_operator() {
    let f = fixture("defaults");
    let uri = "/redfish/v1/Managers/bmc-2/Actions/Manager.ResetToDefaults";
    let (s, _, v) = call(&f, Method::POST, uri, admin(&f), "{}", &[]).await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Base.1.22.ActionParameterMissing")
    );
    let (s, _, v) = call(
        &f,
        Method::POST,
        uri,
        admin(&f),
        r#"{"ResetType": "PreserveNetwork"}"#,
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (
            StatusCode::BAD_REQUEST,
            "Base.1.22.ActionParameterValueNotInList"
        )
    );
    add_viewer(&f).await;
    let (s, _, v) = call(
        &f,
        Method::POST,
        uri,
        Some(basic("viewer", "viewer-pass-1")),
        r#"{"ResetType": "ResetAll"}"#,
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::FORBIDDEN, "Base.1.22.InsufficientPrivilege")
    );
    // The RMC is not a tray's BMC: it has no such action.
    let (s, _, _) = call(
        &f,
        Method::POST,
        "/redfish/v1/Managers/rmc/Actions/Manager.ResetToDefaults",
        admin(&f),
        r#"{"ResetType": "ResetAll"}"#,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, v) = call(
        &f,
        Method::POST,
        uri,
        admin(&f),
        r#"{"ResetType": "ResetAll"}"#,
        &[],
    )
    .await;
    // A trusted BMC proves its key: there is nothing to forget, and nothing changes.
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
}
