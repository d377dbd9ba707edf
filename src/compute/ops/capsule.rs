//! Capsules as zun 18.0.0's Docker capsule driver runs them (`capsule_driver = docker`).
//!
//! zun-api 18 sends a capsule through `container_create` / `container_delete` with a
//! `Capsule` object (the older rpcapi names `capsule_create` / `capsule_delete` are mapped
//! onto the same flows by `ops::run`). The capsule's own Docker container is the sandbox:
//! created like any container (claim of the capsule's summed figures, sandbox image pulled,
//! Neutron ports through kuryr, `zun-<capsule uuid>`), then started; then its init
//! containers run one after the other to completion, then its containers start, each with
//! `NetworkMode` and `IpcMode` `container:<sandbox id>` (one network and IPC namespace).
//! The members are the capsule's rows (`capsule_id` = the capsule's `id`, zun-api writes
//! them before the cast), in the order zun-api created them.
//!
//! Where this goes beyond zun: an init container that exits non-zero fails the capsule
//! (zun accepts any Stopped); a failed create removes what it made (members, sandbox,
//! ports, usage), where zun leaves them behind a row that has lost its host; members that
//! a redelivered create finds in Docker are adopted, not made twice.
//!
//! Delete: members in reverse order (containers last-first, then init containers
//! last-first), each stopped then removed; then the sandbox is stopped, and the ordinary
//! container delete removes it, releases its ports, usage and allocation and destroys the
//! row (members go with it by the `capsule_id` cascade).
//!
//! Volumes (zun-api's capsule `volumes` with `volumeMounts`: Cinder volumes, by member uuid
//! in `requested_volumes`) are waited for and attached before the sandbox is made, a volume
//! shared by members once; each member gets its binds; a failed create and the delete detach
//! them (the last member using a shared volume detaches it; `autoRemove` volumes deleted).
//! Start-up remount covers plain containers only, not capsule members.
use super::{create, docker_error, network, reason, Op};
use crate::compute::image_ref::{self, PullPolicy};
use crate::compute::mapping::{self, MappingOptions, VolumeBind};
use crate::compute::network::{ExposedPort, NetworkError};
use crate::compute::volumes::{self, VolumeError};
use crate::compute::{checks, populate};
use crate::oslo::{Container, Status, TaskState};
use crate::rpc::RpcError;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// At most this many members (init containers plus containers) per capsule.
pub const MAX_MEMBERS: usize = 32;
/// How long an init container may run (zun's `_wait_for_init_container` timeout).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest member name accepted (zun's `name` column is VARCHAR(255)).
pub const MAX_NAME_CHARS: usize = 255;

/// The capsule's members, read from its rows and checked.
#[derive(Debug, Default)]
pub struct Members {
    pub init: Vec<Container>,
    pub containers: Vec<Container>,
}

impl Members {
    /// Deletion order: containers last-first, then init containers last-first.
    fn reverse_order(&mut self) -> impl Iterator<Item = &mut Container> {
        self.containers.iter_mut().rev().chain(self.init.iter_mut().rev())
    }
}

