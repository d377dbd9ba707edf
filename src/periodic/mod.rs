//! zun-compute's periodic duties, each every `periodic_interval_max` (60 s), first run
//! at once:
//! - service heartbeat (`zun_service.report_count`, `last_seen_up`);
//! - compute-node inventory from Docker and the host, usage audited from the container
//!   rows of this host;
//! - container state sync with Docker (`sync_container_state`);
//! - the auto-remove reaper (containers Deleted with `auto_remove`).
//!
//! Between two syncs, [`follow_docker_events`] follows Docker's event stream, so that a
//! `zun-*` container that dies, starts, pauses or disappears outside zun is seen within
//! a second.
pub mod inventory;

use crate::admin::Health;
use crate::compute::{populate, Manager, Services};
use crate::oslo::{Container, RequestContext, Status};
use crate::rpc::{Endpoint, Request};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub const BINARY: &str = "zun-compute";

/// One heartbeat: creates the service row if missing, bumps `report_count`.
pub async fn heartbeat(svc: &Services, health: &Health) -> bool {
    let az = &svc.settings.default.default_availability_zone;
    match svc.store.service_heartbeat(&svc.host, BINARY, az).await {
        Ok(row) => {
            health.last_heartbeat.store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
            Health::set(&health.db_ok, true);
            tracing::debug!(host = %svc.host, report_count = row.report_count, "heartbeat");
            true
        }
        Err(e) => {
            Health::set(&health.db_ok, false);
            tracing::warn!(host = %svc.host, error = %e, "heartbeat failed");
            false
        }
    }
}

/// An admin context like zun's periodic tasks use (all projects, no project id).
pub fn admin_context() -> RequestContext {
    let mut m = Map::new();
    m.insert("is_admin".into(), json!(true));
    m.insert("all_projects".into(), json!(true));
    m.insert("request_id".into(), json!(format!("req-{}", uuid::Uuid::new_v4())));
    m.insert("roles".into(), json!(["admin"]));
    RequestContext::new(m)
}

/// `sync_container_state`: Docker's view wins for containers no task owns.
///
/// The listing only picks the candidates: a row whose status Docker's listing would
/// change, or whose container Docker no longer lists, and that no operation holds right
/// now. Each candidate is then brought in line inside its container's executor queue
/// ([`resync_in_executor`]), so it never races an operation on that container. The pass
/// does not wait for those jobs: the heartbeat in the same loop must never wait behind a
/// long operation.
pub async fn sync_container_states(svc: &Services, manager: &Manager) {
    // Rows first, then Docker: a container created after the rows were read has no
    // container_id in them yet, so it cannot be mistaken for one that disappeared.
    // Only the state columns: the sync decides from them, and resync_one reads the whole
    // row again inside the executor before it writes.
    let rows = match svc.store.container_states_by_host(&svc.host).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "state sync: cannot read containers");
            return;
        }
    };
    let listed = match svc.docker.list_zun_containers().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "state sync: cannot list Docker containers");
            return;
        }
    };
    let by_id: std::collections::HashMap<&str, &crate::docker::ContainerSummary> = listed.iter().map(|s| (s.id.as_str(), s)).collect();
    for c in rows {
        if !sync_applies(&c) {
            continue;
        }
        let uuid = c.uuid().unwrap_or_default().to_string();
        // Busy: the operation will write its own outcome; the next pass looks again.
        if manager.executor().is_busy(&uuid) {
            continue;
        }
        let Some(id) = c.get_str("container_id").map(str::to_string) else { continue };
        if let Some(summary) = by_id.get(id.as_str()) {
            let mut probe = c.clone();
            apply_docker_state(&mut probe, &summary.state);
            if !has_effective_changes(&probe, &c) {
                continue;
            }
        }
        resync_in_executor(manager, &uuid, &id, "periodic");
    }
}

/// Rows the sync may touch: no task owns them and they are not being created or deleted.
fn sync_applies(c: &Container) -> bool {
    let status = c.get_str("status").unwrap_or_default();
    c.get_str("task_state").is_none() && !matches!(status, "Creating" | "Deleting" | "Deleted")
}

