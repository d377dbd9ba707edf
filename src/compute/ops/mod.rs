//! zun-compute's operations, one file per family, with the mechanics they share:
//! saving (and announcing) state, `_fail_container`, task-state ownership,
//! action events (`EventReporter`, `FinishAction`) and Docker error translation
//! (`wrap_docker_error`).
pub mod capsule;
pub mod create;
pub mod glance;
pub mod images;
pub mod inspect;
pub mod lifecycle;
pub mod network;

use super::manager::Services;
use crate::docker::DockerError;
use crate::events::container_payload;
use crate::oslo::{Container, RequestContext, Status, TaskState};
use crate::rpc::{MethodResult, Request, RpcError};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// A request the manager could not queue (no readable container uuid): a create among
/// them still ends its row (see `create::fail_unreadable_create`).
pub async fn refuse(svc: Arc<Services>, req: Request, e: RpcError) -> MethodResult {
    if req.method == "container_create" {
        let op = Op { svc, ctx: req.ctx, args: req.args, method: req.method, redelivered: req.redelivered };
        create::fail_unreadable_create(&op, &e).await;
    }
    Err(e)
}

/// Runs one request to completion.
pub async fn run(svc: Arc<Services>, req: Request) -> MethodResult {
    let op = Op { svc, ctx: req.ctx, args: req.args, method: req.method, redelivered: req.redelivered };
    match op.method.as_str() {
        "container_create" => create::container_create(op).await,
        "container_start" => lifecycle::container_start(op).await,
        "container_stop" => lifecycle::container_stop(op).await,
        "container_reboot" => lifecycle::container_reboot(op).await,
        "container_pause" => lifecycle::container_pause(op).await,
        "container_unpause" => lifecycle::container_unpause(op).await,
        "container_kill" => lifecycle::container_kill(op).await,
        "container_delete" => lifecycle::container_delete(op).await,
        "container_rebuild" => create::container_rebuild(op).await,
        "container_show" => inspect::container_show(op).await,
        "container_logs" => inspect::container_logs(op).await,
        "container_exec" => inspect::container_exec(op).await,
        "container_exec_resize" => inspect::container_exec_resize(op).await,
        "container_top" => inspect::container_top(op).await,
        "container_stats" => inspect::container_stats(op).await,
        "container_get_archive" => inspect::container_get_archive(op).await,
        "container_put_archive" => inspect::container_put_archive(op).await,
        "container_update" => inspect::container_update(op, false).await,
        "resize_container" => inspect::container_update(op, true).await,
        "container_resize" => inspect::container_resize(op).await,
        "container_attach" => inspect::container_attach(op).await,
        "container_commit" => images::container_commit(op).await,
        "image_pull" => images::image_pull(op).await,
        "image_delete" => images::image_delete(op).await,
        "image_search" => images::image_search(op).await,
        "add_security_group" => network::security_group(op, true).await,
        "remove_security_group" => network::security_group(op, false).await,
        "network_attach" => network::network_attach(op).await,
        "network_detach" => network::network_detach(op).await,
        "network_create" => network::network_create(op).await,
        "network_delete" => network::network_delete(op).await,
        // The older rpcapi names of a capsule's create and delete: the same flows.
        "capsule_create" | "capsule_delete" => capsule_alias(op).await,
        other => Err(RpcError::NoSuchMethod(other.to_string())),
    }
}

/// `capsule_create(capsule, requested_networks, requested_volumes, limits)` and
/// `capsule_delete(capsule)`: zun-api 18 sends capsules through `container_create` /
/// `container_delete`; these older names run the same flows (`run` false, `force` false).
async fn capsule_alias(mut op: Op) -> MethodResult {
    let Some(capsule) = op.args.remove("capsule") else {
        return Err(RpcError::builtin("TypeError", "missing required argument: 'capsule'"));
    };
    let is_capsule = capsule.get(crate::oslo::object::KEY_NAME).and_then(Value::as_str) == Some("Capsule");
    if !is_capsule {
        return Err(RpcError::invalid("the capsule argument is not a Capsule object"));
    }
    op.args.insert("container".into(), capsule);
    if op.method == "capsule_create" {
        op.args.insert("run".into(), Value::Bool(false));
        op.method = "container_create".into();
        create::container_create(op).await
    } else {
        op.args.insert("force".into(), Value::Bool(false));
        op.method = "container_delete".into();
        lifecycle::container_delete(op).await
    }
}

