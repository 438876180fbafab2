//! The EventService: the daemon's event log as Redfish `Event`s, pushed to subscribers
//! over HTTPS and streamed to clients as server-sent events (SSE).
//!
//! - A pump subscribes to the daemon's log (`ChassisManager::subscribe_events`), reads
//!   what is new with `events(since)` whenever it changes, and hands each new event to
//!   every SSE stream and to every subscription's delivery worker (one per subscription,
//!   in order, with retries).
//! - Push subscriptions (`Protocol: Redfish`, `https://` destinations only) are kept in
//!   `DIR/subscriptions.json` (owner-only) and survive restarts. Receivers' certificates
//!   are checked against the Web PKI roots plus `DIR/event-receivers-ca.pem`, if present.
//! - Opening the SSE stream creates an `SSE` EventDestination; closing the stream deletes
//!   it, and deleting it closes the stream.
//!
//! Daemon events carry `MessageId` `RackletEvent.1.0.DaemonEvent` with the daemon's text as
//! the only argument (the log is free text; see ARCHITECTURE.md).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path as UriPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use racklet_rmd_api::{ChassisManager, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc, watch};

use crate::accounts::Role;
use crate::error::{Message, RedfishError};
use crate::odata::{
    listing, ok, only_known, require, rfc3339, string_prop, visible_to, with_allow,
};
use crate::tasks::now_ms;
use crate::{json_object, AppState, Caller};

/// Most push subscriptions at once.
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// Most open SSE streams at once (counted apart, so streams cannot crowd out subscribers).
pub const MAX_SSE_STREAMS: usize = 16;
/// Delivery attempts per event and the pause between them.
pub const DELIVERY_ATTEMPTS: u32 = 3;
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Events waiting per push subscription before the oldest are dropped.
const QUEUE: usize = 256;

const COLLECTION: &str = "/redfish/v1/EventService/Subscriptions";

/// One event, ready to send: its SSE id and the Redfish `Event` payload.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: String,
    pub record: Value,
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub destination: String,
    pub context: String,
    /// `RedfishEvent` (pushed) or `SSE`.
    pub kind: String,
    pub owner: String,
}

impl Subscription {
    fn uri(&self) -> String {
        format!("{COLLECTION}/{}", self.id)
    }

    fn to_json(&self) -> Value {
        json!({
            "@odata.id": self.uri(),
            "@odata.type": "#EventDestination.v1_16_0.EventDestination",
            "Id": self.id,
            "Name": format!("Event subscription {}", self.id),
            "Destination": self.destination,
            "Context": self.context,
            "Protocol": "Redfish",
            "SubscriptionType": self.kind,
            "EventFormatType": "Event",
            "Status": {"State": "Enabled", "Health": "OK"},
        })
    }
}

/// Why the subscription file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    #[error("cannot read or write {path}; check the data dir's permissions and free space")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt; move it away and subscribe again")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "cannot use {path} as the event receivers' CA: {reason}; fix the PEM file or remove it"
    )]
    Ca { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] racklet_files::WriteError),
    #[error("cannot set up the HTTPS client that delivers events: {0}")]
    Client(String),
}

struct Live {
    sub: Subscription,
    /// Push subscriptions: the delivery worker's queue. SSE: none.
    queue: Option<mpsc::Sender<Outgoing>>,
    /// Set to true when the subscription is deleted (closes an SSE stream).
    closed: watch::Sender<bool>,
}

/// Subscriptions, the SSE fan-out and the HTTPS client that delivers events.
pub struct Hub {
    path: PathBuf,
    subs: Mutex<BTreeMap<u64, Live>>,
    next: Mutex<u64>,
    sse: broadcast::Sender<Outgoing>,
    client: reqwest::Client,
    test_events: Mutex<u64>,
    /// Dropped with the hub; the pump stops when it is.
    alive: watch::Sender<()>,
}

