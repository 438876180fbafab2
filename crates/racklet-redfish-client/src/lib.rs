//! The subset of DMTF Redfish the control plane speaks: log in (a session, or Basic auth
//! where a service has no SessionService), list systems, read power state and a system's
//! sensors, reset, push a firmware image as a task, and follow the SSE event stream. It
//! knows nothing of Racklet: it drives any Redfish service (a Racklet chassis, another
//! vendor's BMC, `sushy-emulator`).

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// What can go wrong talking to a Redfish service.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the Redfish service at {url}: {reason}; check that it runs and that the address and CA are right")]
    Unreachable { url: String, reason: String },
    #[error("the Redfish service at {base} refused the credentials of {user:?}; check the user name and password")]
    Unauthorized { base: String, user: String },
    #[error("{method} {url} answered {status}: {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} did not return the Redfish resource expected: {reason}")]
    Malformed { url: String, reason: String },
    #[error("cannot use the CA certificate: {0}; give a PEM file")]
    Ca(String),
    #[error("cannot set up the HTTPS client: {0}")]
    Setup(String),
}

impl ClientError {
    /// True when trying again later may help (the service is down, busy or timed out).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Status { status, .. } => *status >= 500 || *status == 409,
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, ClientError>;

/// How to reach one Redfish service.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `https://host:port` (the service root is `/redfish/v1` below it).
    pub base: String,
    pub user: String,
    pub password: String,
    /// Extra CA certificate(s), PEM, for a self-signed service.
    pub ca_pem: Option<Vec<u8>>,
}

/// One `ComputerSystem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    pub id: String,
    pub uri: String,
    pub name: String,
    /// `On`, `Off`, `PoweringOn`, `PoweringOff`, `Paused`; None when the service did not say.
    pub power_state: Option<String>,
    /// `Boot.BootSourceOverrideTarget` and `BootSourceOverrideEnabled`, if shown.
    pub boot_target: Option<String>,
    pub boot_enabled: Option<String>,
    /// `Status.State` (`Enabled`, `StandbyOffline`, `UnavailableOffline`, …) and
    /// `Status.Health` (`OK`, `Warning`, `Critical`), if shown.
    pub state: Option<String>,
    pub health: Option<String>,
    /// `Boot.HttpBootUri`, if shown.
    pub http_boot_uri: Option<String>,
    /// `Boot.Certificates`: the HTTPS boot certificates collection, if the service has one.
    pub boot_certificates: Option<String>,
    /// The resource as the service sent it, for vendor (`Oem`) properties.
    pub body: Value,
    reset_target: Option<String>,
}

impl System {
    /// True when the system boots from the network (a PXE or UEFI HTTP boot override).
    pub fn boots_from_network(&self) -> bool {
        self.boot_enabled
            .as_deref()
            .is_some_and(|e| e != "Disabled")
            && matches!(self.boot_target.as_deref(), Some("Pxe" | "UefiHttp"))
    }
}

/// One `Sensor` of a chassis.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    pub name: String,
    /// None when the service gives no reading; `state` then says why.
    pub reading: Option<f64>,
    /// UCUM units as Redfish gives them (`W`, `Cel`, `V`, ...).
    pub units: String,
    /// `Status.State`: `Enabled`, `UnavailableOffline`, `Absent`, ...
    pub state: String,
}

/// Where a Redfish task stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    /// `Running`, `Completed`, `Exception`, ...
    pub state: String,
    pub percent: u8,
    /// The task's messages, `MessageId: text (resolution)`.
    pub messages: Vec<String>,
}

impl TaskStatus {
    pub fn finished(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "New" | "Starting" | "Running" | "Pending" | "Stopping" | "Suspended" | "Service"
        )
    }
}

/// The longest SSE event taken; a service that sends more without ending an event is
/// misbehaving, and its bytes are dropped.
const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Splits an SSE byte stream into events' `data` (W3C EventSource framing: LF, CR LF or
/// CR end a line; a blank line ends an event; comments and other fields are skipped).
#[derive(Default)]
struct SseParser {
    /// The current event's lines so far, with LF line ends.
    buf: Vec<u8>,
    /// Where to look for the next event end, so every byte is scanned once.
    scanned: usize,
    /// The last byte was a CR: an LF right after it is the same line end.
    after_cr: bool,
    /// Bytes are being dropped until the end of an oversized event.
    skipping: bool,
}

