//! Start-up recovery, before consuming (zun's `init_containers`, then a relist as a
//! kubelet does): containers this host left half-done are finished or failed with a
//! reason, and Docker containers named `zun-*` that the store does not know are
//! reported (and removed when `[compute] remove_orphans` is set).
use super::{Manager, Services};
use crate::oslo::{Status, TaskState};
use crate::periodic::submit_internal;
use serde_json::json;
use std::collections::HashSet;

/// What recovery did, for the log and the tests.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub failed_creates: Vec<String>,
    pub resumed: Vec<(String, String)>,
    pub orphans: Vec<String>,
    pub orphans_removed: Vec<String>,
}

const CREATE_TASKS: &[TaskState] = &[
    TaskState::ContainerCreating,
    TaskState::ImagePulling,
    TaskState::NetworkAttaching,
    TaskState::NetworkDetaching,
    TaskState::SgAdding,
    TaskState::SgRemoving,
];

pub async fn recover(svc: &Services, manager: &Manager) -> Report {
    let mut report = Report::default();
    let rows = match svc.store.containers_by_host(&svc.host).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "recovery: cannot read this host's containers");
            return report;
        }
    };
    let mut known = HashSet::new();
    for mut c in rows {
        let uuid = c.uuid().unwrap_or_default().to_string();
        known.insert(uuid.clone());
        let status = c.get_str("status").unwrap_or_default().to_string();
        let task = c.get_str("task_state").map(str::to_string);
        if status == Status::Creating.as_str() || task.as_deref().and_then(TaskState::from_wire).is_some_and(|t| CREATE_TASKS.contains(&t))
        {
            c.set_status(Status::Error, Some("Container failed to create correctly"));
            c.set_task_state(None);
            if let Err(e) = svc.store.container_update(&mut c).await {
                tracing::warn!(container = %uuid, error = %e, "recovery: save failed");
            }
            report.failed_creates.push(uuid);
            continue;
        }
        let resume = match (status.as_str(), task.as_deref()) {
            ("Deleting", _) | (_, Some("container_deleting")) => Some(("container_delete", json!({"force": true}))),
            (_, Some("container_rebooting")) => Some(("container_reboot", json!({"timeout": svc.conf.stop_timeout_s}))),
            (_, Some("container_stopping")) => Some(("container_stop", json!({}))),
            (_, Some("container_starting")) => Some(("container_start", json!({}))),
            (_, Some("container_pausing")) => Some(("container_pause", json!({}))),
            (_, Some("container_unpausing")) => Some(("container_unpause", json!({}))),
            (_, Some("container_killing")) => Some(("container_kill", json!({"signal": null}))),
            _ => None,
        };
        if let Some((method, extra)) = resume {
            // The interrupted task no longer owns the container.
            c.set_task_state(None);
            let _ = svc.store.container_update(&mut c).await;
            submit_internal(manager, method, &c, extra);
            report.resumed.push((uuid, method.to_string()));
        }
    }
    match svc.docker.list_zun_containers().await {
        Ok(listed) => {
            for s in listed {
                let Some(uuid) = s.zun_uuid().map(str::to_string) else { continue };
                if known.contains(&uuid) {
                    continue;
                }
                // Known on another host, or in the store at all? Then it is not ours to judge.
                if let Ok(Some(_)) = svc.store.container_get(&uuid).await {
                    continue;
                }
                tracing::warn!(container = %uuid, docker_id = %s.id, "Docker container zun-<uuid> unknown to the store");
                if svc.settings.compute.remove_orphans {
                    match svc.docker.remove(&s.id, true).await {
                        Ok(()) => report.orphans_removed.push(uuid.clone()),
                        Err(e) => tracing::warn!(container = %uuid, error = %e, "could not remove the orphan"),
                    }
                }
                report.orphans.push(uuid);
            }
        }
        Err(e) => tracing::warn!(error = %e, "recovery: cannot list Docker containers"),
    }
    tracing::info!(
        failed_creates = report.failed_creates.len(),
        resumed = report.resumed.len(),
        orphans = report.orphans.len(),
        "recovery done"
    );
    report
}
