//! Firmware updates through the UpdateService as Tasks, events to SSE streams and HTTPS
//! subscribers, and Manager.Reset — over a real socket, on the rack simulation.

// reason: tests may expect, helpers included: a panic is their failure report; their
// sizes and readings are small and known.
#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

mod common;

struct Service {
    base: String,
    sim: common::SimService,
    http: reqwest::Client,
}

const VENDOR: [u8; 32] = [42; 32];

/// The example rack with tray 4's BMC trusting the vendor key, and the Redfish service of
/// its chassis on a loopback port. `before` runs on the data dir before the service starts.
async fn service(name: &str, before: impl FnOnce(&Path)) -> Service {
    let sim = common::start(name, |rack, service_dir| {
        before(service_dir);
        let vendor = ed25519_dalek::SigningKey::from_bytes(&VENDOR);
        rack.bmcs[3]
            .bmc()
            .expect("booted")
            .add_trust_anchor(vendor.verifying_key().to_bytes())
            .expect("anchor");
    });
    let addr = common::serve(sim.app.clone()).await;
    Service {
        base: format!("http://{addr}"),
        sim,
        http: reqwest::Client::new(),
    }
}

impl Service {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .basic_auth("admin", Some(&self.sim.password))
    }

    async fn get(&self, path: &str) -> Value {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON")
    }

    async fn add_user(&self, name: &str, role: &str) {
        let r = self
            .req(reqwest::Method::POST, "/redfish/v1/AccountService/Accounts")
            .json(&json!({"UserName": name, "Password": "correct horse battery", "RoleId": role}))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 201);
    }
}

fn bundle(image_len: usize, version: u32, signer: [u8; 32]) -> Vec<u8> {
    let key = ed25519_dalek::SigningKey::from_bytes(&signer);
    let image: Vec<u8> = (0..image_len).map(|i| (i * 13 + 5) as u8).collect();
    let sig = racklet_firmware_bundle::sign(&key, &image, version).to_bytes();
    let mut file = racklet_mgmt_proto::bundle::header(version, image_len as u32, &sig).to_vec();
    file.extend_from_slice(&image);
    file
}

fn update_form(params: Value, file: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part(
            "UpdateParameters",
            reqwest::multipart::Part::text(params.to_string())
                .mime_str("application/json")
                .expect("mime"),
        )
        .part(
            "UpdateFile",
            reqwest::multipart::Part::bytes(file).file_name("racklet-bmc.bin"),
        )
}