enum SseItem {
    Data(String),
    TooLarge,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' => {
                    self.buf.push(b'\n');
                    self.after_cr = true;
                }
                _ => {
                    self.buf.push(b);
                    self.after_cr = false;
                }
            }
        }
    }

    /// The next complete event, if one has arrived.
    fn next_item(&mut self) -> Option<SseItem> {
        loop {
            let from = self.scanned.saturating_sub(1);
            let Some(at) = self.buf[from..].windows(2).position(|w| w == b"\n\n") else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_EVENT_BYTES {
                    self.buf.clear();
                    self.scanned = 0;
                    let first = !self.skipping;
                    self.skipping = true;
                    if first {
                        return Some(SseItem::TooLarge);
                    }
                }
                return None;
            };
            let end = from + at + 2;
            let block: Vec<u8> = self.buf.drain(..end).collect();
            self.scanned = 0;
            if std::mem::take(&mut self.skipping) {
                continue; // the rest of the oversized event
            }
            let text = String::from_utf8_lossy(&block);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                return Some(SseItem::Data(data.join("\n")));
            }
        }
    }
}

/// An open Redfish SSE stream; see [`Client::event_stream`].
pub struct EventStream {
    url: String,
    resp: reqwest::Response,
    parser: SseParser,
}

impl EventStream {
    /// The next event (a Redfish `Event`); None when the service ended the stream.
    /// [`ClientError::Malformed`] is one bad event, and the stream goes on after it; any
    /// other error ends the stream.
    pub async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            match self.parser.next_item() {
                Some(SseItem::Data(data)) => {
                    return serde_json::from_str(&data).map(Some).map_err(|e| {
                        ClientError::Malformed {
                            url: self.url.clone(),
                            reason: format!("an event's data is not JSON: {e}"),
                        }
                    })
                }
                Some(SseItem::TooLarge) => {
                    return Err(ClientError::Malformed {
                        url: self.url.clone(),
                        reason: format!("an event longer than {MAX_EVENT_BYTES} bytes was dropped"),
                    })
                }
                None => {}
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.parser.push(&bytes),
                Ok(None) => return Ok(None),
                Err(e) => return Err(unreachable(&self.url, &e)),
            }
        }
    }
}

enum Auth {
    Unknown,
    Session { token: String, uri: String },
    Basic,
}

/// A client of one Redfish service; cheap to share behind an `Arc`.
pub struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    auth: Mutex<Auth>,
}

impl Client {
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Result<Client> {
        Self::build(endpoint, reqwest::Client::builder().timeout(timeout))
    }

    fn build(endpoint: Endpoint, builder: reqwest::ClientBuilder) -> Result<Client> {
        let mut builder = builder.redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &endpoint.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Ca(e.to_string()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Ca(e.to_string()))?;
        Ok(Client {
            http,
            endpoint,
            auth: Mutex::new(Auth::Unknown),
        })
    }

