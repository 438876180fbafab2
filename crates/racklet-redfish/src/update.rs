//! The UpdateService: BMC firmware updates through `MultipartHttpPushUri`, each run as a
//! Task, and the FirmwareInventory.
//!
//! The upload is a signed bundle (`racklet_mgmt_proto::bundle`); the service checks only
//! its framing. The BMC itself verifies the Ed25519 signature against its trust anchors
//! before it stages the image, boots it once on trial and keeps it only when the new
//! firmware confirms itself (the A/B path of the firmware layer). The task follows the
//! daemon's progress until the BMC confirmed or the update failed.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path as UriPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use racklet_mgmt_proto::bundle;
use racklet_rmd_api::{ChassisManager, RmdError, UpdateStep};
use serde_json::{json, Value};

use crate::accounts::Role;
use crate::error::{Message, RedfishError};
use crate::odata::{listing, ok, only_known, require, rmd_error, with_allow};
use crate::tasks::{monitor_response, TaskMessage, TaskState};
use crate::{json_object, AppState, Caller};

/// Largest upload: the bundle header and a 2 MiB image (the RP2040's whole flash).
pub const MAX_UPLOAD: usize = 2 * 1024 * 1024 + bundle::HEADER_LEN + 64 * 1024;
/// How long an update may show no progress before its task is ended as failed.
const STALLED: Duration = Duration::from_secs(600);
const INVENTORY: &str = "/redfish/v1/UpdateService/FirmwareInventory";

type St<M> = State<Arc<AppState<M>>>;
type Res = Result<Response, RedfishError>;

/// The UpdateService's routes (uploads may be larger than other requests).
pub(crate) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route("/redfish/v1/UpdateService", get(update_service))
        .route(
            "/redfish/v1/UpdateService/upload",
            post(upload::<M>).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route(
            "/redfish/v1/UpdateService/FirmwareInventory",
            get(firmware_inventory::<M>),
        )
        .route(
            "/redfish/v1/UpdateService/FirmwareInventory/{id}",
            get(firmware_item::<M>),
        )
}

async fn update_service() -> Response {
    let body = json!({
        "@odata.id": "/redfish/v1/UpdateService",
        "@odata.type": "#UpdateService.v1_17_0.UpdateService",
        "Id": "UpdateService",
        "Name": "Update Service",
        "ServiceEnabled": true,
        "MultipartHttpPushUri": "/redfish/v1/UpdateService/upload",
        "MaxImageSizeBytes": MAX_UPLOAD,
        "FirmwareInventory": {"@odata.id": INVENTORY},
        "Status": {"State": "Enabled", "Health": "OK"},
    });
    with_allow(ok(body), "GET, HEAD")
}

async fn firmware_inventory<M: ChassisManager + Clone + 'static>(State(s): St<M>) -> Response {
    let mut members = vec![format!("{INVENTORY}/rmc")];
    members.extend(
        s.manager
            .trays()
            .await
            .into_iter()
            .filter(|t| t.firmware.is_some())
            .map(|t| format!("{INVENTORY}/bmc-{}", t.slot)),
    );
    listing(
        INVENTORY,
        "SoftwareInventoryCollection",
        "Firmware inventory",
        members,
        "GET, HEAD",
    )
}

async fn firmware_item<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    UriPath(id): UriPath<String>,
) -> Res {
    let base = |name: String, version: String, updateable: bool, related: &str| {
        json!({
            "@odata.id": format!("{INVENTORY}/{id}"),
            "@odata.type": "#SoftwareInventory.v1_13_0.SoftwareInventory",
            "Id": id,
            "Name": name,
            "Version": version,
            "Updateable": updateable,
            "Status": {"State": "Enabled", "Health": "OK"},
            "RelatedItem": [{"@odata.id": related}],
        })
    };
    let body = if id == "rmc" {
        let mut v = base(
            "Rack management daemon".into(),
            env!("CARGO_PKG_VERSION").into(),
            false,
            "/redfish/v1/Managers/rmc",
        );
        v["SoftwareId"] = json!("racklet-rmd");
        v
    } else {
        let slot = id
            .strip_prefix("bmc-")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| RedfishError::not_found("SoftwareInventory", &id))?;
        let fw = s
            .manager
            .trays()
            .await
            .into_iter()
            .find(|t| t.slot == slot)
            .and_then(|t| t.firmware)
            .ok_or_else(|| RedfishError::not_found("SoftwareInventory", &id))?;
        let mut v = base(
            format!("BMC firmware of tray {slot}"),
            fw.version.to_string(),
            true,
            &format!("/redfish/v1/Managers/bmc-{slot}"),
        );
        v["SoftwareId"] = json!("racklet-bmc");
        v["Description"] = json!(if fw.trial {
            format!(
                "Runs from slot {} on trial: it has not confirmed itself yet",
                fw.slot
            )
        } else {
            format!("Runs from slot {}", fw.slot)
        });
        if fw.trial {
            v["Status"]["Health"] = json!("Warning");
        }
        v
    };
    Ok(with_allow(ok(body), "GET, HEAD"))
}

