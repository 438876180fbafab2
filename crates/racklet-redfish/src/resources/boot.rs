//! Network boot on a ComputerSystem, with Redfish's own properties where they exist:
//! `Boot.HttpBootUri`, the HTTPS boot certificates (`Boot/Certificates`, PEM, one at a
//! time), `BootProgress`; and `Oem.Racklet` for what Redfish has no words for: the boot
//! profile and its known-good fallback, the TUF root the bootstrap starts from (in
//! `Boot.Oem.Racklet`), and what the BMC's boot channel saw — the anti-rollback counters
//! and the digests the bootstrap measured (in the system's `Oem.Racklet.NetworkBoot`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use racklet_rmd_api::{
    BootStage, BootStatus, BootVersions, ChassisManager, NetworkBoot, TrustedRoot,
};
use serde_json::{json, Map, Value};

use super::systems::tray;
use super::{Res, St};
use crate::accounts::Role;
use crate::error::{Message, RedfishError};
use crate::odata::{listing, ok, only_known, require, rmd_error, string_prop, with_allow};
use crate::{json_object, AppState, Caller};

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route(
            "/redfish/v1/Systems/{id}/Boot/Certificates",
            get(certificates::<M>).post(add_certificate::<M>),
        )
        .route(
            "/redfish/v1/Systems/{id}/Boot/Certificates/1",
            get(certificate::<M>).delete(delete_certificate::<M>),
        )
}

/// Adds the network boot properties to a ComputerSystem body.
pub(super) async fn show<M: ChassisManager>(
    s: &AppState<M>,
    id: &str,
    slot: u32,
    body: &mut Value,
) {
    body["Boot"]["Certificates"] =
        json!({"@odata.id": format!("/redfish/v1/Systems/{id}/Boot/Certificates")});
    let Ok(Some(boot)) = s.manager.network_boot(slot).await else {
        return;
    };
    body["Boot"]["HttpBootUri"] = json!(boot.uri);
    body["Boot"]["Oem"] = json!({"Racklet": {
        "BootProfile": boot.profile,
        "KnownGoodProfile": boot.known_good,
        "TrustedRoot": {"Version": boot.trusted_root.version, "Sha256": boot.trusted_root.sha256},
    }});
    // A BMC that cannot answer now leaves these out rather than guessing.
    if let Ok(status) = s.manager.boot_status(slot).await {
        let (last, oem_last) = progress(&status);
        body["BootProgress"] = json!({"LastState": last});
        if let Some(o) = oem_last {
            body["BootProgress"]["OemLastState"] = json!(o);
        }
        body["Oem"]["Racklet"] = json!({"NetworkBoot": status_json(&status)});
    }
}

/// Redfish's `BootProgressTypes` for a stage, and the Oem state where it has none.
fn progress(status: &BootStatus) -> (&'static str, Option<&'static str>) {
    match status.stage {
        BootStage::Idle => ("None", None),
        BootStage::ConfigServed => ("OEM", Some("BootstrapVerifying")),
        BootStage::HandedOff => ("OSBootStarted", None),
        BootStage::Failed => ("OEM", Some("BootstrapFailed")),
    }
}

fn versions(v: &BootVersions) -> Value {
    json!({"Root": v.root, "Targets": v.targets, "Snapshot": v.snapshot, "Timestamp": v.timestamp})
}

fn status_json(status: &BootStatus) -> Value {
    let stage = match status.stage {
        BootStage::Idle => "Idle",
        BootStage::ConfigServed => "ConfigServed",
        BootStage::HandedOff => "HandedOff",
        BootStage::Failed => "Failed",
    };
    let mut out = json!({
        "Configured": status.configured,
        "Stage": stage,
        "AcceptedVersions": versions(&status.accepted),
        "LatestTimeUnix": status.latest_time_unix,
    });
    if !status.last_failure.is_empty() {
        out["LastFailure"] = json!(status.last_failure);
    }
    if !status.node_identity.is_empty() {
        out["NodeIdentityEd25519"] = json!(status.node_identity);
    }
    if let Some(m) = &status.measurement {
        out["Measurement"] = json!({
            "Profile": m.profile,
            "GitCommit": m.git_commit,
            "KernelSha256": m.kernel_sha256,
            "InitramfsSha256": m.initramfs_sha256,
            "Versions": versions(&m.versions),
            "FellBack": m.fell_back,
        });
    }
    out
}