    /// A client for [`Client::event_stream`]: no limit on the whole request, but one on
    /// connecting and on silence (Redfish SSE services send keep-alives), so a dead
    /// connection is noticed.
    pub fn for_events(endpoint: Endpoint) -> Result<Client> {
        Self::build(
            endpoint,
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(60)),
        )
    }

    pub fn base(&self) -> &str {
        &self.endpoint.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.base.trim_end_matches('/'))
    }

    fn auth(&self) -> std::sync::MutexGuard<'_, Auth> {
        self.auth.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session; a service without a SessionService gets Basic auth instead.
    async fn login(&self) -> Result<()> {
        let url = self.url("/redfish/v1/SessionService/Sessions");
        let resp = self
            .http
            .post(&url)
            .json(&json!({"UserName": self.endpoint.user, "Password": self.endpoint.password}))
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ClientError::Unauthorized {
                base: self.endpoint.base.clone(),
                user: self.endpoint.user.clone(),
            });
        }
        if !status.is_success() {
            *self.auth() = Auth::Basic;
            return Ok(());
        }
        let token = resp
            .headers()
            .get("X-Auth-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let uri = resp
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        *self.auth() = match token {
            Some(token) => Auth::Session { token, uri },
            None => Auth::Basic,
        };
        Ok(())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<reqwest::Response> {
        self.send_accepting(method, path, body, "application/json")
            .await
    }

    async fn send_accepting(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
        accept: &str,
    ) -> Result<reqwest::Response> {
        if matches!(*self.auth(), Auth::Unknown) {
            self.login().await?;
        }
        let url = if path.starts_with("http") {
            // Credentials go only to the service itself, whatever URL it hands out.
            let same_origin = reqwest::Url::parse(path)
                .ok()
                .zip(reqwest::Url::parse(&self.endpoint.base).ok())
                .is_some_and(|(a, b)| a.origin() == b.origin());
            if !same_origin {
                return Err(ClientError::Malformed {
                    url: path.to_string(),
                    reason: format!(
                        "the service pointed to another origin than {}; refusing to send credentials there",
                        self.endpoint.base
                    ),
                });
            }
            path.to_string()
        } else {
            self.url(path)
        };
        for attempt in 0..2 {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header(reqwest::header::ACCEPT, accept);
            req = match &*self.auth() {
                Auth::Session { token, .. } => req.header("X-Auth-Token", token.as_str()),
                _ => req.basic_auth(&self.endpoint.user, Some(&self.endpoint.password)),
            };
            req = match &body {
                Some(Body::Json(v)) => req.json(v),
                Some(Body::Multipart(make)) => req.multipart(make()),
                None => req,
            };
            let resp = req.send().await.map_err(|e| unreachable(&url, &e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                // The session expired (or the service restarted): log in again, once.
                self.login().await?;
                continue;
            }
            if resp.status() == StatusCode::UNAUTHORIZED {
                return Err(ClientError::Unauthorized {
                    base: self.endpoint.base.clone(),
                    user: self.endpoint.user.clone(),
                });
            }
            if !resp.status().is_success() {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                return Err(ClientError::Status {
                    method: method.to_string(),
                    url,
                    status,
                    message: error_message(&text),
                });
            }
            return Ok(resp);
        }
        Err(ClientError::Unauthorized {
            base: self.endpoint.base.clone(),
            user: self.endpoint.user.clone(),
        })
    }

    /// GETs a resource as JSON.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let resp = self.send(Method::GET, path, None).await?;
        let url = resp.url().to_string();
        resp.json().await.map_err(|e| ClientError::Malformed {
            url,
            reason: e.to_string(),
        })
    }

    /// POSTs a JSON body (e.g. to create an account); returns the `Location`, if any.
    pub async fn post_json(&self, path: &str, body: Value) -> Result<Option<String>> {
        let resp = self
            .send(Method::POST, path, Some(Body::Json(body)))
            .await?;
        Ok(resp
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string))
    }

    /// PATCHes a resource with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> Result<()> {
        self.send(Method::PATCH, path, Some(Body::Json(body)))
            .await
            .map(|_| ())
    }

    /// Every system of the service.
    pub async fn systems(&self) -> Result<Vec<System>> {
        let root = self.get("/redfish/v1").await?;
        let collection = odata_id(&root["Systems"]).ok_or_else(|| ClientError::Malformed {
            url: self.url("/redfish/v1"),
            reason: "the service root has no Systems".into(),
        })?;
        let list = self.get(&collection).await?;
        let mut systems = Vec::new();
        for m in list["Members"].as_array().into_iter().flatten() {
            if let Some(uri) = odata_id(m) {
                systems.push(self.system(&uri).await?);
            }
        }
        Ok(systems)
    }

    /// One system by its URI.
    pub async fn system(&self, uri: &str) -> Result<System> {
        let v = self.get(uri).await?;
        let id = v["Id"].as_str().ok_or_else(|| ClientError::Malformed {
            url: self.url(uri),
            reason: "no Id".into(),
        })?;
        Ok(System {
            id: id.to_string(),
            uri: uri.to_string(),
            name: v["Name"].as_str().unwrap_or(id).to_string(),
            power_state: v["PowerState"].as_str().map(str::to_string),
            boot_target: v["Boot"]["BootSourceOverrideTarget"]
                .as_str()
                .map(str::to_string),
            boot_enabled: v["Boot"]["BootSourceOverrideEnabled"]
                .as_str()
                .map(str::to_string),
            state: v["Status"]["State"].as_str().map(str::to_string),
            health: v["Status"]["Health"].as_str().map(str::to_string),
            http_boot_uri: v["Boot"]["HttpBootUri"].as_str().map(str::to_string),
            boot_certificates: odata_id(&v["Boot"]["Certificates"]),
            reset_target: v["Actions"]["#ComputerSystem.Reset"]["target"]
                .as_str()
                .map(str::to_string),
            body: v,
        })
    }

    /// The sensors of the chassis that holds a system (its `Links.Chassis`); empty when
    /// the service links no chassis or the chassis has no `Sensors`.
    pub async fn system_sensors(&self, system_uri: &str) -> Result<Vec<Sensor>> {
        let system = self.get(system_uri).await?;
        let Some(chassis) = system["Links"]["Chassis"]
            .as_array()
            .and_then(|c| c.first())
            .and_then(odata_id)
        else {
            return Ok(Vec::new());
        };
        let Some(collection) = odata_id(&self.get(&chassis).await?["Sensors"]) else {
            return Ok(Vec::new());
        };
        let list = self.get(&collection).await?;
        let mut sensors = Vec::new();
        for uri in list["Members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(odata_id)
        {
            let v = self.get(&uri).await?;
            sensors.push(Sensor {
                name: v["Name"].as_str().unwrap_or(&uri).to_string(),
                reading: v["Reading"].as_f64(),
                units: v["ReadingUnits"].as_str().unwrap_or_default().to_string(),
                state: v["Status"]["State"]
                    .as_str()
                    .unwrap_or("Unknown")
                    .to_string(),
            });
        }
        Ok(sensors)
    }

    /// Opens the service's Redfish SSE stream (`EventService.ServerSentEventUri`). Use a
    /// client from [`Client::for_events`]: the stream lasts as long as its request may.
    pub async fn event_stream(&self) -> Result<EventStream> {
        let service = self.get("/redfish/v1/EventService").await?;
        let uri = service["ServerSentEventUri"]
            .as_str()
            .ok_or_else(|| ClientError::Malformed {
                url: self.url("/redfish/v1/EventService"),
                reason: "the EventService has no ServerSentEventUri".into(),
            })?;
        let resp = self
            .send_accepting(Method::GET, uri, None, "text/event-stream")
            .await?;
        Ok(EventStream {
            url: resp.url().to_string(),
            resp,
            parser: SseParser::default(),
        })
    }

    /// `ComputerSystem.Reset` with `reset_type` (`On`, `ForceOff`, `GracefulShutdown`, ...).
    pub async fn reset(&self, system: &System, reset_type: &str) -> Result<()> {
        let target = system
            .reset_target
            .clone()
            .unwrap_or_else(|| format!("{}/Actions/ComputerSystem.Reset", system.uri));
        self.send(
            Method::POST,
            &target,
            Some(Body::Json(json!({"ResetType": reset_type}))),
        )
        .await
        .map(|_| ())
    }

    /// The UpdateService's `MultipartHttpPushUri`.
    pub async fn push_uri(&self) -> Result<String> {
        let update = self.get("/redfish/v1/UpdateService").await?;
        update["MultipartHttpPushUri"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::Malformed {
                url: self.url("/redfish/v1/UpdateService"),
                reason: "no MultipartHttpPushUri: the service takes no multipart updates".into(),
            })
    }

    /// Pushes a firmware image to `target` (e.g. `/redfish/v1/Managers/bmc-3`) through the
    /// UpdateService's `MultipartHttpPushUri`; returns the task monitor URI.
    pub async fn push_firmware(&self, target: &str, image: Vec<u8>) -> Result<String> {
        let push = self.push_uri().await?;
        self.push_firmware_to(&push, target, image).await
    }

    /// Pushes to a known push URI (see [`Client::push_uri`]); returns the task monitor URI.
    pub async fn push_firmware_to(
        &self,
        push: &str,
        target: &str,
        image: Vec<u8>,
    ) -> Result<String> {
        let push = push.to_string();
        let params = json!({"Targets": [target]}).to_string();
        let image = std::sync::Arc::new(image);
        let make = move || {
            let params = reqwest::multipart::Part::text(params.clone())
                .mime_str("application/json")
                .unwrap_or_else(|_| reqwest::multipart::Part::text(params.clone()));
            reqwest::multipart::Form::new()
                .part("UpdateParameters", params)
                .part(
                    "UpdateFile",
                    reqwest::multipart::Part::bytes(image.to_vec()).file_name("firmware.bin"),
                )
        };
        let resp = self
            .send(Method::POST, &push, Some(Body::Multipart(Box::new(make))))
            .await?;
        resp.headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| ClientError::Malformed {
                url: self.url(&push),
                reason: "the update was accepted without a task monitor (Location)".into(),
            })
    }

    /// Reads a task monitor (or a task).
    pub async fn task(&self, monitor: &str) -> Result<TaskStatus> {
        let v = self.get(monitor).await?;
        Ok(TaskStatus {
            state: v["TaskState"].as_str().unwrap_or("Unknown").to_string(),
            percent: v["PercentComplete"]
                .as_u64()
                .map_or(0, |p| p.min(100) as u8),
            messages: v["Messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    let mut s = format!(
                        "{}: {}",
                        m["MessageId"].as_str().unwrap_or_default(),
                        m["Message"].as_str().unwrap_or_default()
                    );
                    if let Some(r) = m["Resolution"].as_str() {
                        s.push_str(&format!(" ({r})"));
                    }
                    s
                })
                .collect(),
        })
    }

    /// Ends the session, if one is open.
    pub async fn logout(&self) {
        let uri = match &*self.auth() {
            Auth::Session { uri, .. } if !uri.is_empty() => uri.clone(),
            _ => return,
        };
        let _ = self.send(Method::DELETE, &uri, None).await;
        *self.auth() = Auth::Unknown;
    }
}