/// The ports a capsule's members expose, all together (zun's `_process_exposed_ports` on a
/// Capsule); none without Neutron networks.
fn exposed_by_members(m: &Members, neutron: bool) -> Result<Vec<ExposedPort>, NetworkError> {
    if !neutron {
        return Ok(vec![]);
    }
    let mut all = vec![];
    for member in m.init.iter().chain(m.containers.iter()) {
        all.extend(ExposedPort::parse_all(member.exposed_ports().as_ref())?);
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// The capsule's status from its members' (after a create): Error when any member is in
/// Error, Running when every container runs, Creating while any is still being made, else
/// Stopped when every container stopped; anything else is Running (the sandbox runs).
/// Init containers count only when they failed (they stop by design).
pub fn derive_status(init: &[Option<Status>], containers: &[Option<Status>]) -> Status {
    if init.iter().chain(containers).any(|s| *s == Some(Status::Error)) {
        return Status::Error;
    }
    if containers.iter().any(|s| matches!(s, None | Some(Status::Creating) | Some(Status::Created))) {
        return Status::Creating;
    }
    if !containers.is_empty() && containers.iter().all(|s| *s == Some(Status::Stopped)) {
        return Status::Stopped;
    }
    Status::Running
}

/// A member's name as zun-api makes it (`capsule-<capsule name>-<generated>`): any text up
/// to [`MAX_NAME_CHARS`] characters, without control characters (names reach logs).
pub fn check_member_name(name: Option<&str>) -> Result<(), String> {
    let Some(name) = name else { return Ok(()) };
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("member name longer than {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("member name {} has control characters", checks::shown(name)));
    }
    Ok(())
}

/// When the message itself lists members (`init_containers` / `containers` set on the
/// object), they must be exactly the capsule's rows, in the rows' order: a message that
/// reorders init containers or names containers of another capsule is refused.
pub fn check_listed(listed: Option<&Value>, rows: &[Container], what: &str) -> Result<(), String> {
    let Some(listed) = listed.filter(|v| !v.is_null()) else { return Ok(()) };
    let Some(items) = listed.as_array() else { return Err(format!("the capsule's {what} is not a list")) };
    if items.len() > MAX_MEMBERS {
        return Err(format!("the capsule lists {} {what}; at most {MAX_MEMBERS} members are allowed", items.len()));
    }
    let uuids: Vec<Option<&str>> =
        items.iter().map(|i| i.get(crate::oslo::object::KEY_DATA).and_then(|d| d.get("uuid")).and_then(Value::as_str)).collect();
    let rows: Vec<Option<&str>> = rows.iter().map(Container::uuid).collect();
    if uuids != rows {
        return Err(format!("the capsule's {what} in the message differ from its rows (members or order): refusing it"));
    }
    Ok(())
}

/// Reads and checks the capsule's members: its row id, at most [`MAX_MEMBERS`], at least
/// one container (zun-api's own rule), uuids and Docker ids of the right shape, names.
async fn load_members(op: &Op, capsule: &Container) -> Result<Members, String> {
    let id = capsule.get("id").and_then(Value::as_i64).ok_or("the capsule object has no id: zun-api writes its row before the cast")?;
    let rows = op.svc.store.capsule_members(id).await.map_err(|e| format!("Cannot read the capsule's containers: {e}"))?;
    if rows.len() > MAX_MEMBERS {
        return Err(format!("the capsule has {} containers; at most {MAX_MEMBERS} are allowed", rows.len()));
    }
    let mut m = Members::default();
    for row in rows {
        checks::check_docker_refs(&row)?;
        check_member_name(row.get_str("name"))?;
        if row.name == "CapsuleInitContainer" {
            m.init.push(row);
        } else {
            m.containers.push(row);
        }
    }
    if m.containers.is_empty() {
        return Err("Capsule need to have one container at least".into());
    }
    check_listed(capsule.get("init_containers"), &m.init, "init_containers")?;
    check_listed(capsule.get("containers"), &m.containers, "containers")?;
    Ok(m)
}

/// zun's `_wait_for_volumes_available` and `_attach_volumes_for_capsule` (init containers,
/// then containers); returns each member's binds. On failure, whatever was attached is
/// detached again.
async fn attach_volumes(op: &Op, capsule: &Container, members: &Members) -> Result<Vec<(String, Vec<VolumeBind>)>, VolumeError> {
    let uuids: Vec<&str> = members.init.iter().chain(&members.containers).filter_map(Container::uuid).collect();
    let reqs = volumes::parse_capsule_requested(op, op.arg("requested_volumes"), &uuids, capsule.get_str("project_id")).await?;
    if reqs.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<volumes::VolumeRequest> = reqs.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
    volumes::wait_available(op, &all).await?;
    let mut binds = Vec::new();
    let res: Result<(), VolumeError> = async {
        for uuid in &uuids {
            let Some((_, r)) = reqs.iter().find(|(m, _)| m == uuid) else { continue };
            volumes::attach_all(op, uuid, r).await?;
            binds.push((uuid.to_string(), volumes::binds(op, uuid).await?));
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        detach_volumes(op, members).await;
        return Err(e);
    }
    Ok(binds)
}

/// zun's `_detach_volumes_for_capsule` after a failed create (errors logged, the rest goes on).
async fn detach_volumes(op: &Op, members: &Members) {
    for uuid in members.init.iter().chain(&members.containers).filter_map(Container::uuid) {
        if let Err(e) = volumes::detach_all(op, uuid, false).await {
            tracing::warn!(member = uuid, error = %e, "could not detach a capsule member's volumes");
        }
    }
}

/// `container_create` of a `Capsule`: checks, claim and sandbox (the create event), then
/// the members. Every failure ends the capsule in Error with the reason, its host unset and
/// nothing left in Docker or Neutron.
pub(crate) async fn create_flow(op: &Op, c: &mut Container, uuid: &str) -> Result<(), RpcError> {
    let mut members = match load_members(op, c).await {
        Ok(m) => m,
        Err(msg) => {
            tracing::warn!(capsule = uuid, request_id = op.request_id(), reason = %msg, "refusing the capsule");
            op.fail(c, &msg, true).await;
            return Err(RpcError::invalid(msg));
        }
    };
    let nets = match create::requested_networks(op) {
        Ok(n) => n,
        Err(e) => {
            op.fail(c, &e.to_string(), true).await;
            return Err(network::rpc_error(&e));
        }
    };
    if !nets.is_empty() && op.svc.kuryr.is_none() {
        let msg = network::not_configured_reason();
        op.fail(c, msg, true).await;
        return Err(RpcError::not_supported(msg));
    }
    // zun's `_process_exposed_ports` for a capsule: its members' ports, on the sandbox.
    let net = match exposed_by_members(&members, !nets.is_empty()) {
        Ok(exposed) => network::NetworkRequest { nets, exposed },
        Err(e) => {
            op.fail(c, &e.to_string(), true).await;
            return Err(network::rpc_error(&e));
        }
    };
    let request = match checks::resources(c) {
        Ok(r) => r,
        Err(msg) => {
            op.fail(c, &msg, true).await;
            return Err(RpcError::invalid(msg));
        }
    };
    create::check_disk_quota(op, c).await?;
    let binds = match attach_volumes(op, c, &members).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(capsule = uuid, request_id = op.request_id(), error = %e, "capsule volumes failed");
            op.fail(c, &e.to_string(), true).await;
            return Err(e.to_rpc());
        }
    };
    tracing::info!(
        capsule = uuid,
        request_id = op.request_id(),
        init = members.init.len(),
        containers = members.containers.len(),
        "creating capsule"
    );

    op.event_start(uuid, "compute__do_container_create").await;
    let res = async {
        // The claim (the capsule's summed figures) and the sandbox: `zun-<capsule uuid>`
        // with the capsule's Neutron ports.
        create::do_container_create(op, c, &net).await?;
        // zun's claim sets the host even when the capsule asks for nothing (our claim of an
        // empty request does not): zun-api sends a capsule's delete only when it has one.
        if c.get_str("host") != Some(op.svc.host.as_str()) {
            c.set("host", json!(op.svc.host));
            op.save(c).await?;
        }
        let run = run_members(op, c, &mut members, &binds).await;
        if let Err(e) = &run {
            tracing::warn!(capsule = uuid, request_id = op.request_id(), error = %reason(e), "capsule create failed; removing what it made");
            teardown(op, c, &mut members).await;
            op.fail(c, &reason(e), true).await;
            if !request.is_empty() {
                create::release_usage(op, &request).await;
            }
        }
        run
    }
    .await;
    if res.is_err() && !binds.is_empty() {
        detach_volumes(op, &members).await;
    }
    op.event_finish(uuid, "compute__do_container_create", &res).await;
    res
}

/// `create_capsule` after the sandbox exists: start it, run the init containers to
/// completion in order, start the containers, derive the capsule's status.
async fn run_members(op: &Op, c: &mut Container, m: &mut Members, binds: &[(String, Vec<VolumeBind>)]) -> Result<(), RpcError> {
    let guard = op.begin_task(c, TaskState::ContainerCreating).await?;
    let res = async {
        let sandbox = c.get_str("container_id").map(str::to_string).ok_or_else(|| RpcError::internal("the sandbox has no container id"))?;
        if let Err(e) = op.svc.docker.start(&sandbox).await {
            return Err(docker_error(&e));
        }
        let inspect = op.svc.docker.inspect(&sandbox).await.map_err(|e| docker_error(&e))?;
        populate::populate_from_inspect(c, &inspect, true, chrono::Utc::now());
        // The capsule shows Creating until its members run (zun saves it once, at the end).
        c.set_status(Status::Creating, None);
        c.set("started_at", json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()));
        op.save(c).await?;
        for i in 0..m.init.len() {
            let member = &mut m.init[i];
            run_member(op, &sandbox, member, binds, true).await?;
        }
        for member in m.containers.iter_mut() {
            run_member(op, &sandbox, member, binds, false).await?;
        }
        let init: Vec<Option<Status>> = m.init.iter().map(Container::status).collect();
        let containers: Vec<Option<Status>> = m.containers.iter().map(Container::status).collect();
        let status = derive_status(&init, &containers);
        if status == Status::Error {
            return Err(RpcError::internal("a container of the capsule failed"));
        }
        c.set_status(status, None);
        op.save(c).await
    }
    .await;
    let ended = op.end_task(c, guard).await;
    res.and(ended)
}

