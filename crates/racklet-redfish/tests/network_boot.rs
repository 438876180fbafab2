//! Network boot through Redfish: `Boot.HttpBootUri` with Racklet's Oem profile and TUF
//! root, the HTTPS boot certificate in `Boot/Certificates`, all reaching the tray's BMC
//! (its boot report answers) and kept by the daemon; bad values are refused with what
//! is wrong and change nothing.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use axum::http::{Method, StatusCode};

mod common;
use common::{admin, call, message_id, SimService as Fixture};

const ROOT_SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn network_boot(uri: &str) -> String {
    format!(
        r#"{{"Boot": {{"BootSourceOverrideTarget": "UefiHttp", "BootSourceOverrideEnabled": "Continuous",
            "HttpBootUri": "{uri}",
            "Oem": {{"Racklet": {{"BootProfile": "debian", "KnownGoodProfile": "debian-old",
                "TrustedRoot": {{"Version": 2, "Sha256": "{ROOT_SHA}"}}}}}}}}}}"#
    )
}

#[tokio::test]
async fn network_boot_reaches_the_bmc_with_its_certificate_and_bad_values_change_nothing() {
    let f: Fixture = common::start("network-boot", |_, _| {});
    let system = "/redfish/v1/Systems/2";
    let (s, _, v) = call(
        &f,
        Method::PATCH,
        system,
        admin(&f),
        &network_boot("http://10.0.2.2/boot/"),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("never uses plain HTTP"), "{v}");
    let (_, _, v) = call(&f, Method::GET, system, admin(&f), "", &[]).await;
    assert!(
        v["Boot"].get("HttpBootUri").is_none(),
        "nothing applied: {v}"
    );
    let (s, _, v) = call(
        &f,
        Method::PATCH,
        system,
        admin(&f),
        r#"{"Boot": {"HttpBootUri": "https://10.0.2.2/boot/"}}"#,
        &[],
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "the first time needs the profile and root: {v}"
    );

    let (s, _, v) = call(
        &f,
        Method::PATCH,
        system,
        admin(&f),
        &network_boot("https://10.0.2.2:8443/boot/"),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["Boot"]["HttpBootUri"], "https://10.0.2.2:8443/boot/");
    assert_eq!(v["Boot"]["BootSourceOverrideTarget"], "UefiHttp");
    assert_eq!(v["Boot"]["Oem"]["Racklet"]["BootProfile"], "debian");
    assert_eq!(v["Boot"]["Oem"]["Racklet"]["TrustedRoot"]["Version"], 2);
    // The BMC answers for its boot channel: nothing booted yet, counters at zero.
    assert_eq!(v["BootProgress"]["LastState"], "None", "{v}");
    assert_eq!(v["Oem"]["Racklet"]["NetworkBoot"]["Stage"], "Idle", "{v}");
    assert_eq!(
        v["Oem"]["Racklet"]["NetworkBoot"]["Configured"], true,
        "{v}"
    );
    assert_eq!(
        v["Oem"]["Racklet"]["NetworkBoot"]["AcceptedVersions"]["Targets"],
        0
    );

    let certs = format!("{system}/Boot/Certificates");
    assert_eq!(v["Boot"]["Certificates"]["@odata.id"], certs.as_str());
    let (s, _, v) = call(
        &f,
        Method::POST,
        &certs,
        admin(&f),
        r#"{"CertificateString": "not a certificate", "CertificateType": "PEM"}"#,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let id = racklet_tls::load_or_create(&f.dir.join("boot-server")).expect("a certificate to pin");
    let pem = std::fs::read_to_string(id.cert).expect("pem");
    let body = serde_json::json!({"CertificateString": pem, "CertificateType": "PEM"}).to_string();
    let (s, headers, v) = call(&f, Method::POST, &certs, admin(&f), &body, &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let member = headers
        .get("Location")
        .and_then(|l| l.to_str().ok())
        .expect("Location")
        .to_string();
    assert_eq!(v["Fingerprint"].as_str().map(str::len), Some(64));
    let (_, _, list) = call(&f, Method::GET, &certs, admin(&f), "", &[]).await;
    assert_eq!(list["Members@odata.count"], 1);
    let (_, _, cert) = call(&f, Method::GET, &member, admin(&f), "", &[]).await;
    assert_eq!(cert["CertificateString"].as_str(), Some(pem.as_str()));

    let (s, _, _) = call(&f, Method::DELETE, &member, admin(&f), "", &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, _, list) = call(&f, Method::GET, &certs, admin(&f), "", &[]).await;
    assert_eq!(list["Members@odata.count"], 0);
    let (s, _, v) = call(
        &f,
        Method::PATCH,
        system,
        admin(&f),
        r#"{"Boot": {"HttpBootUri": ""}}"#,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["Boot"].get("HttpBootUri").is_none(), "forgotten: {v}");
    let (s, _, v) = call(
        &f,
        Method::PATCH,
        system,
        admin(&f),
        r#"{"Boot": {"Oem": {"Acme": {}}}}"#,
        &[],
    )
    .await;
    assert_eq!(
        (s, message_id(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Base.1.22.PropertyUnknown")
    );
}
