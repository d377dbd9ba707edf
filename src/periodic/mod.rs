//! zun-compute's periodic duties, each every `periodic_interval_max` (60 s), first run
//! at once:
//! - service heartbeat (`zun_service.report_count`, `last_seen_up`);
//! - compute-node inventory from Docker and the host, usage audited from the container
//!   rows of this host;
//! - container state sync with Docker (`sync_container_state`);
//! - the auto-remove reaper (containers Deleted with `auto_remove`).
pub mod inventory;

use crate::admin::Health;
use crate::compute::{populate, Manager, Services};
use crate::oslo::{Container, RequestContext};
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
pub async fn sync_container_states(svc: &Services, manager: &Manager) {
    let listed = match svc.docker.list_zun_containers().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "state sync: cannot list Docker containers");
            return;
        }
    };
    let rows = match svc.store.containers_by_host(&svc.host).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "state sync: cannot read containers");
            return;
        }
    };
    let by_id: std::collections::HashMap<&str, &crate::docker::ContainerSummary> =
        listed.iter().map(|s| (s.id.as_str(), s)).collect();
    for mut c in rows {
        let uuid = c.uuid().unwrap_or_default().to_string();
        if manager.executor().is_busy(&uuid) || c.get_str("task_state").is_some() {
            continue;
        }
        let status = c.get_str("status").unwrap_or_default().to_string();
        if matches!(status.as_str(), "Creating" | "Deleting" | "Deleted") {
            continue;
        }
        let Some(id) = c.get_str("container_id").map(str::to_string) else { continue };
        match by_id.get(id.as_str()) {
            Some(summary) => populate::populate_from_list_state(&mut c, &summary.state, false),
            None => {
                if c.get("auto_remove").and_then(Value::as_bool).unwrap_or(false) {
                    c.set("status", json!("Deleted"));
                } else if status != "Error" {
                    c.set("status", json!("Error"));
                    c.set("status_reason", json!(format!("No such container: {id} in docker")));
                }
            }
        }
        if !c.changes.is_empty() {
            tracing::info!(container = %uuid, from = %status, to = c.get_str("status").unwrap_or("-"), "state sync");
            if let Err(e) = svc.store.container_save(&mut c).await {
                tracing::warn!(container = %uuid, error = %e, "state sync: save failed");
            }
        }
    }
}

/// zun's `delete_unused_containers`: Deleted + auto_remove + no task → forced delete,
/// through the executor like any delete.
pub async fn reap_auto_removed(svc: &Services, manager: &Manager) {
    let Ok(rows) = svc.store.containers_by_host(&svc.host).await else { return };
    for c in rows {
        let reap = c.get_str("status") == Some("Deleted")
            && c.get("auto_remove").and_then(Value::as_bool).unwrap_or(false)
            && c.get_str("task_state").is_none();
        if reap {
            submit_internal(manager, "container_delete", &c, json!({"force": true}));
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
        let db = tokio::time::timeout(every, svc.store.service_get(&svc.host, BINARY)).await.is_ok_and(|r| r.is_ok());
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
