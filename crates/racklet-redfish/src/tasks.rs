//! The TaskService: long operations (a BMC firmware update) run as Redfish Tasks, each
//! with a task monitor a client polls (`202 Accepted` while it runs, the Task when done).
//!
//! Tasks are kept in `DIR/tasks.json` (replaced atomically on every change), so their
//! outcome survives a restart of the service; a task that was running when the service
//! stopped is ended as `Exception` with a message saying so, never left `Running`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UriPath, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use racklet_rmd_api::ChassisManager;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::RedfishError;
use crate::odata::{listing, ok, rfc3339, with_allow};
use crate::AppState;

/// Finished tasks kept (the oldest finished ones are dropped first).
const KEPT: usize = 32;

/// The messages tasks carry, from the DMTF Update and TaskEvent registries:
/// (MessageId, text with `%n` placeholders, severity). A test checks them word for word.
pub const MESSAGES: &[(&str, &str, &str)] = &[
    (
        "Update.1.3.TargetDetermined",
        "The target device '%1' will be updated with image '%2'.",
        "OK",
    ),
    (
        "Update.1.3.TransferringToComponent",
        "Image '%1' is being transferred to '%2'.",
        "OK",
    ),
    (
        "Update.1.3.VerifyingAtComponent",
        "Image '%1' is being verified at '%2'.",
        "OK",
    ),
    (
        "Update.1.3.ApplyingOnComponent",
        "Image '%1' is being applied on '%2'.",
        "OK",
    ),
    (
        "Update.1.3.UpdateSuccessful",
        "Device '%1' successfully updated with image '%2'.",
        "OK",
    ),
    (
        "Update.1.3.ApplyFailed",
        "Installation of image '%1' to '%2' failed.",
        "Critical",
    ),
    (
        "TaskEvent.1.0.TaskStarted",
        "The task with Id '%1' has started.",
        "OK",
    ),
    (
        "TaskEvent.1.0.TaskCompletedOK",
        "The task with Id '%1' has completed.",
        "OK",
    ),
    (
        "TaskEvent.1.0.TaskAborted",
        "The task with Id '%1' has completed with errors.",
        "Critical",
    ),
];

/// One message of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMessage {
    pub id: String,
    pub text: String,
    pub args: Vec<String>,
    pub severity: String,
    /// What went wrong, in our words, when the registry text alone does not say.
    pub resolution: Option<String>,
}

impl TaskMessage {
    /// The registry message `id` with its arguments filled in.
    pub fn new(id: &str, args: &[&str]) -> TaskMessage {
        let (text, severity) = MESSAGES
            .iter()
            .find(|(i, _, _)| *i == id)
            .map_or(("%1", "OK"), |(_, t, s)| (*t, *s));
        let mut text = text.to_string();
        for (i, arg) in args.iter().enumerate().rev() {
            text = text.replace(&format!("%{}", i + 1), arg);
        }
        TaskMessage {
            id: id.into(),
            text,
            args: args.iter().map(|a| a.to_string()).collect(),
            severity: severity.into(),
            resolution: None,
        }
    }

    fn to_json(&self) -> Value {
        let mut m = json!({
            "MessageId": self.id,
            "Message": self.text,
            "MessageArgs": self.args,
            "MessageSeverity": self.severity,
        });
        if let Some(r) = &self.resolution {
            m["Resolution"] = json!(r);
        }
        m
    }
}

/// Redfish `TaskState`s this service uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Running,
    Completed,
    Exception,
}

/// One task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub name: String,
    pub state: TaskState,
    pub percent: u8,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub messages: Vec<TaskMessage>,
}

impl Task {
    pub fn monitor_uri(&self) -> String {
        format!("/redfish/v1/TaskService/TaskMonitors/{}", self.id)
    }

    fn uri(&self) -> String {
        format!("/redfish/v1/TaskService/Tasks/{}", self.id)
    }

    pub fn to_json(&self) -> Value {
        let status = match self.state {
            TaskState::Running | TaskState::Completed => "OK",
            TaskState::Exception => "Critical",
        };
        let mut v = json!({
            "@odata.id": self.uri(),
            "@odata.type": "#Task.v1_7_4.Task",
            "Id": self.id,
            "Name": self.name,
            "TaskState": self.state,
            "TaskStatus": status,
            "PercentComplete": self.percent,
            "StartTime": rfc3339(self.start_ms),
            "TaskMonitor": self.monitor_uri(),
            "Messages": self.messages.iter().map(TaskMessage::to_json).collect::<Vec<_>>(),
        });
        if let Some(end) = self.end_ms {
            v["EndTime"] = json!(rfc3339(end));
        }
        v
    }
}

/// Why the task list cannot be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum TaskStoreError {
    #[error("cannot read or write {path}; check the data dir's permissions and free space")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt; move it away to start with an empty task list")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Write(#[from] racklet_files::WriteError),
}

/// The task list and its file.
#[derive(Debug)]
pub struct Tasks {
    path: PathBuf,
    list: Vec<Task>,
    next: u64,
}

pub(crate) use racklet_time::unix_ms as now_ms;

impl Tasks {
    /// Loads `DIR/tasks.json`; tasks that were running end as interrupted.
    pub fn open(dir: &Path) -> Result<Tasks, TaskStoreError> {
        let path = dir.join("tasks.json");
        let mut list: Vec<Task> = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| TaskStoreError::Corrupt {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(TaskStoreError::Io { path, source }),
        };
        let mut changed = false;
        for t in list.iter_mut().filter(|t| t.state == TaskState::Running) {
            let mut m = TaskMessage::new("TaskEvent.1.0.TaskAborted", &[&t.id]);
            m.resolution = Some(
                "The service restarted while this task ran. Check the target's FirmwareInventory \
                 version and start the update again if needed."
                    .into(),
            );
            t.messages.push(m);
            t.state = TaskState::Exception;
            t.end_ms = Some(now_ms());
            changed = true;
        }
        let next = list
            .iter()
            .filter_map(|t| t.id.parse::<u64>().ok())
            .max()
            .map_or(1, |n| n + 1);
        let tasks = Tasks { path, list, next };
        if changed {
            tasks.save()?;
        }
        Ok(tasks)
    }