impl Hub {
    /// Loads `DIR/subscriptions.json` and the optional receivers' CA.
    pub fn open(dir: &Path) -> Result<Arc<Hub>, EventStoreError> {
        let path = dir.join("subscriptions.json");
        let stored: Vec<Subscription> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| EventStoreError::Corrupt {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(EventStoreError::Io { path, source }),
        };
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true);
        let ca = dir.join("event-receivers-ca.pem");
        if let Ok(pem) = std::fs::read(&ca) {
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| EventStoreError::Ca {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| EventStoreError::Client(e.to_string()))?;
        let (sse, _) = broadcast::channel(QUEUE);
        let hub = Arc::new(Hub {
            path,
            subs: Mutex::new(BTreeMap::new()),
            next: Mutex::new(1),
            sse,
            client,
            test_events: Mutex::new(0),
            alive: watch::channel(()).0,
        });
        for sub in stored {
            if let Ok(n) = sub.id.parse::<u64>() {
                let mut next = lock(&hub.next);
                *next = (*next).max(n + 1);
                drop(next);
                let live = hub.live(sub);
                lock(&hub.subs).insert(n, live);
            }
        }
        Ok(hub)
    }

    fn live(&self, sub: Subscription) -> Live {
        let (closed, _) = watch::channel(false);
        let queue = (sub.kind == "RedfishEvent").then(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(deliver(
                    self.client.clone(),
                    sub.destination.clone(),
                    sub.context.clone(),
                    rx,
                    closed.subscribe(),
                ));
            }
            tx
        });
        Live { sub, queue, closed }
    }

    /// Writes the push subscriptions; called with the map locked, so saves never interleave.
    fn save(&self, subs: &BTreeMap<u64, Live>) -> Result<(), EventStoreError> {
        let pushed: Vec<&Subscription> = subs
            .values()
            .filter(|l| l.sub.kind == "RedfishEvent")
            .map(|l| &l.sub)
            .collect();
        let bytes =
            serde_json::to_vec_pretty(&pushed).map_err(|source| EventStoreError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        Ok(racklet_files::write_secret(&self.path, &bytes)?)
    }

    fn add(&self, mut sub: Subscription) -> Result<(Subscription, u64), RedfishError> {
        let mut subs = lock(&self.subs);
        let (limit, what) = if sub.kind == "SSE" {
            (MAX_SSE_STREAMS, "open SSE streams")
        } else {
            (MAX_SUBSCRIPTIONS, "push subscriptions")
        };
        if subs.values().filter(|l| l.sub.kind == sub.kind).count() >= limit {
            return Err(RedfishError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Message::GeneralError(format!(
                    "This service keeps at most {limit} {what}; close or delete one first."
                )),
            ));
        }
        let n = {
            let mut next = lock(&self.next);
            let n = *next;
            *next += 1;
            n
        };
        sub.id = n.to_string();
        let live = self.live(sub.clone());
        subs.insert(n, live);
        if sub.kind == "RedfishEvent" {
            if let Err(e) = self.save(&subs) {
                if let Some(l) = subs.remove(&n) {
                    let _ = l.closed.send(true);
                }
                return Err(RedfishError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Message::GeneralError(crate::error::chain(&e)),
                ));
            }
        }
        Ok((sub, n))
    }

    fn remove(&self, n: u64) -> Option<Subscription> {
        let mut subs = lock(&self.subs);
        let live = subs.remove(&n)?;
        let _ = live.closed.send(true);
        if live.sub.kind == "RedfishEvent" {
            if let Err(e) = self.save(&subs) {
                tracing::warn!("{}", crate::error::chain(&e));
            }
        }
        Some(live.sub)
    }

    /// Sends an event to every SSE stream and queues it for every push subscription.
    pub fn publish(&self, event: Outgoing) {
        let _ = self.sse.send(event.clone());
        for live in lock(&self.subs).values() {
            if let Some(q) = &live.queue {
                if q.try_send(event.clone()).is_err() {
                    tracing::warn!(
                        subscription = %live.sub.id,
                        "event {} dropped: the receiver at {} is too slow or unreachable",
                        event.id,
                        live.sub.destination
                    );
                }
            }
        }
    }

    pub fn subscriptions(&self) -> Vec<Subscription> {
        lock(&self.subs).values().map(|l| l.sub.clone()).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The Redfish `Event` for one record (the `Context` is filled in per destination).
fn event_payload(id: &str, record: &Value, context: &str) -> Value {
    json!({
        "@odata.type": "#Event.v1_13_0.Event",
        "Id": id,
        "Name": "Racklet event",
        "Context": context,
        "Events": [record],
    })
}

fn daemon_record(e: &racklet_rmd_api::Event) -> Value {
    let severity = match e.severity {
        Severity::Info => "OK",
        Severity::Warning => "Warning",
        Severity::Critical => "Critical",
    };
    let mut r = json!({
        "MemberId": "0",
        "EventType": "Other",
        "EventId": e.sequence.to_string(),
        "EventTimestamp": rfc3339(e.unix_ms),
        "MessageId": "RackletEvent.1.0.DaemonEvent",
        "Message": e.message,
        "MessageArgs": [e.message],
        "MessageSeverity": severity,
    });
    let origin = match e.slot {
        Some(slot) => format!("/redfish/v1/Systems/{slot}"),
        None => "/redfish/v1/Managers/rmc".to_string(),
    };
    r["OriginOfCondition"] = json!({"@odata.id": origin});
    r
}

/// Publishes the daemon's new events as they are logged, until the hub or the daemon is
/// gone. The subscription only says that something changed; what is new is read back with
/// `events(since)`, so events logged while the pump was busy are not lost.
pub(crate) fn spawn_pump<M: ChassisManager + Clone + 'static>(manager: M, hub: &Arc<Hub>) {
    if tokio::runtime::Handle::try_current().is_err() {
        tracing::warn!("no async runtime: Redfish events are not published");
        return;
    }
    let weak = Arc::downgrade(hub);
    let mut hub_alive = hub.alive.subscribe();
    // Subscribed before reading where the log stands, so nothing falls in between.
    let mut logged = manager.subscribe_events();
    tokio::spawn(async move {
        // Only what happens from now on is news.
        let mut since = manager.events(0).await.last().map_or(0, |e| e.sequence);
        loop {
            tokio::select! {
                changed = logged.changed() => {
                    if changed.is_err() {
                        break; // the daemon is gone
                    }
                }
                _ = hub_alive.changed() => break, // the hub was dropped
            }
            let Some(hub) = weak.upgrade() else { break };
            for e in manager.events(since).await {
                since = since.max(e.sequence);
                hub.publish(Outgoing {
                    id: e.sequence.to_string(),
                    record: daemon_record(&e),
                });
            }
        }
    });
}