/// One member: image, create in the sandbox's namespaces, start, and for an init
/// container wait until it exited (non-zero fails the capsule). A member Docker already
/// has (`zun-<member uuid>`: a redelivered create) is adopted.
async fn run_member(op: &Op, sandbox: &str, m: &mut Container, binds: &[(String, Vec<VolumeBind>)], init: bool) -> Result<(), RpcError> {
    let muuid = m.uuid().unwrap_or_default().to_string();
    let label = m.get_str("name").map(checks::shown).unwrap_or_else(|| muuid.clone());
    let res: Result<(), RpcError> = async {
        let name = crate::docker::container_name(&muuid);
        let id = match op.svc.docker.inspect(&name).await {
            Ok(existing) => {
                tracing::info!(member = %muuid, "capsule member already in Docker; adopting it");
                let id = existing.get("Id").and_then(Value::as_str).unwrap_or_default().to_string();
                populate::populate_from_inspect(m, &existing, true, chrono::Utc::now());
                op.save(m).await?;
                let done = existing.pointer("/State/Status").and_then(Value::as_str) == Some("exited");
                if m.status_is(Status::Running) || (init && done) {
                    return finish_member(op, m, &id, &label, init).await;
                }
                id
            }
            Err(_) => create_member(op, sandbox, m, &muuid, binds).await?,
        };
        op.svc.docker.start(&id).await.map_err(|e| docker_error(&e))?;
        finish_member(op, m, &id, &label, init).await
    }
    .await;
    if let Err(e) = &res {
        if !m.status_is(Status::Error) {
            m.set_status(Status::Error, Some(&reason(e)));
        }
        if let Err(db) = op.save(m).await {
            tracing::warn!(member = %muuid, error = %reason(&db), "could not record the member's failure");
        }
    }
    res
}