/// Docker's lower-case state applied to the row, as zun's sync does from its listing;
/// a status corrected to anything but Error drops the reason the old status had.
fn apply_docker_state(c: &mut Container, state: &str) {
    populate::populate_from_list_state(c, state, false);
    let status = c.get_str("status").unwrap_or_default().to_string();
    if c.changes.contains("status")
        && status != "Error"
        && !c.changes.contains("status_reason")
        && c.get("status_reason").is_some_and(|r| !r.is_null())
    {
        c.set("status_reason", Value::Null);
    }
}

/// True when a field in `c.changes` differs from `before` (an absent field equals null).
fn has_effective_changes(c: &Container, before: &Container) -> bool {
    c.changes.iter().any(|f| c.get(f).unwrap_or(&Value::Null) != before.get(f).unwrap_or(&Value::Null))
}

/// Queues the resync of one container behind whatever its executor queue holds (nothing
/// when the executor is shutting down).
fn resync_in_executor(manager: &Manager, uuid: &str, docker_id: &str, source: &'static str) {
    let svc = manager.services().clone();
    let (u, id) = (uuid.to_string(), docker_id.to_string());
    let job = Box::pin(async move { resync_one(&svc, &u, &id, source).await });
    if manager.executor().submit(uuid, job).is_err() {
        tracing::debug!(container = %uuid, source, "state sync not queued: shutting down");
    }
}

/// Inside the executor: reads the row again (an operation may just have changed it),
/// asks Docker, writes only the fields that changed, at debug level.
async fn resync_one(svc: &Services, uuid: &str, docker_id: &str, source: &'static str) {
    let mut c = match svc.store.container_get(uuid).await {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(container = %uuid, error = %e, "state sync: cannot read the row");
            return;
        }
    };
    // Its Docker container is on this host's engine; zun leaves `host` unset when the
    // create claimed nothing (no memory, cpu or disk).
    let host_ok = c.get_str("host").is_none_or(|h| h == svc.host);
    if !host_ok || !sync_applies(&c) || c.get_str("container_id") != Some(docker_id) {
        return;
    }
    let before = c.clone();
    match svc.docker.inspect(docker_id).await {
        Ok(inspect) => {
            let state = inspect.get("State").and_then(|s| s.get("Status")).and_then(Value::as_str).unwrap_or_default().to_string();
            apply_docker_state(&mut c, &state);
        }
        Err(e) if e.is_not_found() => {
            let status = c.get_str("status").unwrap_or_default();
            if c.get("auto_remove").and_then(Value::as_bool).unwrap_or(false) {
                c.set_status(Status::Deleted, None);
            } else if status != "Error" {
                c.set_status(Status::Error, Some(&format!("No such container: {docker_id} in docker")));
            }
        }
        Err(e) => {
            tracing::debug!(container = %uuid, error = %e, "state sync: inspect failed");
            return;
        }
    }
    if !has_effective_changes(&c, &before) {
        return;
    }
    let changed: Vec<&String> =
        c.changes.iter().filter(|f| c.get(f).unwrap_or(&Value::Null) != before.get(f).unwrap_or(&Value::Null)).collect();
    let keep: std::collections::BTreeSet<String> = changed.iter().map(|f| f.to_string()).collect();
    c.changes = keep;
    let (from, to) = (before.get_str("status").unwrap_or("-"), c.get_str("status").unwrap_or("-"));
    if source == "docker event" {
        tracing::debug!(container = %uuid, from, to, fields = ?c.changes, "state sync from a Docker event");
    } else {
        tracing::debug!(container = %uuid, source, from, to, fields = ?c.changes, "state sync");
    }
    if let Err(e) = svc.store.container_update(&mut c).await {
        tracing::warn!(container = %uuid, error = %e, "state sync: save failed");
    }
}

/// zun's `delete_unused_containers`: Deleted + auto_remove + no task → forced delete,
/// through the executor like any delete.
pub async fn reap_auto_removed(svc: &Services, manager: &Manager) {
    let Ok(rows) = svc.store.container_states_by_host(&svc.host).await else { return };
    let reapable = |c: &Container| {
        c.status_is(Status::Deleted) && c.get("auto_remove").and_then(Value::as_bool).unwrap_or(false) && c.get_str("task_state").is_none()
    };
    for c in rows.iter().filter(|c| reapable(c)) {
        // The delete is given the whole object, as zun's reaper gives it, read again now.
        let uuid = c.uuid().unwrap_or_default();
        match svc.store.container_get(uuid).await {
            Ok(Some(full)) if reapable(&full) => submit_internal(manager, "container_delete", &full, json!({"force": true})),
            Ok(_) => {}
            Err(e) => tracing::warn!(container = %uuid, error = %e, "reaper: cannot read the container"),
        }
    }
}