/// Delivers one push subscription's events in order, with retries.
async fn deliver(
    client: reqwest::Client,
    destination: String,
    context: String,
    mut rx: mpsc::Receiver<Outgoing>,
    mut closed: watch::Receiver<bool>,
) {
    loop {
        // A deleted subscription gets nothing more, not even what was queued.
        let event = tokio::select! {
            _ = closed.changed() => return,
            got = rx.recv() => match got {
                Some(e) => e,
                None => return,
            },
        };
        if *closed.borrow() {
            return;
        }
        let body = event_payload(&event.id, &event.record, &context);
        for attempt in 1..=DELIVERY_ATTEMPTS {
            let sent = client
                .post(&destination)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => tracing::warn!(
                    "event {} to {destination}: the receiver answered {} (attempt {attempt} of {DELIVERY_ATTEMPTS})",
                    event.id,
                    r.status()
                ),
                Err(e) => tracing::warn!(
                    "event {} to {destination}: {e} (attempt {attempt} of {DELIVERY_ATTEMPTS})",
                    event.id
                ),
            }
            if attempt < DELIVERY_ATTEMPTS {
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
        }
    }
}

type St<M> = State<Arc<AppState<M>>>;
type Res = Result<Response, RedfishError>;

/// The EventService's routes.
pub(crate) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route("/redfish/v1/EventService", get(event_service))
        .route(
            "/redfish/v1/EventService/Subscriptions",
            get(subscriptions::<M>).post(subscribe::<M>),
        )
        .route(
            "/redfish/v1/EventService/Subscriptions/{id}",
            get(subscription::<M>).delete(unsubscribe::<M>),
        )
        .route("/redfish/v1/EventService/SSE", get(sse::<M>))
        .route(
            "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent",
            post(submit_test_event::<M>),
        )
}

pub(crate) async fn event_service() -> Response {
    let body = json!({
        "@odata.id": "/redfish/v1/EventService",
        "@odata.type": "#EventService.v1_12_0.EventService",
        "Id": "EventService",
        "Name": "Event Service",
        "ServiceEnabled": true,
        "DeliveryRetryAttempts": DELIVERY_ATTEMPTS,
        "DeliveryRetryIntervalSeconds": RETRY_INTERVAL.as_secs(),
        "EventFormatTypes": ["Event"],
        "ServerSentEventUri": "/redfish/v1/EventService/SSE",
        "Status": {"State": "Enabled", "Health": "OK"},
        "Subscriptions": {"@odata.id": COLLECTION},
        "Actions": {
            "#EventService.SubmitTestEvent": {
                "target": "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent",
            },
        },
    });
    with_allow(ok(body), "GET, HEAD")
}