async fn create_member(
    op: &Op,
    sandbox: &str,
    m: &mut Container,
    muuid: &str,
    binds: &[(String, Vec<VolumeBind>)],
) -> Result<String, RpcError> {
    let svc = &op.svc;
    let image = m.get_str("image").unwrap_or_default().to_string();
    let driver = m.get_str("image_driver").unwrap_or("docker").to_string();
    let (repo, tag) = image_ref::parse_image_name(&image, &driver, None, svc.conf.default_registry.as_deref())
        .map_err(|e| RpcError::invalid(e.to_string()))?;
    if driver == "glance" {
        return Err(RpcError::not_supported("Glance images are not supported in capsules by zun-compute-rs yet"));
    }
    let policy = image_ref::pull_policy(m.get_str("image_pull_policy"), &tag);
    let reference = mapping::image_reference(&repo, &tag);
    let present = svc.docker.image_exists(&reference).await.map_err(|e| docker_error(&e))?;
    if image_ref::should_pull(&policy, present.is_some()) {
        tracing::info!(member = muuid, image = %reference, policy = policy.as_str(), "pulling a capsule member's image");
        svc.docker.pull(&repo, &tag, None).await.map_err(|e| {
            if e.is_not_found() {
                RpcError::image_not_found(e.to_string())
            } else {
                RpcError::internal(format!("Cannot download image from docker: Error on pulling image: {repo}:{tag}: {}", e.message))
            }
        })?;
    } else if present.is_none() {
        let p = match policy {
            PullPolicy::Never => "Never".to_string(),
            other => other.as_str().to_string(),
        };
        return Err(RpcError::image_not_found(format!("Image {repo} not present with pull policy of {p}")));
    }
    if mapping::needs_image_command(m).unwrap_or(false) {
        if let Some(inspect) = svc.docker.image_exists(&reference).await.map_err(|e| docker_error(&e))? {
            mapping::fill_command_from_image(m, &inspect).map_err(|e| RpcError::invalid(e.to_string()))?;
        }
    }
    let joined = format!("container:{sandbox}");
    let opts = MappingOptions {
        default_runtime: svc.conf.default_runtime.clone(),
        disk_quota_supported: svc.disk_quota_supported,
        network_mode: joined.clone(),
        api_version: svc.docker.api_version(),
        binds: binds.iter().find(|(u, _)| u == muuid).map(|(_, b)| b.clone()).unwrap_or_default(),
    };
    let mut body = mapping::container_create_config(m, &repo, &tag, &opts).map_err(|e| RpcError::invalid(e.to_string()))?;
    // The sandbox owns the network: Docker refuses a hostname or exposed ports in
    // `container:` network mode (zun's capsule driver passes neither).
    body.hostname = None;
    body.exposed_ports = None;
    if let Some(hc) = body.host_config.as_mut() {
        hc.ipc_mode = Some(joined);
    }
    let id = svc.docker.create(&crate::docker::container_name(muuid), body).await.map_err(|e| docker_error(&e))?;
    m.set("container_id", json!(id));
    op.save(m).await?;
    Ok(id)
}

