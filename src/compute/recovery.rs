//! Start-up recovery, before consuming (zun's `init_containers`, then a relist as a
//! kubelet does): containers this host left half-done are finished or failed with a
//! reason; their volumes are mounted again (`[compute] remount_container_volume`);
//! containers recorded Running that Docker has stopped are started
//! (`[compute] resume_container_state`); and Docker containers named `zun-*` that the
//! store does not know are reported (and removed when `[compute] remove_orphans` is set).
use super::ops::Op;
use super::{volumes, Manager, Services};
use crate::oslo::{Container, Status, TaskState};
use crate::periodic::{admin_context, submit_internal};
use crate::store::VolumeMappingRow;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What recovery did, for the log and the tests.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub failed_creates: Vec<String>,
    pub resumed: Vec<(String, String)>,
    pub orphans: Vec<String>,
    pub orphans_removed: Vec<String>,
    /// Volumes mounted again: (container, volume uuid).
    pub remounted: Vec<(String, String)>,
    /// Containers failed because a volume could not be mounted again.
    pub remount_failed: Vec<String>,
}

const CREATE_TASKS: &[TaskState] = &[
    TaskState::ContainerCreating,
    TaskState::ImagePulling,
    TaskState::NetworkAttaching,
    TaskState::NetworkDetaching,
    TaskState::SgAdding,
    TaskState::SgRemoving,
];

pub async fn recover(svc: &Arc<Services>, manager: &Manager) -> Report {
    let mut report = Report::default();
    let rows = match svc.store.containers_by_host(&svc.host).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "recovery: cannot read this host's containers");
            return report;
        }
    };
    let listed = svc.docker.list_zun_containers().await;
    if let Err(e) = &listed {
        tracing::warn!(error = %e, "recovery: cannot list Docker containers");
    }
    let docker_state: HashMap<String, String> = match &listed {
        Ok(l) => l.iter().filter_map(|s| Some((s.zun_uuid()?.to_string(), s.state.clone()))).collect(),
        Err(_) => HashMap::new(),
    };
    let mut volume_maps = volume_mappings(svc).await;
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
        // Before a resumed operation runs: a start needs the volumes mounted.
        if let Some(maps) = volume_maps.remove(&uuid) {
            if resume.as_ref().is_some_and(|(m, _)| *m == "container_delete") {
                // The delete detaches them.
            } else if !remount(svc, &mut c, &maps, &mut report).await {
                continue;
            }
        }
        if let Some((method, extra)) = resume {
            // The interrupted task no longer owns the container.
            c.set_task_state(None);
            let _ = svc.store.container_update(&mut c).await;
            submit_internal(manager, method, &c, extra);
            report.resumed.push((uuid, method.to_string()));
        } else if svc.settings.compute.resume_container_state
            && status == Status::Running.as_str()
            && docker_state.get(&uuid).is_some_and(|s| s == "exited")
        {
            // zun's restore_running_container: recorded Running, stopped by a host reboot.
            tracing::info!(container = %uuid, "recorded Running but stopped: starting it (resume_container_state)");
            submit_internal(manager, "container_start", &c, json!({}));
            report.resumed.push((uuid, "container_start".to_string()));
        }
    }
    if let Ok(listed) = listed {
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
    tracing::info!(
        failed_creates = report.failed_creates.len(),
        resumed = report.resumed.len(),
        remounted = report.remounted.len(),
        remount_failed = report.remount_failed.len(),
        orphans = report.orphans.len(),
        "recovery done"
    );
    report
}

/// The volume mappings of this host's containers, by container (one query), when
/// `[compute] remount_container_volume` is set.
async fn volume_mappings(svc: &Services) -> HashMap<String, Vec<VolumeMappingRow>> {
    let mut by_container: HashMap<String, Vec<VolumeMappingRow>> = HashMap::new();
    if !svc.settings.compute.remount_container_volume {
        return by_container;
    }
    match svc.store.volume_mappings_on_host(&svc.host).await {
        Ok(rows) => {
            for m in rows {
                by_container.entry(m.container_uuid.clone().unwrap_or_default()).or_default().push(m);
            }
        }
        Err(e) => tracing::warn!(error = %e, "recovery: cannot read this host's volume mappings"),
    }
    by_container
}

/// zun's `_remount_volume` for one container; on failure (zun's `_fail_container`) its
/// volumes are detached and it ends in Error. Whether the container is still usable.
async fn remount(svc: &Arc<Services>, c: &mut Container, maps: &[VolumeMappingRow], report: &mut Report) -> bool {
    let uuid = c.uuid().unwrap_or_default().to_string();
    let op = Op { svc: svc.clone(), ctx: admin_context(), args: Default::default(), method: "init_containers".into(), redelivered: false };
    for m in maps {
        tracing::info!(container = %uuid, volume = %m.volume.uuid, host = %svc.host, "re-attaching volume");
        match volumes::remount(&op, m).await {
            Ok(()) => report.remounted.push((uuid.clone(), m.volume.uuid.clone())),
            Err(e) => {
                tracing::warn!(container = %uuid, volume = %m.volume.uuid, error = %e, "failed to re-attach the volume");
                if let Err(d) = volumes::detach_all(&op, &uuid, false).await {
                    tracing::warn!(container = %uuid, error = %d, "failed to detach volumes");
                }
                c.set_status(Status::Error, Some("Internal error on recovering container volume"));
                if let Err(e) = svc.store.container_update(c).await {
                    tracing::warn!(container = %uuid, error = %e, "recovery: save failed");
                }
                report.remount_failed.push(uuid);
                return false;
            }
        }
    }
    true
}
