//! The lifecycle casts: start, stop, reboot, pause, unpause, kill, delete. Each runs
//! under the container's executor queue, records its `compute__do_container_<op>` event
//! and finishes its action, as zun's master manager does.
use super::{reason, Op};
use crate::compute::checks;
use crate::docker::DockerErrorKind;
use crate::oslo::{Container, Status, TaskState};
use crate::rpc::{MethodResult, RpcError};
use serde_json::{json, Value};

/// zun's `_do_container_start` (event `compute__do_container_start`): task
/// `container_starting`, Docker start, Running, `started_at`; failures → Error.
pub async fn do_start(op: &Op, c: &mut Container) -> Result<(), RpcError> {
    let uuid = c.uuid().unwrap_or_default().to_string();
    op.event_start(&uuid, "compute__do_container_start").await;
    let res = async {
        // Refused before anything is written: the id must be this container's.
        let id = op.docker_id(c).await?;
        let guard = op.begin_task(c, TaskState::ContainerStarting).await?;
        let started: Result<(), RpcError> = async {
            if let Err(e) = op.svc.docker.start(&id).await {
                return Err(op.docker_failure(c, e).await);
            }
            c.set_status(Status::Running, None);
            c.set("started_at", json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()));
            op.save(c).await
        }
        .await;
        if let Err(e) = &started {
            if !c.status_is(Status::Deleted) {
                op.fail(c, &reason(e), false).await;
            }
        }
        let ended = op.end_task(c, guard).await;
        started.and(ended)
    }
    .await;
    op.event_finish(&uuid, "compute__do_container_start", &res).await;
    res
}

pub async fn container_start(op: Op) -> MethodResult {
    let mut c = op.container_or_finish("start").await?;
    op.announce_start(&c, "start");
    let res = do_start(&op, &mut c).await;
    op.finish_action(&c, "start", res.is_err()).await;
    res.map(|_| Value::Null)
}

/// The shape shared by stop, reboot, pause, unpause and kill: event + finish action,
/// a task state, one Docker call, the resulting status. Errors are recorded on the
/// event and logged (zun's `wrap_exception` swallows them).
async fn simple_op<F, Fut>(op: Op, action: &str, event: &str, task: TaskState, new_status: Status, call: F) -> MethodResult
where
    F: FnOnce(Op, String) -> Fut,
    Fut: std::future::Future<Output = (Op, Result<(), crate::docker::DockerError>)>,
{
    let mut c = op.container_or_finish(action).await?;
    let uuid = c.uuid().unwrap_or_default().to_string();
    op.announce_start(&c, action);
    op.event_start(&uuid, event).await;
    // Refused before anything is written: the id must be this container's.
    let id = match op.docker_id(&c).await {
        Ok(id) => id,
        Err(e) => {
            op.event_finish(&uuid, event, &Err(e.clone())).await;
            op.finish_action(&c, action, true).await;
            return Err(e);
        }
    };
    let guard = match op.begin_task(&mut c, task).await {
        Ok(g) => g,
        Err(e) => {
            op.event_finish(&uuid, event, &Err(e.clone())).await;
            op.finish_action(&c, action, true).await;
            return Err(e);
        }
    };
    let (op, r) = call(op, id).await;
    let (op, res) = match r {
        Ok(()) => {
            c.set_status(new_status, None);
            (op, Ok(()))
        }
        Err(e) => {
            let err = op.docker_failure(&mut c, e).await;
            (op, Err(err))
        }
    };
    let ended = op.end_task(&mut c, guard).await;
    let res = res.and(ended);
    op.event_finish(&uuid, event, &res).await;
    op.finish_action(&c, action, res.is_err()).await;
    res.map(|_| Value::Null)
}

pub async fn container_stop(op: Op) -> MethodResult {
    let t = op.arg_i64("timeout");
    simple_op(op, "stop", "compute__do_container_stop", TaskState::ContainerStopping, Status::Stopped, move |op, id| async move {
        let r = op.svc.docker.stop(&id, t).await;
        (op, r)
    })
    .await
}

pub async fn container_reboot(op: Op) -> MethodResult {
    let t = op.arg_i64("timeout");
    simple_op(op, "reboot", "compute__do_container_reboot", TaskState::ContainerRebooting, Status::Running, move |op, id| async move {
        let r = op.svc.docker.restart(&id, t).await;
        (op, r)
    })
    .await
}

pub async fn container_pause(op: Op) -> MethodResult {
    simple_op(op, "pause", "compute__do_container_pause", TaskState::ContainerPausing, Status::Paused, |op, id| async move {
        let r = op.svc.docker.pause(&id).await;
        (op, r)
    })
    .await
}

pub async fn container_unpause(op: Op) -> MethodResult {
    simple_op(op, "unpause", "compute__do_container_unpause", TaskState::ContainerUnpausing, Status::Running, |op, id| async move {
        let r = op.svc.docker.unpause(&id).await;
        (op, r)
    })
    .await
}