/// After the start: inspect and record; an init container is waited for.
async fn finish_member(op: &Op, m: &mut Container, id: &str, label: &str, init: bool) -> Result<(), RpcError> {
    let mut inspect = op.svc.docker.inspect(id).await.map_err(|e| docker_error(&e))?;
    if init {
        inspect = wait_exited(op, id, label).await?;
    }
    populate::populate_from_inspect(m, &inspect, true, chrono::Utc::now());
    if init {
        let code = inspect.pointer("/State/ExitCode").and_then(Value::as_i64).unwrap_or(-1);
        if code != 0 {
            let msg = format!("Init container {label} exited with code {code}");
            m.set_status(Status::Error, Some(&msg));
            op.save(m).await?;
            return Err(RpcError::invalid(msg));
        }
    } else if !m.status_is(Status::Running) {
        let msg = format!("Container {label} of the capsule is {} after its start", m.get_str("status").unwrap_or("Unknown"));
        m.set_status(Status::Error, Some(&msg));
        op.save(m).await?;
        return Err(RpcError::invalid(msg));
    }
    op.save(m).await
}

/// Polls the init container until it is neither running nor restarting (its restart
/// policy may retry it), up to [`INIT_TIMEOUT`]; returns the last inspect.
async fn wait_exited(op: &Op, id: &str, label: &str) -> Result<Value, RpcError> {
    let deadline = Instant::now() + INIT_TIMEOUT;
    let mut pause = Duration::from_millis(50);
    loop {
        let inspect = op.svc.docker.inspect(id).await.map_err(|e| docker_error(&e))?;
        let flag = |k: &str| inspect.pointer(&format!("/State/{k}")).and_then(Value::as_bool).unwrap_or(false);
        if !flag("Running") && !flag("Restarting") {
            return Ok(inspect);
        }
        if Instant::now() >= deadline {
            return Err(RpcError::internal(format!("Init container {label} still runs after {} s", INIT_TIMEOUT.as_secs())));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// A failed create: members removed (reverse order), then the sandbox and its ports.
async fn teardown(op: &Op, c: &mut Container, m: &mut Members) {
    for member in m.reverse_order() {
        let name = crate::docker::container_name(member.uuid().unwrap_or_default());
        if let Err(e) = op.svc.docker.remove(&name, true).await {
            tracing::warn!(member = member.uuid().unwrap_or("-"), error = %e, "could not remove a capsule member");
        }
    }
    let sandbox = crate::docker::container_name(c.uuid().unwrap_or_default());
    if let Err(e) = op.svc.docker.remove(&sandbox, true).await {
        tracing::warn!(capsule = c.uuid().unwrap_or("-"), error = %e, "could not remove the sandbox");
    }
    if let Err(e) = network::cleanup_for_delete(op, c).await {
        tracing::warn!(capsule = c.uuid().unwrap_or("-"), error = %e, "could not release the capsule's ports");
    }
    if c.get_str("container_id").is_some() {
        c.set("container_id", Value::Null);
    }
    if c.get_json("addresses").is_some_and(|a| a.as_object().is_some_and(|o| !o.is_empty())) {
        c.set_json("addresses", Some(&json!({})));
    }
}

/// `delete_capsule` before the sandbox goes: each member stopped and removed (reverse
/// order; one Docker no longer has is fine; one whose `container_id` names another Docker
/// container is refused), then the sandbox stopped. Errors stop the delete unless `force`.
pub(crate) async fn delete_members(op: &Op, capsule: &Container, force: bool) -> Result<bool, RpcError> {
    let Some(id) = capsule.get("id").and_then(Value::as_i64) else { return Ok(false) };
    let rows = op.svc.store.capsule_members(id).await.map_err(|e| RpcError::internal(format!("Unexpected error: {e}")))?;
    let mut m = Members::default();
    for row in rows {
        if row.name == "CapsuleInitContainer" {
            m.init.push(row);
        } else {
            m.containers.push(row);
        }
    }
    for member in m.reverse_order() {
        let muuid = member.uuid().unwrap_or_default().to_string();
        let Some(mid) = member.get_str("container_id").map(str::to_string) else { continue };
        if let Err(e) = op.check_owned(member, &mid).await {
            if !force {
                return Err(e);
            }
            continue;
        }
        if let Err(e) = op.svc.docker.stop(&mid, None).await {
            if !(e.is_not_found() || e.is_not_running()) {
                tracing::debug!(member = %muuid, error = %e, "stopping a capsule member failed; removing it anyway");
            }
        }
        if let Err(e) = op.svc.docker.remove(&mid, force).await {
            if !force {
                return Err(docker_error(&e));
            }
            tracing::warn!(member = %muuid, error = %e, "forced delete: ignoring the Docker error");
        }
        tracing::info!(member = %muuid, capsule = capsule.uuid().unwrap_or("-"), "capsule member removed");
    }
    // zun's `_detach_volumes_for_capsule`: init containers, then containers.
    for member in m.init.iter().chain(&m.containers) {
        let muuid = member.uuid().unwrap_or_default();
        if let Err(e) = volumes::detach_all(op, muuid, !force).await {
            if !force {
                return Err(e.to_rpc());
            }
            tracing::warn!(member = %muuid, error = %e, "forced delete: ignoring the volume error");
        }
    }
    if let Some(sandbox) = capsule.get_str("container_id") {
        if let Err(e) = op.svc.docker.stop(sandbox, None).await {
            if !(e.is_not_found() || e.is_not_running()) {
                tracing::debug!(capsule = capsule.uuid().unwrap_or("-"), error = %e, "stopping the sandbox failed");
            }
        }
    }
    Ok(m.init.iter().chain(&m.containers).any(network::exposes_ports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn member(name: &str, uuid: &str) -> Container {
        let mut d = Map::new();
        d.insert("uuid".into(), json!(uuid));
        let mut c = Container::with_data(d);
        c.name = name.into();
        c
    }

    fn listed(uuids: &[&str]) -> Value {
        json!(uuids.iter().map(|u| json!({"zun_object.data": {"uuid": u}})).collect::<Vec<_>>())
    }

    #[test]
    fn status_from_members() {
        use Status::*;
        assert_eq!(derive_status(&[Some(Stopped)], &[Some(Running), Some(Running)]), Running);
        assert_eq!(derive_status(&[Some(Error)], &[Some(Running)]), Error);
        assert_eq!(derive_status(&[], &[Some(Running), Some(Error)]), Error);
        assert_eq!(derive_status(&[], &[Some(Running), Some(Created)]), Creating);
        assert_eq!(derive_status(&[], &[None]), Creating);
        assert_eq!(derive_status(&[Some(Stopped)], &[Some(Stopped), Some(Stopped)]), Stopped);
        assert_eq!(derive_status(&[], &[Some(Running), Some(Stopped)]), Running);
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert!(check_member_name(None).is_ok());
        assert!(check_member_name(Some("capsule-web-zeta-22-container")).is_ok());
        assert!(check_member_name(Some(&"x".repeat(256))).is_err());
        assert!(check_member_name(Some("bad\nname")).unwrap_err().contains("control"));
    }

    #[test]
    fn listed_members_must_match_the_rows_in_order() {
        let a = "8a0e1d36-1111-4c1f-9c6f-4b1fdc2d0a01";
        let b = "8a0e1d36-2222-4c1f-9c6f-4b1fdc2d0a02";
        let rows = vec![member("CapsuleInitContainer", a), member("CapsuleInitContainer", b)];
        assert!(check_listed(None, &rows, "init_containers").is_ok());
        assert!(check_listed(Some(&Value::Null), &rows, "init_containers").is_ok());
        assert!(check_listed(Some(&listed(&[a, b])), &rows, "init_containers").is_ok());
        let swapped = check_listed(Some(&listed(&[b, a])), &rows, "init_containers").unwrap_err();
        assert!(swapped.contains("order"), "{swapped}");
        assert!(check_listed(Some(&listed(&[a])), &rows, "init_containers").is_err());
        assert!(check_listed(Some(&json!("x")), &rows, "init_containers").is_err());
        let many: Vec<&str> = std::iter::repeat_n(a, MAX_MEMBERS + 1).collect();
        assert!(check_listed(Some(&listed(&many)), &rows, "containers").unwrap_err().contains("at most"));
    }
}