pub(crate) async fn subscriptions<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let members = s
        .events
        .subscriptions()
        .iter()
        .filter(|x| visible_to(&caller, &x.owner))
        .map(Subscription::uri)
        .collect();
    listing(
        COLLECTION,
        "EventDestinationCollection",
        "Event subscriptions",
        members,
        "GET, HEAD, POST",
    )
}

fn string_field(o: &Map<String, Value>, name: &str) -> Result<Option<String>, RedfishError> {
    Ok(string_prop(o, name)?.map(str::to_string))
}

fn one_of(o: &Map<String, Value>, name: &str, allowed: &[&str]) -> Result<(), RedfishError> {
    match string_field(o, name)? {
        Some(v) if !allowed.contains(&v.as_str()) => {
            Err(RedfishError::bad_request(Message::PropertyValueNotInList {
                value: v,
                property: name.into(),
            }))
        }
        _ => Ok(()),
    }
}

/// `https://host[:port]/...` only: events can carry state worth protecting.
fn check_destination(d: &str) -> Result<(), RedfishError> {
    let bad = || {
        let mut e = RedfishError::bad_request(Message::PropertyValueFormatError {
            value: d.into(),
            property: "Destination".into(),
        });
        e.messages.push(Message::GeneralError(
            "Destination must be an https:// URL with a host and no credentials; plain HTTP is not offered.".into(),
        ));
        e
    };
    let url = reqwest::Url::parse(d).map_err(|_| bad())?;
    let credentials = !url.username().is_empty() || url.password().is_some();
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) || credentials {
        return Err(bad());
    }
    Ok(())
}