pub async fn container_kill(op: Op) -> MethodResult {
    let signal = op.arg_str("signal").filter(|s| s != "None");
    simple_op(op, "kill", "compute__do_container_kill", TaskState::ContainerKilling, Status::Stopped, move |op, id| async move {
        let r = op.svc.docker.kill(&id, signal).await;
        (op, r)
    })
    .await
}

/// `container_delete(force)`: task `container_deleting` (saving the API's unsaved
/// `Deleting`), Docker remove (a missing container is fine), release the usage, and
/// destroy the row. Deleting a container that is already gone succeeds; a delete while
/// Docker cannot be reached fails (Error with the reason, row kept), even when forced.
pub async fn container_delete(op: Op) -> MethodResult {
    let mut c = op.container_or_finish("delete").await?;
    let uuid = c.uuid().unwrap_or_default().to_string();
    let force = op.arg_bool("force");
    op.announce_start(&c, "delete");
    // The row may already be gone (a redelivered delete): nothing left to do but Docker.
    let row = op.svc.store.container_get(&uuid).await.map_err(|e| RpcError::internal(format!("Unexpected error: {e}")))?;
    if row.is_none() {
        let _ = op.svc.docker.remove(&crate::docker::container_name(&uuid), true).await;
        crate::compute::placement::free_container_allocation(&op.svc, &uuid, "container deleted").await;
        op.announce_end(&c, "delete", false);
        return Ok(Value::Null);
    }
    let target = c.get_str("container_id").map(str::to_string).unwrap_or_else(|| crate::docker::container_name(&uuid));
    // Never remove a Docker container that is not this one's.
    if let Err(e) = op.check_owned(&c, &target).await {
        op.finish_action(&c, "delete", true).await;
        return Err(e);
    }
    let guard = op.begin_task(&mut c, TaskState::ContainerDeleting).await?;
    // A capsule: its members go first (reverse order), then the sandbox is stopped.
    let mut exposes = super::network::exposes_ports(&c);
    if c.name == "Capsule" {
        match super::capsule::delete_members(&op, &c, force).await {
            Ok(members_expose) => exposes = members_expose,
            Err(e) => {
                op.fail(&mut c, &reason(&e), false).await;
                let _ = op.end_task(&mut c, guard).await;
                op.announce_end(&c, "delete", true);
                return Err(e);
            }
        }
    }
    if let Err(e) = op.svc.docker.remove(&target, force).await {
        let err = super::docker_error(&e);
        // `force` overrides Docker's refusals, not its absence: destroying the row while
        // Docker is unreachable would leave a container running that nothing tracks.
        let unreachable = matches!(e.kind, DockerErrorKind::Transport | DockerErrorKind::Timeout);
        if !force || unreachable {
            op.fail(&mut c, &reason(&err), false).await;
            let _ = op.end_task(&mut c, guard).await;
            op.announce_end(&c, "delete", true);
            return Err(err);
        }
        tracing::warn!(container = %uuid, error = %e, "forced delete: ignoring the Docker error");
    }
    // zun's `_cleanup_network_for_container` (zun runs it before the Docker remove; here
    // it runs after, so a refused remove never leaves a running container without its
    // ports): ports deleted, or unbound when preserved. Neutron refusing fails the
    // delete unless forced, and a retried delete releases them then.
    if let Err(e) = super::network::cleanup_for_delete(&op, &c).await {
        let err = super::network::rpc_error(&e);
        if !force {
            op.fail(&mut c, &reason(&err), false).await;
            let _ = op.end_task(&mut c, guard).await;
            op.announce_end(&c, "delete", true);
            return Err(err);
        }
        tracing::warn!(container = %uuid, error = %e, "forced delete: ports could not be released");
    }
    // zun's `_cleanup_exposed_ports`, once the ports that used the group are gone.
    super::network::cleanup_exposed_ports(&op, &c, exposes).await;
    // zun's `_detach_volumes` (unmount, disconnect, detach; auto_remove volumes deleted).
    if let Err(e) = crate::compute::volumes::detach_all(&op, &uuid, !force).await {
        let err = e.to_rpc();
        op.fail(&mut c, &e.to_string(), false).await;
        let _ = op.end_task(&mut c, guard).await;
        op.announce_end(&c, "delete", true);
        return Err(err);
    }
    let _ = op.end_task(&mut c, guard).await;
    // rt.remove_usage_from_container: only what this host claimed, as the row (not the
    // message) records it, and only figures a claim could have added.
    if let Some(row) = row.as_ref().filter(|r| r.get_str("host") == Some(op.svc.host.as_str())) {
        match checks::resources(row) {
            Ok(req) if !req.is_empty() => super::create::release_usage(&op, &req).await,
            Ok(_) => {}
            Err(msg) => tracing::warn!(container = %uuid, reason = %msg, "the row's resources were never claimable; releasing nothing"),
        }
    }
    op.svc.store.container_destroy(&uuid).await.map_err(|e| RpcError::internal(format!("Unexpected error: {e}")))?;
    // zun's delete_allocation_for_container; when Placement is away, the next inventory
    // pass frees it (the row is gone now).
    crate::compute::placement::free_container_allocation(&op.svc, &uuid, "container deleted").await;
    op.announce_end(&c, "delete", false);
    Ok(Value::Null)
}