fn malformed(detail: &str) -> RedfishError {
    let mut e = RedfishError::bad_request(Message::MissingOrMalformedPart);
    e.messages.push(Message::GeneralError(detail.into()));
    e
}

fn part_error(e: axum::extract::multipart::MultipartError) -> RedfishError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        RedfishError::new(StatusCode::PAYLOAD_TOO_LARGE, Message::PayloadTooLarge)
    } else {
        malformed(&e.body_text())
    }
}

/// The tray a `Targets` entry names: a BMC's manager or its firmware inventory entry.
fn target_slot(target: &str) -> Option<u32> {
    let id = target
        .strip_prefix("/redfish/v1/Managers/")
        .or_else(|| target.strip_prefix("/redfish/v1/UpdateService/FirmwareInventory/"))?;
    id.trim_end_matches('/').strip_prefix("bmc-")?.parse().ok()
}

fn parse_parameters(bytes: &[u8]) -> Result<u32, RedfishError> {
    let o = json_object(&axum::body::Bytes::copy_from_slice(bytes))?;
    only_known(&o, &["Targets"])?;
    if let Some(apply) = o.get("@Redfish.OperationApplyTime") {
        if apply != "Immediate" {
            return Err(RedfishError::bad_request(Message::PropertyValueNotInList {
                value: apply.to_string(),
                property: "@Redfish.OperationApplyTime".into(),
            }));
        }
    }
    let targets = match o.get("Targets") {
        None => {
            return Err(RedfishError::bad_request(Message::PropertyMissing(
                "Targets".into(),
            )))
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a,
        Some(other) => {
            return Err(RedfishError::bad_request(Message::PropertyValueTypeError {
                value: other.to_string(),
                property: "Targets".into(),
            }))
        }
    };
    let [target] = targets.as_slice() else {
        let mut e = RedfishError::bad_request(Message::PropertyValueNotInList {
            value: Value::Array(targets.clone()).to_string(),
            property: "Targets".into(),
        });
        e.messages.push(Message::GeneralError(
            "Name exactly one BMC per update (e.g. /redfish/v1/Managers/bmc-3); roll out to \
             several trays one at a time."
                .into(),
        ));
        return Err(e);
    };
    let target = target.as_str().unwrap_or_default();
    target_slot(target).ok_or_else(|| {
        RedfishError::bad_request(Message::PropertyValueNotInList {
            value: target.into(),
            property: "Targets".into(),
        })
    })
}

/// `POST MultipartHttpPushUri`: parts `UpdateParameters` (JSON with one target) and
/// `UpdateFile` (the signed bundle). Answers `202 Accepted` with the task monitor.
async fn upload<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Res {
    require(&caller, Role::Operator)?;
    let mut multipart = multipart.map_err(|e| {
        let mut err = malformed(&format!(
            "Send multipart/form-data with the parts UpdateParameters and UpdateFile ({e})."
        ));
        err.status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        err
    })?;
    let (mut parameters, mut file, mut file_name) = (None, None, None);
    loop {
        let Some(field) = multipart.next_field().await.map_err(part_error)? else {
            break;
        };
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "UpdateParameters" => parameters = Some(field.bytes().await.map_err(part_error)?),
            "UpdateFile" => {
                file_name = field.file_name().map(str::to_string);
                file = Some(field.bytes().await.map_err(part_error)?);
            }
            other => {
                return Err(malformed(&format!(
                    "Unknown part {other:?}: only UpdateParameters and UpdateFile are taken."
                )))
            }
        }
    }
    let parameters =
        parameters.ok_or_else(|| malformed("The UpdateParameters part is missing."))?;
    let file = file.ok_or_else(|| malformed("The UpdateFile part is missing."))?;
    let slot = parse_parameters(&parameters)?;
    let b = bundle::parse(&file).map_err(|e| {
        let mut err = malformed(&e.to_string());
        err.messages.insert(
            0,
            Message::PropertyValueFormatError {
                value: file_name.clone().unwrap_or_else(|| "UpdateFile".into()),
                property: "UpdateFile".into(),
            },
        );
        err
    })?;
    if !s.manager.trays().await.iter().any(|t| t.slot == slot) {
        return Err(RedfishError::not_found("Manager", &format!("bmc-{slot}")));
    }
    let (version, signature, image) = (b.version, *b.signature, Arc::new(b.image.to_vec()));
    s.manager
        .update_firmware(slot, image, version, signature)
        .await
        .map_err(|e| match e {
            RmdError::Refused { .. } | RmdError::Busy(_) => {
                let mut err = RedfishError::new(StatusCode::CONFLICT, Message::ResourceInUse);
                err.messages.push(Message::GeneralError(e.to_string()));
                err
            }
            other => rmd_error(other),
        })?;
    let image_name = file_name.unwrap_or_else(|| format!("racklet-bmc-{version}"));
    let device = format!("/redfish/v1/Managers/bmc-{slot}");
    let task = s.tasks().create(
        format!("Firmware update of the BMC in tray {slot} to version {version}"),
        vec![TaskMessage::new(
            "Update.1.3.TargetDetermined",
            &[&device, &image_name],
        )],
    );
    tokio::spawn(follow(
        s.clone(),
        task.id.clone(),
        slot,
        version,
        image_name,
        device,
    ));
    Ok(monitor_response(&task))
}