    fn save(&self) -> Result<(), TaskStoreError> {
        let bytes =
            serde_json::to_vec_pretty(&self.list).map_err(|source| TaskStoreError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        Ok(racklet_files::write_atomic(
            &self.path,
            &bytes,
            racklet_files::Access::Public,
        )?)
    }

    fn persist(&self) {
        if let Err(e) = self.save() {
            tracing::warn!("{}", crate::error::chain(&e));
        }
    }

    /// Starts a task.
    pub fn create(&mut self, name: String, first: Vec<TaskMessage>) -> Task {
        let id = self.next.to_string();
        self.next += 1;
        let mut messages = vec![TaskMessage::new("TaskEvent.1.0.TaskStarted", &[&id])];
        messages.extend(first);
        let task = Task {
            id,
            name,
            state: TaskState::Running,
            percent: 0,
            start_ms: now_ms(),
            end_ms: None,
            messages,
        };
        while self.list.len() >= KEPT {
            match self.list.iter().position(|t| t.state != TaskState::Running) {
                Some(i) => {
                    self.list.remove(i);
                }
                None => break,
            }
        }
        self.list.push(task.clone());
        self.persist();
        task
    }

    /// Changes a task. Saved when its state or messages changed; progress alone is not
    /// worth a disk write (it is recomputed after a restart anyway).
    pub fn update(&mut self, id: &str, change: impl FnOnce(&mut Task)) {
        let Some(t) = self.list.iter_mut().find(|t| t.id == id) else {
            return;
        };
        let before = (t.state, t.messages.len(), t.end_ms);
        change(t);
        if (t.state, t.messages.len(), t.end_ms) != before {
            self.persist();
        }
    }

    pub fn get(&self, id: &str) -> Option<&Task> {
        self.list.iter().find(|t| t.id == id)
    }

    pub fn all(&self) -> &[Task] {
        &self.list
    }
}

type St<M> = State<Arc<AppState<M>>>;

/// The TaskService's routes.
pub(crate) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route("/redfish/v1/TaskService", get(task_service))
        .route("/redfish/v1/TaskService/Tasks", get(tasks::<M>))
        .route("/redfish/v1/TaskService/Tasks/{id}", get(task::<M>))
        .route(
            "/redfish/v1/TaskService/TaskMonitors/{id}",
            get(task_monitor::<M>),
        )
}

async fn task_service() -> Response {
    let body = json!({
        "@odata.id": "/redfish/v1/TaskService",
        "@odata.type": "#TaskService.v1_3_0.TaskService",
        "Id": "TaskService",
        "Name": "Task Service",
        "ServiceEnabled": true,
        "CompletedTaskOverWritePolicy": "Oldest",
        "LifeCycleEventOnTaskStateChange": false,
        "DateTime": rfc3339(now_ms()),
        "Status": {"State": "Enabled", "Health": "OK"},
        "Tasks": {"@odata.id": "/redfish/v1/TaskService/Tasks"},
    });
    with_allow(ok(body), "GET, HEAD")
}

async fn tasks<M: ChassisManager + Clone + 'static>(State(s): St<M>) -> Response {
    let members = s.tasks().all().iter().map(|t| t.uri()).collect();
    listing(
        "/redfish/v1/TaskService/Tasks",
        "TaskCollection",
        "Tasks",
        members,
        "GET, HEAD",
    )
}

async fn task<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    UriPath(id): UriPath<String>,
) -> Result<Response, RedfishError> {
    let t = s
        .tasks()
        .get(&id)
        .map(Task::to_json)
        .ok_or_else(|| RedfishError::not_found("Task", &id))?;
    Ok(with_allow(ok(t), "GET, HEAD"))
}

/// `202 Accepted` with the task while it runs; once it ended, the task with `200 OK`.
async fn task_monitor<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    UriPath(id): UriPath<String>,
) -> Result<Response, RedfishError> {
    let t = s
        .tasks()
        .get(&id)
        .cloned()
        .ok_or_else(|| RedfishError::not_found("TaskMonitor", &id))?;
    Ok(monitor_response(&t))
}

/// What a task monitor answers for `t` (also the answer to the request that started it).
pub(crate) fn monitor_response(t: &Task) -> Response {
    if t.state != TaskState::Running {
        return with_allow(ok(t.to_json()), "GET, HEAD");
    }
    let mut resp = (StatusCode::ACCEPTED, Json(t.to_json())).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&t.monitor_uri()) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_running_when_the_service_stopped_ends_as_exception_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("racklet-tasks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut tasks = Tasks::open(&dir).expect("open");
        let id = tasks.create("update".into(), Vec::new()).id;
        drop(tasks);
        let mut tasks = Tasks::open(&dir).expect("reopen");
        let t = tasks.get(&id).expect("kept").clone();
        assert_eq!(t.state, TaskState::Exception);
        assert!(t.end_ms.is_some());
        assert_eq!(
            t.messages.last().map(|m| m.id.as_str()),
            Some("TaskEvent.1.0.TaskAborted")
        );
        // New tasks do not reuse its id.
        assert_ne!(tasks.create("next".into(), Vec::new()).id, id);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