/// One running request.
pub struct Op {
    pub svc: Arc<Services>,
    pub ctx: RequestContext,
    pub args: Map<String, Value>,
    pub method: String,
    pub redelivered: bool,
}

/// Outcome of taking a task state (zun's `_update_task_state`): whether we set it and
/// must clear it.
#[must_use]
pub struct TaskGuard {
    owned: bool,
}

impl Op {
    // ---- arguments --------------------------------------------------------------
    /// The `container` argument as a typed object (validated).
    pub fn container(&self) -> Result<Container, RpcError> {
        let v = self.args.get("container").ok_or_else(|| RpcError::builtin("TypeError", "missing required argument: 'container'"))?;
        if !crate::oslo::ObjectPrimitive::is_primitive(v) {
            return Err(RpcError::builtin("AttributeError", &format!("'{}' object has no attribute 'uuid'", crate::rpc::py_type_name(v))));
        }
        let c = Container::from_value(v).map_err(RpcError::Object)?;
        c.validate().map_err(|e| RpcError::invalid(e.to_string()))?;
        if c.uuid().is_none() {
            return Err(RpcError::invalid("the container object has no uuid"));
        }
        // The uuid names `zun-<uuid>` and container_id goes into Docker URLs.
        crate::compute::checks::check_docker_refs(&c).map_err(|msg| {
            tracing::warn!(method = %self.method, request_id = self.request_id(), reason = %msg, "refusing the container object");
            RpcError::invalid(msg)
        })?;
        let mut c = c;
        // zun-api never changes container_id; only Docker's answer (create, adopt) may be
        // written, so a forged one is never saved by a later write of the operation.
        c.changes.remove("container_id");
        Ok(c)
    }

    /// [`Op::container`] for a cast with an action row: when the object is refused, the
    /// action zun-api started still gets its finish time and `Error`, so the refusal is
    /// visible in the container's action history.
    pub async fn container_or_finish(&self, action: &str) -> Result<Container, RpcError> {
        match self.container() {
            Ok(c) => Ok(c),
            Err(e) => {
                let uuid = self
                    .args
                    .get("container")
                    .and_then(|v| v.get(crate::oslo::object::KEY_DATA))
                    .and_then(|d| d.get("uuid"))
                    .and_then(Value::as_str);
                if let Some(uuid) = uuid.filter(|u| crate::compute::checks::check_uuid(u).is_ok()) {
                    if let Err(db) = self.svc.store.action_finish(uuid, self.request_id(), action, true).await {
                        tracing::debug!(container = uuid, request_id = self.request_id(), action, error = %db, "no action row to finish");
                    }
                }
                Err(e)
            }
        }
    }

    pub fn arg(&self, k: &str) -> Option<&Value> {
        self.args.get(k).filter(|v| !v.is_null())
    }