/// Queues an operation the worker decided on itself (recovery, reaper).
pub fn submit_internal(manager: &Manager, method: &str, c: &Container, extra: Value) {
    let mut args = Map::new();
    args.insert("container".into(), c.to_primitive().to_value());
    if let Value::Object(m) = extra {
        args.extend(m);
    }
    let req = Request { method: method.into(), ctx: admin_context(), args, is_call: false, redelivered: false };
    if let Some(fut) = manager.submit(req) {
        let method = method.to_string();
        let uuid = c.uuid().unwrap_or_default().to_string();
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                tracing::warn!(container = %uuid, method = %method, error = %e, "internal operation failed");
            }
        });
    }
}

/// Keeps `/readyz` current: Docker and the database are probed every `every`, so
/// readiness follows an outage within seconds (the duties below run once a minute).
pub async fn probe_health(svc: Arc<Services>, health: Arc<Health>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let docker = tokio::time::timeout(every, svc.docker.ping()).await.is_ok_and(|r| r.is_ok());
        // One try, no retry: a store operation would wait the outage out.
        let db = tokio::time::timeout(every, svc.store.ping()).await.is_ok_and(|r| r.is_ok());
        if docker != health.docker_ok.load(Ordering::Relaxed) || db != health.db_ok.load(Ordering::Relaxed) {
            tracing::info!(docker, database = db, "dependency health changed");
        }
        Health::set(&health.docker_ok, docker);
        Health::set(&health.db_ok, db);
    }
}

/// Runs every duty each `interval` until `stop`.
pub async fn run(svc: Arc<Services>, manager: Arc<Manager>, health: Arc<Health>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        heartbeat(&svc, &health).await;
        match svc.docker.ping().await {
            Ok(()) => Health::set(&health.docker_ok, true),
            Err(e) => {
                Health::set(&health.docker_ok, false);
                tracing::warn!(error = %e, "Docker is not answering");
                continue;
            }
        }
        if let Err(e) = inventory::refresh(&svc).await {
            tracing::warn!(error = %e, "compute node inventory failed");
        }
        if svc.settings.default.sync_container_state_interval >= 0 {
            sync_container_states(&svc, &manager).await;
        }
        reap_auto_removed(&svc, &manager).await;
    }
}

/// Follows Docker's events for `zun-*` containers until `stop`, bringing the row of each
/// container that changed in line with Docker at once (the 60 s state sync stays the
/// safety net). Resubscribes when Docker goes away and comes back, replaying what happened
/// since the last event seen.
pub async fn follow_docker_events(svc: Arc<Services>, manager: Arc<Manager>, mut stop: watch::Receiver<bool>) {
    use futures_util::StreamExt;
    let mut since: Option<i64> = None;
    let mut wait = Duration::from_millis(250);
    loop {
        if *stop.borrow() {
            return;
        }
        let subscribed = chrono::Utc::now().timestamp();
        let stream = svc.docker.zun_container_events(since);
        tokio::pin!(stream);
        loop {
            let item = tokio::select! {
                _ = stop.changed() => return,
                item = stream.next() => item,
            };
            match item {
                Some(Ok((action, id, uuid))) => {
                    wait = Duration::from_millis(250);
                    since = Some(chrono::Utc::now().timestamp() - 1);
                    sync_one_container(&svc, &manager, &uuid, &id, &action).await;
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "Docker event stream ended");
                    break;
                }
                None => break,
            }
        }
        since = Some(since.unwrap_or(subscribed));
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// One container's row brought in line with Docker after an event, under the same rules
/// as [`sync_container_states`], inside the container's executor queue (not waited for:
/// the event stream never waits behind a long operation).
async fn sync_one_container(_svc: &Services, manager: &Manager, uuid: &str, docker_id: &str, action: &str) {
    tracing::debug!(container = %uuid, event = %action, "Docker event");
    resync_in_executor(manager, uuid, docker_id, "docker event");
}