/// Applies `Boot.HttpBootUri` and `Boot.Oem.Racklet` of a PATCH. An empty `HttpBootUri`
/// forgets the network boot; otherwise the URI, the profile and the trusted root must
/// all be known once the patch is applied.
pub(super) async fn patch<M: ChassisManager>(
    s: &AppState<M>,
    slot: u32,
    boot: &Map<String, Value>,
) -> Result<(), RedfishError> {
    let uri = string_prop(boot, "HttpBootUri")?;
    let oem = match boot.get("Oem") {
        None => None,
        Some(Value::Object(o)) => {
            only_known(o, &["Racklet"])?;
            match o.get("Racklet") {
                Some(Value::Object(r)) => Some(r),
                Some(other) => return Err(type_error(other, "Racklet")),
                None => None,
            }
        }
        Some(other) => return Err(type_error(other, "Oem")),
    };
    if uri.is_none() && oem.is_none() {
        return Ok(());
    }
    let current = s.manager.network_boot(slot).await.map_err(rmd_error)?;
    if uri == Some("") {
        return s
            .manager
            .set_network_boot(slot, None)
            .await
            .map_err(rmd_error);
    }
    let mut profile = current.as_ref().map(|c| c.profile.clone());
    let mut known_good = current.as_ref().and_then(|c| c.known_good.clone());
    let mut root = current.as_ref().map(|c| c.trusted_root.clone());
    if let Some(r) = oem {
        only_known(r, &["BootProfile", "KnownGoodProfile", "TrustedRoot"])?;
        if let Some(p) = string_prop(r, "BootProfile")? {
            profile = Some(p.to_string());
        }
        match r.get("KnownGoodProfile") {
            Some(Value::Null) => known_good = None,
            Some(_) => known_good = string_prop(r, "KnownGoodProfile")?.map(str::to_string),
            None => {}
        }
        match r.get("TrustedRoot") {
            None => {}
            Some(Value::Object(t)) => {
                only_known(t, &["Version", "Sha256"])?;
                let version = t
                    .get("Version")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| missing("TrustedRoot/Version"))?;
                let sha256 =
                    string_prop(t, "Sha256")?.ok_or_else(|| missing("TrustedRoot/Sha256"))?;
                root = Some(TrustedRoot {
                    version,
                    sha256: sha256.to_string(),
                });
            }
            Some(other) => return Err(type_error(other, "TrustedRoot")),
        }
    }
    let uri = uri
        .map(str::to_string)
        .or_else(|| current.as_ref().map(|c| c.uri.clone()))
        .ok_or_else(|| missing("HttpBootUri"))?;
    let next = NetworkBoot {
        uri,
        profile: profile.ok_or_else(|| missing("Oem/Racklet/BootProfile"))?,
        known_good,
        trusted_root: root.ok_or_else(|| missing("Oem/Racklet/TrustedRoot"))?,
        certificate_pem: current.and_then(|c| c.certificate_pem),
    };
    s.manager
        .set_network_boot(slot, Some(next))
        .await
        .map_err(rmd_error)
}

fn missing(property: &str) -> RedfishError {
    RedfishError::bad_request(Message::GeneralError(format!(
        "network boot needs {property}: give HttpBootUri, Oem.Racklet.BootProfile and Oem.Racklet.TrustedRoot together the first time"
    )))
}

fn type_error(value: &Value, property: &str) -> RedfishError {
    RedfishError::bad_request(Message::PropertyValueTypeError {
        value: value.to_string(),
        property: property.into(),
    })
}

async fn certificates<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    let t = tray(&s, &id, "CertificateCollection").await?;
    let has = matches!(
        s.manager.network_boot(t.slot).await,
        Ok(Some(NetworkBoot {
            certificate_pem: Some(_),
            ..
        }))
    );
    let members = if has {
        vec![format!("/redfish/v1/Systems/{id}/Boot/Certificates/1")]
    } else {
        Vec::new()
    };
    let resp = listing(
        &format!("/redfish/v1/Systems/{id}/Boot/Certificates"),
        "CertificateCollection",
        "HTTPS Boot Certificates",
        members,
        "GET, HEAD, POST",
    );
    Ok(resp)
}

async fn add_certificate<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Res {
    let t = tray(&s, &id, "CertificateCollection").await?;
    require(&caller, Role::Operator)?;
    let o = json_object(&body)?;
    only_known(&o, &["CertificateString", "CertificateType"])?;
    let pem = string_prop(&o, "CertificateString")?.ok_or_else(|| {
        RedfishError::bad_request(Message::PropertyMissing("CertificateString".into()))
    })?;
    match string_prop(&o, "CertificateType")? {
        Some("PEM") | None => {}
        Some(other) => {
            return Err(RedfishError::bad_request(Message::PropertyValueNotInList {
                value: other.into(),
                property: "CertificateType".into(),
            }))
        }
    }
    let Some(mut boot) = s.manager.network_boot(t.slot).await.map_err(rmd_error)? else {
        return Err(RedfishError::bad_request(Message::GeneralError(
            "set Boot.HttpBootUri (with Oem.Racklet.BootProfile and TrustedRoot) before its certificate".into(),
        )));
    };
    boot.certificate_pem = Some(pem.to_string());
    s.manager
        .set_network_boot(t.slot, Some(boot.clone()))
        .await
        .map_err(rmd_error)?;
    let mut resp = (StatusCode::CREATED, Json(certificate_json(&id, pem))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/redfish/v1/Systems/{id}/Boot/Certificates/1")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn certificate<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    let t = tray(&s, &id, "Certificate").await?;
    match s.manager.network_boot(t.slot).await.map_err(rmd_error)? {
        Some(NetworkBoot {
            certificate_pem: Some(pem),
            ..
        }) => Ok(with_allow(
            ok(certificate_json(&id, &pem)),
            "GET, HEAD, DELETE",
        )),
        _ => Err(RedfishError::not_found("Certificate", "1")),
    }
}

async fn delete_certificate<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Res {
    let t = tray(&s, &id, "Certificate").await?;
    require(&caller, Role::Operator)?;
    match s.manager.network_boot(t.slot).await.map_err(rmd_error)? {
        Some(mut boot) if boot.certificate_pem.is_some() => {
            boot.certificate_pem = None;
            s.manager
                .set_network_boot(t.slot, Some(boot))
                .await
                .map_err(rmd_error)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(RedfishError::not_found("Certificate", "1")),
    }
}

fn certificate_json(id: &str, pem: &str) -> Value {
    let fingerprint = racklet_rmd_api::certificate_sha256(pem)
        .map(hex::encode)
        .unwrap_or_default();
    json!({
        "@odata.id": format!("/redfish/v1/Systems/{id}/Boot/Certificates/1"),
        "@odata.type": "#Certificate.v1_8_0.Certificate",
        "Id": "1",
        "Name": "HTTPS Boot Server Certificate",
        "CertificateString": pem,
        "CertificateType": "PEM",
        "Fingerprint": fingerprint,
        "FingerprintHashAlgorithm": "TPM_ALG_SHA256",
    })
}