    pub fn arg_bool(&self, k: &str) -> bool {
        match self.arg(k) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0) != 0.0,
            _ => false,
        }
    }

    pub fn arg_str(&self, k: &str) -> Option<String> {
        match self.arg(k)? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// An integer given as a number or a numeric string (zun passes timeouts both ways).
    pub fn arg_i64(&self, k: &str) -> Option<i64> {
        match self.arg(k)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) if s != "None" => s.trim().parse::<f64>().ok().map(|f| f as i64),
            _ => None,
        }
    }

    pub fn request_id(&self) -> &str {
        self.ctx.request_id().unwrap_or("-")
    }

    // ---- persistence --------------------------------------------------------------
    /// `container.save()`: writes the pending changes; announces status/task changes.
    pub async fn save(&self, c: &mut Container) -> Result<(), RpcError> {
        if c.changes.is_empty() {
            return Ok(());
        }
        let announce = c.changes.contains("status") || c.changes.contains("task_state");
        let changed: Vec<String> = c.changes.iter().cloned().collect();
        // Only a standalone create (an object that never had a row: no `id`) may insert;
        // every other save updates or finds the row gone, so nothing late resurrects a
        // deleted container.
        let standalone_create = self.method == "container_create" && c.get("id").is_none_or(Value::is_null);
        let saved =
            if standalone_create { self.svc.store.container_save(c).await.map(|_| true) } else { self.svc.store.container_update(c).await };
        let saved = saved.map_err(|e| {
            tracing::error!(container = c.uuid().unwrap_or("-"), request_id = self.request_id(), error = %e, "saving the container failed");
            RpcError::internal(format!("Unexpected error: {e}"))
        })?;
        if !saved {
            tracing::info!(container = c.uuid().unwrap_or("-"), request_id = self.request_id(), "the container row is gone; not saving");
            return Err(RpcError::container_not_found(c.uuid().unwrap_or("-")));
        }
        if announce {
            let mut payload = container_payload(c);
            payload["changed"] = json!(changed);
            self.svc.notifier.info(&self.ctx, "container.status.update", payload);
        }
        Ok(())
    }

    /// zun's `_fail_container`: Error with the reason, optionally unset the host, save.
    pub async fn fail(&self, c: &mut Container, reason: &str, unset_host: bool) {
        tracing::warn!(container = c.uuid().unwrap_or("-"), request_id = self.request_id(), reason, "container failed");
        c.set_status(Status::Error, Some(reason));
        if unset_host {
            c.set("host", Value::Null);
        }
        if let Err(e) = self.save(c).await {
            tracing::error!(error = %e, "could not record the failure");
        }
    }

    /// zun's `_update_task_state` entry: set it unless a task already owns the container.
    pub async fn begin_task(&self, c: &mut Container, state: TaskState) -> Result<TaskGuard, RpcError> {
        if c.get_str("task_state").is_some() {
            tracing::debug!(container = c.uuid().unwrap_or("-"), state = state.as_str(), "task state already set; not taking it");
            return Ok(TaskGuard { owned: false });
        }
        c.set_task_state(Some(state));
        self.save(c).await?;
        Ok(TaskGuard { owned: true })
    }

    /// zun's `_update_task_state` exit (its `finally`): clear and save.
    pub async fn end_task(&self, c: &mut Container, guard: TaskGuard) -> Result<(), RpcError> {
        if guard.owned {
            c.set_task_state(None);
            self.save(c).await?;
        }
        Ok(())
    }

    // ---- actions and events ---------------------------------------------------------
    fn has_project(&self) -> bool {
        self.ctx.project_id().is_some()
    }

    /// `EventReporter` entry: an event row `compute_<name>`.
    pub async fn event_start(&self, uuid: &str, event: &str) {
        if let Err(e) = self.svc.store.event_start(uuid, self.request_id(), self.has_project(), event).await {
            tracing::warn!(container = uuid, request_id = self.request_id(), event, error = %e, "no action to record the event in");
        }
    }

    /// `EventReporter` exit: finish time, Success or Error with the error chain.
    pub async fn event_finish(&self, uuid: &str, event: &str, outcome: &Result<(), RpcError>) {
        let outcome = outcome.as_ref().map(|_| ()).map_err(traceback_text);
        if let Err(e) = self.svc.store.event_finish(uuid, self.request_id(), self.has_project(), event, outcome).await {
            tracing::warn!(container = uuid, request_id = self.request_id(), event, error = %e, "could not finish the event");
        }
    }

    /// `FinishAction` exit (master): finish time, `message='Error'` on failure.
    pub async fn finish_action(&self, c: &Container, action: &str, failed: bool) {
        let uuid = c.uuid().unwrap_or("-");
        if let Err(e) = self.svc.store.action_finish(uuid, self.request_id(), action, failed).await {
            tracing::debug!(container = uuid, request_id = self.request_id(), action, error = %e, "no action row to finish");
        }
        self.announce_end(c, action, failed);
    }

    /// `container.<action>.end` (or `.error`) notification.
    pub fn announce_end(&self, c: &Container, action: &str, failed: bool) {
        let suffix = if failed { "error" } else { "end" };
        let payload = container_payload(c);
        if failed {
            self.svc.notifier.error(&self.ctx, &format!("container.{action}.{suffix}"), payload);
        } else {
            self.svc.notifier.info(&self.ctx, &format!("container.{action}.{suffix}"), payload);
        }
    }

    pub fn announce_start(&self, c: &Container, action: &str) {
        self.svc.notifier.info(&self.ctx, &format!("container.{action}.start"), container_payload(c));
    }

    // ---- Docker -------------------------------------------------------------------
    /// The Docker id to operate on (zun's `check_container_id`), once Docker confirmed
    /// that it is this container's: named `zun-<uuid>`. A `container_id` that names some
    /// other Docker container is refused; one Docker does not know is returned, so the
    /// operation meets Docker's 404 as zun does.
    pub async fn docker_id(&self, c: &Container) -> Result<String, RpcError> {
        let id =
            c.get_str("container_id").map(str::to_string).ok_or_else(|| RpcError::invalid("Cannot operate an uncreated container."))?;
        self.check_owned(c, &id).await?;
        Ok(id)
    }

    /// Refuses `id` when Docker has it under a name other than `zun-<uuid>`.
    pub async fn check_owned(&self, c: &Container, id: &str) -> Result<(), RpcError> {
        let uuid = c.uuid().unwrap_or_default();
        crate::compute::checks::check_container_id(id, uuid).map_err(RpcError::invalid)?;
        match self.svc.docker.inspect(id).await {
            Ok(inspect) => self.check_inspect_owned(c, id, &inspect),
            // Gone, or Docker unreachable: the operation's own call reports it.
            Err(_) => Ok(()),
        }
    }

    /// Refuses an inspect answer that is not `zun-<uuid>`'s.
    pub fn check_inspect_owned(&self, c: &Container, id: &str, inspect: &Value) -> Result<(), RpcError> {
        let uuid = c.uuid().unwrap_or_default();
        let name = inspect.get("Name").and_then(Value::as_str).unwrap_or_default();
        if name.strip_prefix('/').and_then(|n| n.strip_prefix(crate::docker::NAME_PREFIX)) == Some(uuid) {
            return Ok(());
        }
        tracing::warn!(container = uuid, request_id = self.request_id(), method = %self.method, docker_id = id,
            docker_name = %crate::compute::checks::shown(name), "container_id names another Docker container; refusing");
        Err(RpcError::invalid(format!(
            "container_id {id} is not the Docker container of {uuid} (it is named \"{}\")",
            crate::compute::checks::shown(name.trim_start_matches('/'))
        )))
    }

    /// zun's `wrap_docker_error`: 404 → handle_not_found + Conflict; "not running",
    /// "paused", "not paused" → Conflict; anything else → DockerError.
    pub async fn docker_failure(&self, c: &mut Container, e: DockerError) -> RpcError {
        if e.is_not_found() {
            self.handle_not_found(c, &e).await;
            let status = c.get_str("status").unwrap_or("Unknown");
            return RpcError::conflict(format!("Cannot act on container in '{status}' state"));
        }
        if e.is_conflict_state() {
            return RpcError::conflict(e.to_string());
        }
        docker_error(&e)
    }

    /// zun's `handle_not_found`: the Docker container is gone.
    pub async fn handle_not_found(&self, c: &mut Container, e: &DockerError) {
        if c.status_is(Status::Deleting) {
            return;
        }
        if c.get("auto_remove").and_then(Value::as_bool).unwrap_or(false) {
            c.set_status(Status::Deleted, None);
        } else {
            c.set_status(Status::Error, Some(&e.zun_message()));
        }
        let _ = self.save(c).await;
    }
}

/// zun's `DockerError` (500) with its "Docker internal error: ..." text.
pub fn docker_error(e: &DockerError) -> RpcError {
    let mut kwargs = Map::new();
    kwargs.insert("code".into(), json!(500));
    RpcError::Zun { class: "DockerError".into(), message: e.zun_message(), kwargs }
}

/// What goes in an event's `traceback` column: our error chain in Python's shape.
pub fn traceback_text(e: &RpcError) -> String {
    let f = e.to_failure();
    f.tb.concat()
}

/// The error text zun stores as `status_reason`: `str(e)`.
pub fn reason(e: &RpcError) -> String {
    match e {
        RpcError::Zun { message, .. } | RpcError::Builtin { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