/// Follows the daemon's update and mirrors it into the task until it ends.
async fn follow<M: ChassisManager + Clone + 'static>(
    s: Arc<AppState<M>>,
    task: String,
    slot: u32,
    version: u32,
    image: String,
    device: String,
) {
    let mut last: Option<(UpdateStep, u8)> = None;
    let mut changed_at = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let progress = s
            .manager
            .update_progress()
            .await
            .filter(|p| p.slot == slot && p.version == version);
        let Some(p) = progress else {
            end(&s, &task, &image, &device, Some("The daemon no longer runs this update (it was restarted); check the firmware inventory and start again."));
            return;
        };
        let now = (p.step.clone(), p.percent);
        if last.as_ref() != Some(&now) {
            changed_at = tokio::time::Instant::now();
        } else if changed_at.elapsed() > STALLED {
            end(&s, &task, &image, &device, Some("The update made no progress for 10 minutes; check the BMC's console and event log."));
            return;
        }
        last = Some(now);
        // Every step reached so far gets its message once, even when a poll missed it.
        let reached = match &p.step {
            UpdateStep::Transferring => 1,
            UpdateStep::Verifying => 2,
            UpdateStep::Activating | UpdateStep::Rebooting | UpdateStep::Confirmed => 3,
            UpdateStep::Failed(_) => 0,
        };
        let steps = [
            "Update.1.3.TransferringToComponent",
            "Update.1.3.VerifyingAtComponent",
            "Update.1.3.ApplyingOnComponent",
        ];
        s.tasks().update(&task, |t| {
            t.percent = p.percent.min(99);
            for id in &steps[..reached] {
                if !t.messages.iter().any(|m| m.id == *id) {
                    t.messages.push(TaskMessage::new(id, &[&image, &device]));
                }
            }
        });
        match p.step {
            UpdateStep::Confirmed => return end(&s, &task, &image, &device, None),
            UpdateStep::Failed(reason) => {
                return end(&s, &task, &image, &device, Some(&reason));
            }
            _ => {}
        }
    }
}

fn end<M>(s: &AppState<M>, task: &str, image: &str, device: &str, failure: Option<&str>) {
    s.tasks().update(task, |t| {
        t.end_ms = Some(crate::tasks::now_ms());
        t.percent = 100;
        match failure {
            None => {
                t.state = TaskState::Completed;
                t.messages.push(TaskMessage::new(
                    "Update.1.3.UpdateSuccessful",
                    &[device, image],
                ));
                t.messages
                    .push(TaskMessage::new("TaskEvent.1.0.TaskCompletedOK", &[task]));
            }
            Some(reason) => {
                t.state = TaskState::Exception;
                let mut m = TaskMessage::new("Update.1.3.ApplyFailed", &[image, device]);
                m.resolution = Some(reason.to_string());
                t.messages.push(m);
                t.messages
                    .push(TaskMessage::new("TaskEvent.1.0.TaskAborted", &[task]));
            }
        }
    });
}