pub(crate) async fn subscribe<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Res {
    require(&caller, Role::Operator)?;
    let o = json_object(&body)?;
    only_known(
        &o,
        &[
            "Destination",
            "Protocol",
            "Context",
            "EventFormatType",
            "SubscriptionType",
        ],
    )?;
    let destination = string_field(&o, "Destination")?.ok_or_else(|| {
        RedfishError::bad_request(Message::CreateFailedMissingReqProperties(
            "Destination".into(),
        ))
    })?;
    if string_field(&o, "Protocol")?.is_none() {
        return Err(RedfishError::bad_request(
            Message::CreateFailedMissingReqProperties("Protocol".into()),
        ));
    }
    one_of(&o, "Protocol", &["Redfish"])?;
    one_of(&o, "EventFormatType", &["Event"])?;
    one_of(&o, "SubscriptionType", &["RedfishEvent"])?;
    check_destination(&destination)?;
    let context = string_field(&o, "Context")?.unwrap_or_default();
    let (sub, _) = s.events.add(Subscription {
        id: String::new(),
        destination,
        context,
        kind: "RedfishEvent".into(),
        owner: caller.user.clone(),
    })?;
    let mut resp = (StatusCode::CREATED, Json(sub.to_json())).into_response();
    if let Ok(v) = HeaderValue::from_str(&sub.uri()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

fn subscription_number(id: &str) -> Result<u64, RedfishError> {
    id.parse::<u64>()
        .map_err(|_| RedfishError::not_found("EventDestination", id))
}

pub(crate) async fn subscription<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    UriPath(id): UriPath<String>,
) -> Res {
    let n = subscription_number(&id)?;
    let sub = lock(&s.events.subs)
        .get(&n)
        .map(|l| l.sub.clone())
        .filter(|x| visible_to(&caller, &x.owner))
        .ok_or_else(|| RedfishError::not_found("EventDestination", &id))?;
    Ok(with_allow(ok(sub.to_json()), "GET, HEAD, DELETE"))
}

pub(crate) async fn unsubscribe<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    UriPath(id): UriPath<String>,
) -> Res {
    let n = subscription_number(&id)?;
    let owner = lock(&s.events.subs)
        .get(&n)
        .map(|l| l.sub.owner.clone())
        .ok_or_else(|| RedfishError::not_found("EventDestination", &id))?;
    if !visible_to(&caller, &owner) {
        require(&caller, Role::Administrator)?;
    }
    s.events.remove(n);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn submit_test_event<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Res {
    require(&caller, Role::Operator)?;
    let o = if body.is_empty() {
        Map::new()
    } else {
        json_object(&body)?
    };
    only_known(
        &o,
        &[
            "EventId",
            "EventTimestamp",
            "Message",
            "MessageArgs",
            "MessageId",
            "MessageSeverity",
            "Severity",
            "OriginOfCondition",
            "EventGroupId",
            "EventType",
        ],
    )?;
    let n = {
        let mut c = lock(&s.events.test_events);
        *c += 1;
        *c
    };
    let id = format!("test-{n}");
    let event_id = string_field(&o, "EventId")?.unwrap_or_else(|| id.clone());
    if event_id.chars().any(char::is_control) {
        return Err(RedfishError::bad_request(
            Message::PropertyValueFormatError {
                value: event_id.escape_debug().to_string(),
                property: "EventId".into(),
            },
        ));
    }
    let severity = string_field(&o, "MessageSeverity")?
        .or(string_field(&o, "Severity")?)
        .unwrap_or_else(|| "OK".into());
    if !["OK", "Warning", "Critical"].contains(&severity.as_str()) {
        return Err(RedfishError::bad_request(Message::PropertyValueNotInList {
            value: severity,
            property: "MessageSeverity".into(),
        }));
    }
    let args = match o.get("MessageArgs") {
        None => Vec::new(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.clone(),
        Some(other) => {
            return Err(RedfishError::bad_request(Message::PropertyValueTypeError {
                value: other.to_string(),
                property: "MessageArgs".into(),
            }))
        }
    };
    let mut record = json!({
        "MemberId": "0",
        "EventType": "Other",
        "EventId": event_id,
        "EventTimestamp": string_field(&o, "EventTimestamp")?.unwrap_or_else(|| rfc3339(now_ms())),
        "MessageId": string_field(&o, "MessageId")?.unwrap_or_else(|| "RackletEvent.1.0.TestEvent".into()),
        "Message": string_field(&o, "Message")?.unwrap_or_else(|| "A test event.".into()),
        "MessageArgs": args,
        "MessageSeverity": severity,
    });
    if let Some(origin) = string_field(&o, "OriginOfCondition")? {
        record["OriginOfCondition"] = json!({"@odata.id": origin});
    }
    s.events.publish(Outgoing { id, record });
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Removes an SSE destination when its stream ends, however it ends.
struct SseGuard {
    hub: Arc<Hub>,
    n: u64,
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.hub.remove(self.n);
    }
}

pub(crate) async fn sse<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Res {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if !accept.contains("text/event-stream") && !accept.contains("*/*") {
        return Err(RedfishError::new(
            StatusCode::NOT_ACCEPTABLE,
            Message::GeneralError(
                "The SSE stream is text/event-stream; send Accept: text/event-stream.".into(),
            ),
        ));
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "local".to_string(), |c| c.0.to_string());
    let (sub, n) = s.events.add(Subscription {
        id: String::new(),
        destination: format!("redfish-sse://{peer}"),
        context: String::new(),
        kind: "SSE".into(),
        owner: caller.user.clone(),
    })?;
    let closed = lock(&s.events.subs)
        .get(&n)
        .map(|l| l.closed.subscribe())
        .ok_or_else(|| RedfishError::not_found("EventDestination", &sub.id))?;
    let rx = s.events.sse.subscribe();
    let guard = SseGuard {
        hub: s.events.clone(),
        n,
    };
    let stream = futures_util::stream::unfold(
        (rx, closed, guard),
        |(mut rx, mut closed, guard)| async move {
            loop {
                tokio::select! {
                    changed = closed.changed() => {
                        if changed.is_err() || *closed.borrow() {
                            return None;
                        }
                    }
                    got = rx.recv() => match got {
                        Ok(e) => {
                            let data = event_payload(&e.id, &e.record, "").to_string();
                            let ev = SseEvent::default().id(e.id).data(data);
                            return Some((Ok::<_, Infallible>(ev), (rx, closed, guard)));
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                }
            }
        },
    );
    let mut resp = Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(5))
                .text("keep-alive"),
        )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    Ok(resp)
}