enum Body {
    Json(Value),
    Multipart(Box<dyn Fn() -> reqwest::multipart::Form + Send + Sync>),
}

fn unreachable(url: &str, e: &reqwest::Error) -> ClientError {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(&format!(": {s}"));
        source = s.source();
    }
    ClientError::Unreachable {
        url: url.to_string(),
        reason,
    }
}

fn odata_id(v: &Value) -> Option<String> {
    v["@odata.id"].as_str().map(str::to_string)
}

/// The first Redfish message of an error body, or the body itself.
fn error_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let err = &v["error"];
    let info = &err["@Message.ExtendedInfo"][0];
    match (info["Message"].as_str(), err["message"].as_str()) {
        (Some(m), _) => {
            let mut s = m.to_string();
            if let Some(r) = info["Resolution"].as_str().filter(|r| *r != "None.") {
                s.push_str(&format!(" {r}"));
            }
            // The messages after the first say what exactly: a GeneralError's words are its
            // Resolution, any other's its Message.
            for i in err["@Message.ExtendedInfo"]
                .as_array()
                .into_iter()
                .flatten()
                .skip(1)
            {
                let resolution = i["Resolution"].as_str().filter(|r| *r != "None.");
                let general = i["MessageId"]
                    .as_str()
                    .is_some_and(|id| id.ends_with(".GeneralError"));
                if let Some(more) = resolution.filter(|_| general).or(i["Message"].as_str()) {
                    s.push_str(&format!(" {more}"));
                }
            }
            s
        }
        (None, Some(m)) => m.to_string(),
        (None, None) => body.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c);
            while let Some(item) = p.next_item() {
                out.push(match item {
                    SseItem::Data(d) => d,
                    SseItem::TooLarge => "<too large>".into(),
                });
            }
        }
        out
    }

    #[test]
    fn sse_events_are_split_on_blank_lines_whatever_the_line_ends_and_chunks() {
        let lf: &[&[u8]] = &[
            b"id: 1\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\"",
            b":2}\n",
            b"\n",
        ];
        assert_eq!(events_of(lf), [r#"{"a":1}"#, r#"{"b":2}"#]);
        // CR LF split between chunks, and bare CR, end lines too.
        let crlf: &[&[u8]] = &[b"data: 1\r", b"\n\r", b"\ndata:2\r\r"];
        assert_eq!(events_of(crlf), ["1", "2"]);
        // Several data lines make one event, joined by LF.
        assert_eq!(events_of(&[b"data: [1,\ndata: 2]\n\n"]), ["[1,\n2]"]);
        // Comments and events without data give nothing.
        assert!(events_of(&[b": ping\n\nevent: x\nid: 3\n\n"]).is_empty());
    }

    #[test]
    fn an_sse_event_over_the_limit_is_dropped_and_the_stream_goes_on() {
        let big = vec![b'x'; MAX_EVENT_BYTES + 10];
        let out = events_of(&[b"data: ", &big, &big, b"\n\ndata: after\n\n"]);
        assert_eq!(out, ["<too large>", "after"]);
    }

    #[test]
    fn error_bodies_give_their_first_message_and_resolution() {
        let body = r#"{"error":{"code":"Base.1.22.ResourceInUse","message":"x","@Message.ExtendedInfo":[{"Message":"The change failed.","Resolution":"Wait."}]}}"#;
        assert_eq!(error_message(body), "The change failed. Wait.");
        let body = r#"{"error":{"code":"Base.1.22.ResourceInUse","message":"x","@Message.ExtendedInfo":[{"Message":"The change failed.","Resolution":"None."},{"MessageId":"Base.1.22.GeneralError","Message":"A general error has occurred.","Resolution":"tray 2 shows another identity"}]}}"#;
        assert_eq!(
            error_message(body),
            "The change failed. tray 2 shows another identity"
        );
        assert_eq!(error_message("plain text"), "plain text");
    }

    #[test]
    fn only_running_task_states_are_unfinished() {
        let t = |s: &str| TaskStatus {
            state: s.into(),
            percent: 0,
            messages: vec![],
        };
        assert!(!t("Running").finished());
        assert!(t("Completed").finished());
        assert!(t("Exception").finished());
    }
}