/// Polls a task monitor until the task ends; returns the task.
async fn await_task(svc: &Service, monitor: &str) -> Value {
    let mut percents = Vec::new();
    for _ in 0..600 {
        let r = svc
            .req(reqwest::Method::GET, monitor)
            .send()
            .await
            .expect("monitor");
        let status = r.status().as_u16();
        let task: Value = r.json().await.expect("task");
        percents.push(task["PercentComplete"].as_u64().unwrap_or(0));
        if status == 200 {
            assert!(
                percents.windows(2).all(|w| w[0] <= w[1]),
                "progress only grows: {percents:?}"
            );
            return task;
        }
        assert_eq!(status, 202, "a running task's monitor answers 202");
        assert_eq!(task["TaskState"], "Running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the task did not end");
}

fn message_ids(task: &Value) -> Vec<String> {
    task["Messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["MessageId"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_firmware_uploaded_through_redfish_runs_as_a_task_until_confirmed() {
    let svc = service("ok", |_| {}).await;
    let before = svc
        .get("/redfish/v1/UpdateService/FirmwareInventory/bmc-4")
        .await;
    assert_eq!(before["Version"], "1");
    let boots = svc.sim.rack.lock().bmcs[3].boots();
    let update = svc.get("/redfish/v1/UpdateService").await;
    let push = update["MultipartHttpPushUri"].as_str().expect("push URI");
    let r = svc
        .req(reqwest::Method::POST, push)
        .multipart(update_form(
            json!({"Targets": ["/redfish/v1/Managers/bmc-4"]}),
            bundle(6_000, 2, VENDOR),
        ))
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 202);
    let monitor = r.headers()["Location"]
        .to_str()
        .expect("location")
        .to_string();
    let task = await_task(&svc, &monitor).await;
    assert_eq!(task["TaskState"], "Completed", "{task:#}");
    assert_eq!(task["PercentComplete"], 100);
    let ids = message_ids(&task);
    for id in [
        "TaskEvent.1.0.TaskStarted",
        "Update.1.3.TargetDetermined",
        "Update.1.3.TransferringToComponent",
        "Update.1.3.ApplyingOnComponent",
        "Update.1.3.UpdateSuccessful",
        "TaskEvent.1.0.TaskCompletedOK",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} in {ids:?}");
    }
    let tasks = svc.get("/redfish/v1/TaskService/Tasks").await;
    assert_eq!(tasks["Members@odata.count"], 1);
    let after = svc
        .get("/redfish/v1/UpdateService/FirmwareInventory/bmc-4")
        .await;
    assert_eq!(after["Version"], "2");
    assert_eq!(
        svc.get("/redfish/v1/Managers/bmc-4").await["FirmwareVersion"],
        "2"
    );
    assert_eq!(
        svc.sim.rack.lock().bmcs[3].boots(),
        boots + 1,
        "one reboot into the new slot"
    );
    // The outcome survives a restart of the service.
    let tasks = racklet_redfish::tasks::Tasks::open(&svc.sim.dir.join("redfish")).expect("tasks");
    assert_eq!(
        tasks.all()[0].state,
        racklet_redfish::tasks::TaskState::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_signed_by_an_unknown_key_ends_its_task_in_exception_and_keeps_the_old_firmware() {
    let svc = service("badsig", |_| {}).await;
    let r = svc
        .req(reqwest::Method::POST, "/redfish/v1/UpdateService/upload")
        .multipart(update_form(
            json!({"Targets": ["/redfish/v1/UpdateService/FirmwareInventory/bmc-4"]}),
            bundle(3_000, 2, [7; 32]),
        ))
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 202);
    let monitor = r.headers()["Location"]
        .to_str()
        .expect("location")
        .to_string();
    let task = await_task(&svc, &monitor).await;
    assert_eq!(task["TaskState"], "Exception", "{task:#}");
    assert_eq!(task["TaskStatus"], "Critical");
    let failed = task["Messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["MessageId"] == "Update.1.3.ApplyFailed")
        .expect("ApplyFailed");
    assert!(
        failed["Resolution"]
            .as_str()
            .is_some_and(|r| r.contains("signature")),
        "{failed:#}"
    );
    let inv = svc
        .get("/redfish/v1/UpdateService/FirmwareInventory/bmc-4")
        .await;
    assert_eq!(inv["Version"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_the_right_status_and_message_and_start_nothing() {
    let svc = service("badup", |_| {}).await;
    svc.add_user("watcher", "ReadOnly").await;
    let url = "/redfish/v1/UpdateService/upload";
    let good = || bundle(1_000, 2, VENDOR);
    let target = json!({"Targets": ["/redfish/v1/Managers/bmc-4"]});
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> =
        vec![
        (
            "not multipart",
            svc.req(reqwest::Method::POST, url).json(&target),
            415,
            "Base.1.22.MissingOrMalformedPart",
        ),
        (
            "no Targets",
            svc.req(reqwest::Method::POST, url)
                .multipart(update_form(json!({}), good())),
            400,
            "Base.1.22.PropertyMissing",
        ),
        (
            "two targets",
            svc.req(reqwest::Method::POST, url).multipart(update_form(
                json!({"Targets": ["/redfish/v1/Managers/bmc-4", "/redfish/v1/Managers/bmc-5"]}),
                good(),
            )),
            400,
            "Base.1.22.PropertyValueNotInList",
        ),
        (
            "target is not a BMC",
            svc.req(reqwest::Method::POST, url).multipart(update_form(
                json!({"Targets": ["/redfish/v1/Systems/4/../../../etc"]}),
                good(),
            )),
            400,
            "Base.1.22.PropertyValueNotInList",
        ),
        (
            "not a bundle",
            svc.req(reqwest::Method::POST, url)
                .multipart(update_form(target.clone(), b"#!/bin/sh\nreboot\n".repeat(10))),
            400,
            "Base.1.22.PropertyValueFormatError",
        ),
        (
            "truncated bundle",
            svc.req(reqwest::Method::POST, url)
                .multipart(update_form(target.clone(), good()[..500].to_vec())),
            400,
            "Base.1.22.PropertyValueFormatError",
        ),
        (
            "unknown parameter",
            svc.req(reqwest::Method::POST, url).multipart(update_form(
                json!({"Targets": ["/redfish/v1/Managers/bmc-4"], "ForceUpdate": true}),
                good(),
            )),
            400,
            "Base.1.22.PropertyUnknown",
        ),
        (
            "ReadOnly user",
            svc.http
                .post(format!("{}{url}", svc.base))
                .basic_auth("watcher", Some("correct horse battery"))
                .multipart(update_form(target.clone(), good())),
            403,
            "Base.1.22.InsufficientPrivilege",
        ),
        (
            "over the size limit",
            svc.req(reqwest::Method::POST, url).multipart(update_form(
                target.clone(),
                vec![0; racklet_redfish::MAX_UPLOAD + 1],
            )),
            413,
            "Base.1.22.PayloadTooLarge",
        ),
    ];
    for (what, request, status, message) in cases {
        let r = request.send().await.expect(what);
        assert_eq!(r.status().as_u16(), status, "{what}");
        let v: Value = r.json().await.expect(what);
        assert_eq!(
            v["error"]["@Message.ExtendedInfo"][0]["MessageId"], message,
            "{what}: {v:#}"
        );
    }
    let tasks = svc.get("/redfish/v1/TaskService/Tasks").await;
    assert_eq!(tasks["Members@odata.count"], 0, "no task started");
    assert!(svc.sim.rack.lock().daemons[0].snapshot().update.is_none());
}

/// A loopback HTTPS event receiver; its certificate goes where the service looks for
/// receivers' CAs. Returns its URL and what it received.
async fn receiver(ca_dir: &Path) -> (String, Arc<Mutex<Vec<Value>>>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls_dir = ca_dir.join("receiver-tls");
    let racklet_tls::Identity { cert, key } = racklet_tls::load_or_create(&tls_dir).expect("cert");
    std::fs::copy(&cert, ca_dir.join("event-receivers-ca.pem")).expect("ca");
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |body: axum::body::Bytes| {
            let g = g.clone();
            async move {
                g.lock()
                    .expect("got")
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                axum::http::StatusCode::OK
            }
        }),
    );
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
        .await
        .expect("tls");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, config)
            .serve(app.into_make_service())
            .await
    });
    (format!("https://127.0.0.1:{}/events", addr.port()), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_sse_streams_and_https_subscribers() {
    let recv_dir = std::env::temp_dir().join(format!("racklet-recv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&recv_dir);
    std::fs::create_dir_all(&recv_dir).expect("dir");
    let (url, got) = receiver(&recv_dir).await;
    let ca = std::fs::read(recv_dir.join("event-receivers-ca.pem")).expect("ca");
    let svc = service("events", |d| {
        std::fs::write(d.join("event-receivers-ca.pem"), ca).expect("ca");
    })
    .await;
    let subs = "/redfish/v1/EventService/Subscriptions";

    // Bad subscriptions are refused.
    for (body, status, message) in [
        (
            json!({"Destination": url, "Protocol": "FTP"}),
            400,
            "Base.1.22.PropertyValueNotInList",
        ),
        (
            json!({"Destination": url.replace("https", "http"), "Protocol": "Redfish"}),
            400,
            "Base.1.22.PropertyValueFormatError",
        ),
        (
            json!({"Protocol": "Redfish"}),
            400,
            "Base.1.22.CreateFailedMissingReqProperties",
        ),
    ] {
        let r = svc
            .req(reqwest::Method::POST, subs)
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), status, "{body}");
        let v: Value = r.json().await.expect("JSON");
        assert_eq!(v["error"]["@Message.ExtendedInfo"][0]["MessageId"], message);
    }

    let r = svc
        .req(reqwest::Method::POST, subs)
        .json(&json!({"Destination": url, "Protocol": "Redfish", "Context": "rack-a"}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(r.status(), 201);
    assert!(r.headers().contains_key("Location"));

    let mut sse = svc
        .req(reqwest::Method::GET, "/redfish/v1/EventService/SSE")
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("SSE");
    assert_eq!(sse.status(), 200);
    assert_eq!(sse.headers()["Content-Type"], "text/event-stream");
    let listed = svc.get(subs).await;
    assert_eq!(
        listed["Members@odata.count"], 2,
        "the stream is a destination"
    );
    let sse_dest = listed["Members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["@odata.id"].as_str().unwrap_or_default().to_string())
        .find(|u| u != &format!("{subs}/1"))
        .expect("SSE destination");
    assert_eq!(svc.get(&sse_dest).await["SubscriptionType"], "SSE");

    // Something happens: tray 2 is powered on through Redfish.
    let r = svc
        .req(
            reqwest::Method::POST,
            "/redfish/v1/Systems/2/Actions/ComputerSystem.Reset",
        )
        .json(&json!({"ResetType": "On"}))
        .send()
        .await
        .expect("reset");
    assert!(r.status().is_success());

    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains("tray 2 power state") {
        let chunk = tokio::time::timeout_at(deadline, sse.chunk())
            .await
            .expect("an event within 20 s")
            .expect("stream")
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = text
        .lines()
        .find(|l| l.starts_with("data:") && l.contains("tray 2 power state"))
        .expect("data line");
    let event: Value = serde_json::from_str(data.trim_start_matches("data:").trim()).expect("JSON");
    assert_eq!(event["@odata.type"], "#Event.v1_13_0.Event");
    assert_eq!(
        event["Events"][0]["OriginOfCondition"]["@odata.id"],
        "/redfish/v1/Systems/2"
    );
    // Daemon events arrive in order with no gaps.
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .filter_map(|i| i.trim().parse().ok())
        .collect();
    assert!(!ids.is_empty(), "events carry ids");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "no gaps: {ids:?}");

    // Test events reach the stream too; an id with a line break is refused, not sent.
    let submit = "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent";
    let r = svc
        .req(reqwest::Method::POST, submit)
        .json(&json!({"EventId": "x\ndata: forged", "Message": "bad"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400);
    let r = svc
        .req(reqwest::Method::POST, submit)
        .json(&json!({"Message": "hello from the test", "MessageSeverity": "Warning"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 204);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("hello from the test") {
        let chunk = tokio::time::timeout_at(deadline, sse.chunk())
            .await
            .expect("the test event within 10 s")
            .expect("stream")
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains("forged"));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pushed = got.lock().expect("got").clone();
        if let Some(e) = pushed
            .iter()
            .find(|e| e.to_string().contains("tray 2 power state"))
        {
            assert_eq!(e["Context"], "rack-a");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "pushed: {pushed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Deleting the SSE destination closes the stream.
    let r = svc
        .req(reqwest::Method::DELETE, &sse_dest)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 204);
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = sse.chunk().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream closed");
    assert_eq!(svc.get(subs).await["Members@odata.count"], 1);

    // The push subscription survives a restart; the SSE one is gone.
    let saved =
        std::fs::read_to_string(svc.sim.dir.join("redfish/subscriptions.json")).expect("file");
    let saved: Vec<Value> = serde_json::from_str(&saved).expect("JSON");
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0]["destination"], url);
    let _ = std::fs::remove_dir_all(&recv_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_reset_restarts_a_bmc_or_the_daemon_without_touching_power() {
    let svc = service("mgr", |_| {}).await;
    svc.add_user("op", "Operator").await;
    let power = |svc: &Service| common::tray(&svc.sim.rack.lock().twin, 3).dcdc_en;
    // Tray 3 runs, so a restart that cut power would show.
    let r = svc
        .req(
            reqwest::Method::POST,
            "/redfish/v1/Systems/3/Actions/ComputerSystem.Reset",
        )
        .json(&json!({"ResetType": "On"}))
        .send()
        .await
        .expect("reset");
    assert!(r.status().is_success());
    let before = power(&svc);
    assert!(before, "tray 3 is powered");
    let boots = svc.sim.rack.lock().bmcs[2].boots();
    let info = svc.get("/redfish/v1/Managers/bmc-3/ResetActionInfo").await;
    assert_eq!(
        info["Parameters"][0]["AllowableValues"],
        json!(["GracefulRestart", "ForceRestart"])
    );
    let reset = |user: &str, pw: &str, id: &str, body: Value| {
        svc.http
            .post(format!(
                "{}/redfish/v1/Managers/{id}/Actions/Manager.Reset",
                svc.base
            ))
            .basic_auth(user, Some(pw.to_string()))
            .json(&body)
            .send()
    };
    let r = reset(
        "op",
        "correct horse battery",
        "bmc-3",
        json!({"ResetType": "GracefulRestart"}),
    )
    .await
    .expect("POST");
    assert_eq!(
        r.status(),
        403,
        "restarting a manager is an administrator's job"
    );
    let r = reset(
        "admin",
        &svc.sim.password,
        "bmc-3",
        json!({"ResetType": "Off"}),
    )
    .await
    .expect("POST");
    assert_eq!(r.status(), 400);
    let r = reset(
        "admin",
        &svc.sim.password,
        "bmc-3",
        json!({"ResetType": "GracefulRestart"}),
    )
    .await
    .expect("POST");
    assert_eq!(r.status(), 204);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while svc.sim.rack.lock().bmcs[2].boots() == boots {
        assert!(tokio::time::Instant::now() < deadline, "the BMC restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(svc.sim.rack.lock().bmcs[2].boots(), boots + 1);
    let r = reset("admin", &svc.sim.password, "rmc", json!({}))
        .await
        .expect("POST");
    assert_eq!(r.status(), 204);
    // The daemon comes back and trusts every BMC again, power untouched.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let bmc = svc.get("/redfish/v1/Managers/bmc-3").await;
        if bmc["FirmwareVersion"] == "1" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{bmc:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(power(&svc), before);
    let log = svc
        .get("/redfish/v1/Managers/rmc/LogServices/EventLog/Entries")
        .await
        .to_string();
    assert!(log.contains("restarted on request"), "{log}");
}
