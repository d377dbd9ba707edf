//! `container_create` and `container_rebuild` (master semantics, §2.4 of the reference):
//! disk-quota check, resource claim (sets `host`), image pull per policy, Docker create
//! with the full mapping, inspect, optional start. Every failure ends in status Error
//! with the reason, never in Creating.
//!
//! Redelivery-safe: a create that finds `zun-<uuid>` already in Docker adopts it instead
//! of failing or making a second container, and a claim already recorded for this host is
//! not counted twice.
use super::{docker_error, lifecycle, network, reason, Op};
use crate::compute::image_ref::{self, PullPolicy};
use crate::compute::mapping::{self, MappingOptions};
use crate::compute::network::{ExposedPort, RequestedNetwork};
use crate::compute::populate;
use crate::compute::{checks, claims, volumes};
use crate::docker::RegistryCredentials;
use crate::oslo::{Container, Status, TaskState};
use crate::rpc::{MethodResult, RpcError};
use serde_json::{json, Map, Value};

pub async fn container_create(op: Op) -> MethodResult {
    let mut c = match op.container() {
        Ok(c) => c,
        Err(e) => {
            fail_unreadable_create(&op, &e).await;
            return Err(e);
        }
    };
    let uuid = c.uuid().unwrap_or_default().to_string();
    let run = op.arg_bool("run");
    // A create starts from Creating whatever the object claims: a primitive saying
    // `Running` must not skip the start (an adopted container gets Docker's state).
    if !c.status_is(Status::Creating) {
        c.set_status(Status::Creating, None);
    }
    if deleted_since_sent(&op, &c, &uuid).await {
        // Saving would insert the row again and Docker would get the container back:
        // a container the user deleted would come back to life.
        tracing::info!(container = %uuid, request_id = op.request_id(), redelivered = op.redelivered,
            "the container was deleted after this create was sent; nothing to do");
        return Ok(Value::Null);
    }
    op.announce_start(&c, "create");
    // A capsule (zun-api 18 sends it here): sandbox, init containers, containers.
    let res = if c.name == "Capsule" {
        super::capsule::create_flow(&op, &mut c, &uuid).await
    } else {
        create_flow(&op, &mut c, &uuid, run).await
    };
    if res.is_err() && c.get_str("status") == Some("Error") {
        // zun-api's scheduler allocated for this host; zun leaks it here, we give it back.
        crate::compute::placement::free_container_allocation(&op.svc, &uuid, "create failed").await;
    }
    op.finish_action(&c, "create", res.is_err()).await;
    res.map(|_| Value::Null)
}

/// A create whose `container` argument is missing or fails validation still ends its
/// row (zun-api inserted it in Creating, without a host, so no recovery would ever see
/// it): Error with the reason. The row is the object's uuid when it can be read, else the
/// one whose `create` action carries this request id; only a row still in Creating is
/// touched.
pub(crate) async fn fail_unreadable_create(op: &Op, e: &RpcError) {
    let from_object = op
        .args
        .get("container")
        .and_then(|v| v.get(crate::oslo::object::KEY_DATA))
        .and_then(|d| d.get("uuid"))
        .and_then(Value::as_str)
        .filter(|u| checks::check_uuid(u).is_ok())
        .map(str::to_string);
    let uuid = match from_object {
        Some(u) => u,
        None => match op.svc.store.action_container_uuids(op.request_id(), "create").await {
            Ok(found) if found.len() == 1 => found[0].clone(),
            Ok(_) => {
                tracing::warn!(request_id = op.request_id(), error = %e, "unreadable create: no single create action for this request; no row to fail");
                return;
            }
            Err(db) => {
                tracing::warn!(request_id = op.request_id(), error = %db, "unreadable create: cannot look up its action");
                return;
            }
        },
    };
    let mut row = match op.svc.store.container_get(&uuid).await {
        Ok(Some(row)) => row,
        Ok(None) => return,
        Err(db) => {
            tracing::warn!(container = %uuid, request_id = op.request_id(), error = %db, "unreadable create: cannot read its row");
            return;
        }
    };
    let ours = row.get_str("host").is_none_or(|h| h == op.svc.host);
    if !row.status_is(Status::Creating) || !ours {
        return;
    }
    let msg = format!("Container failed to create: the request could not be read: {}", reason(e));
    tracing::warn!(container = %uuid, request_id = op.request_id(), reason = %msg, "failing the create of an unreadable request");
    row.set_status(Status::Error, Some(&msg));
    row.set_task_state(None);
    row.set("host", Value::Null);
    if let Err(db) = op.svc.store.container_update(&mut row).await {
        tracing::warn!(container = %uuid, error = %db, "could not record the failed create");
    }
    op.finish_action(&row, "create", true).await;
}

/// True when the object was read from a row (zun-api created it: it has an `id`) and
/// that row is gone: a create redelivered (broker restart, worker crash) or sent twice
/// after its container was deleted. A store error answers false: the create goes on and
/// fails at its first save like any other operation would.
async fn deleted_since_sent(op: &Op, c: &Container, uuid: &str) -> bool {
    if c.get("id").is_none_or(Value::is_null) {
        return false;
    }
    matches!(op.svc.store.container_get(uuid).await, Ok(None))
}

async fn create_flow(op: &Op, c: &mut Container, uuid: &str, run: bool) -> Result<(), RpcError> {
    // Volumes: `requested_volumes` checked before anything is made (see compute::volumes).
    let vol_reqs = match volumes::parse_requested(op.arg("requested_volumes"), uuid, &op.svc.conf.volume.drivers) {
        Ok(v) => v,
        Err(e) => {
            op.fail(c, &e.to_string(), true).await;
            return Err(e.to_rpc());
        }
    };
    // Networks: Neutron networks through kuryr; none means Docker's default network.
    let nets = match requested_networks(op) {
        Ok(n) => n,
        Err(e) => {
            let msg = e.to_string();
            op.fail(c, &msg, true).await;
            return Err(network::rpc_error(&e));
        }
    };
    if !nets.is_empty() && op.svc.kuryr.is_none() {
        let msg = network::not_configured_reason();
        op.fail(c, msg, true).await;
        return Err(RpcError::not_supported(msg));
    }
    let exposed = if nets.is_empty() { Ok(vec![]) } else { ExposedPort::parse_all(c.exposed_ports().as_ref()) };
    let net = match exposed {
        Ok(exposed) => network::NetworkRequest { nets, exposed },
        Err(e) => {
            op.fail(c, &e.to_string(), true).await;
            return Err(network::rpc_error(&e));
        }
    };
    // Every figure is checked before it reaches arithmetic, the claim or Docker.
    if let Err(msg) = checks::resources(c) {
        op.fail(c, &msg, true).await;
        return Err(RpcError::invalid(msg));
    }
    check_disk_quota(op, c).await?;
    if !vol_reqs.is_empty() {
        attach_volumes(op, c, uuid, &vol_reqs).await?;
    }

    let res: Result<(), RpcError> = async {
        op.event_start(uuid, "compute__do_container_create").await;
        let created = do_container_create(op, c, &net).await;
        op.event_finish(uuid, "compute__do_container_create", &created).await;
        created?;
        // An adopted container may be running already (the first attempt started it).
        if run && !c.status_is(Status::Running) {
            lifecycle::do_start(op, c).await?;
        }
        Ok(())
    }
    .await;
    if res.is_err() && !vol_reqs.is_empty() {
        // zun's `_fail_container` detaches the container's volumes.
        if let Err(e) = volumes::detach_all(op, uuid, false).await {
            tracing::warn!(container = uuid, error = %e, "could not detach the volumes of a failed create");
        }
    }
    res
}

/// zun's `_wait_for_volumes_available` and `_attach_volumes`: every failure ends the
/// create in Error (host unset) with nothing left attached.
async fn attach_volumes(op: &Op, c: &mut Container, uuid: &str, reqs: &[volumes::VolumeRequest]) -> Result<(), RpcError> {
    let res = match volumes::wait_available(op, reqs).await {
        Ok(()) => volumes::attach_all(op, uuid, reqs).await,
        Err(e) => Err(e),
    };
    let Err(e) = res else { return Ok(()) };
    if let Err(d) = volumes::detach_all(op, uuid, false).await {
        tracing::warn!(container = uuid, error = %d, "could not detach the volumes attached before the failure");
    }
    op.fail(c, &e.to_string(), true).await;
    Err(e.to_rpc())
}

/// zun's `_check_support_disk_quota`.
pub(crate) async fn check_disk_quota(op: &Op, c: &mut Container) -> Result<(), RpcError> {
    let disk = c.get("disk").and_then(Value::as_i64).unwrap_or(0);
    if !op.svc.disk_quota_supported {
        if disk != 0 {
            let msg = "Your host does not support disk quota feature.";
            op.fail(c, msg, true).await;
            return Err(RpcError::invalid(msg));
        }
        return Ok(());
    }
    if disk == 0 {
        c.set("disk", json!(op.svc.conf.default_disk_gb));
    }
    Ok(())
}

/// The claim plus `_do_container_create_base`, inside the create event.
pub(crate) async fn do_container_create(op: &Op, c: &mut Container, net: &network::NetworkRequest) -> Result<(), RpcError> {
    let limits: Map<String, Value> = op.arg("limits").and_then(Value::as_object).cloned().unwrap_or_default();
    let request = match checks::resources(c) {
        Ok(r) => r,
        Err(msg) => {
            op.fail(c, &msg, true).await;
            return Err(RpcError::invalid(msg));
        }
    };
    let claimed = claim(op, c, &request, &limits).await?;
    let res = create_base(op, c, net).await;
    if res.is_err() && claimed && c.get_str("host") != Some(op.svc.host.as_str()) {
        // Claim.__exit__ → abort: the failure took the row off this host, so its usage
        // goes back now. A failure that keeps the host keeps the usage: the row still
        // counts in the inventory audit, and its delete releases it, once.
        release_usage(op, &request).await;
    }
    res
}

/// `rt.container_claim`: test against the limits, set `host`, add the usage.
/// Returns whether usage was recorded (false for a NopClaim or a redelivered create).
async fn claim(op: &Op, c: &mut Container, req: &claims::Request, limits: &Map<String, Value>) -> Result<bool, RpcError> {
    if req.is_empty() {
        return Ok(false);
    }
    let host = op.svc.host.clone();
    let _lock = op.svc.claims.lock().await;
    // A redelivered create whose first attempt already claimed here: don't count twice.
    // (Only a redelivery can have a first attempt: the row is read for nothing else.)
    let uuid = c.uuid().unwrap_or_default().to_string();
    if op.redelivered {
        if let Ok(Some(row)) = op.svc.store.container_get(&uuid).await {
            if row.get_str("host") == Some(host.as_str()) {
                if c.get_str("host") != Some(host.as_str()) {
                    c.set("host", json!(host));
                    op.save(c).await?;
                }
                return Ok(false);
            }
        }
    }
    let usage = match op.svc.store.compute_node_get(&host).await {
        Ok(Some(n)) => claims::Usage { mem_used_mb: n.mem_used, cpu_used: n.cpu_used, disk_used_gb: n.disk_used },
        _ => claims::Usage::default(),
    };
    if let Err(msg) = claims::claim_test(req, &usage, limits) {
        op.fail(c, &msg, true).await;
        return Err(RpcError::resources_unavailable(msg));
    }
    c.set("host", json!(host));
    op.save(c).await?;
    if let Err(e) = op.svc.store.compute_node_add_usage(&host, req.cpu, req.memory_mb, req.disk_gb, 1).await {
        // Nothing was claimed: fail before anything else runs, and never release it.
        tracing::warn!(container = %uuid, error = %e, "could not record the claim in compute_node");
        let msg = format!("Cannot claim resources on {host}: {e}");
        op.fail(c, &msg, true).await;
        return Err(RpcError::internal(msg));
    }
    Ok(true)
}

pub(crate) async fn release_usage(op: &Op, req: &claims::Request) {
    let _lock = op.svc.claims.lock().await;
    if let Err(e) = op.svc.store.compute_node_add_usage(&op.svc.host, -req.cpu, -req.memory_mb, -req.disk_gb, -1).await {
        tracing::warn!(error = %e, "could not release usage in compute_node");
    }
}

/// zun's `_do_container_create_base`: task `container_creating`, pull, create, inspect.
pub(crate) async fn create_base(op: &Op, c: &mut Container, net: &network::NetworkRequest) -> Result<(), RpcError> {
    let guard = op.begin_task(c, TaskState::ContainerCreating).await?;
    let res = pull_and_create(op, c, net).await;
    let ended = op.end_task(c, guard).await;
    res.and(ended)
}

async fn pull_and_create(op: &Op, c: &mut Container, net: &network::NetworkRequest) -> Result<(), RpcError> {
    let svc = &op.svc;
    let name = crate::docker::container_name(c.uuid().unwrap_or_default());
    // Redelivery or a crash after create: adopt the container Docker already has.
    if let Ok(existing) = svc.docker.inspect(&name).await {
        tracing::info!(container = c.uuid().unwrap_or("-"), "zun-<uuid> already exists in Docker; adopting it");
        if let Some(id) = existing.get("Id").and_then(Value::as_str) {
            c.set("container_id", json!(id));
        }
        populate::populate_from_inspect(c, &existing, true, chrono::Utc::now());
        // Whatever recovery or an earlier attempt wrote as the reason no longer holds.
        if !c.status_is(Status::Error) {
            c.set("status_reason", Value::Null);
        }
        return op.save(c).await;
    }

    let image = c.get_str("image").unwrap_or_default().to_string();
    let driver = c.get_str("image_driver").unwrap_or("docker").to_string();
    let (repo, tag) = match image_ref::parse_image_name(&image, &driver, None, svc.conf.default_registry.as_deref()) {
        Ok(rt) => rt,
        Err(e) => {
            let msg = e.to_string();
            op.fail(c, &msg, false).await;
            return Err(RpcError::invalid(msg));
        }
    };
    // Glance: found, downloaded, verified, loaded and tagged (ops/glance.rs).
    let (repo, tag) = if driver == "glance" {
        if svc.glance.is_none() {
            let msg = "Glance images need [keystone_auth] on this host: no Glance client is configured";
            op.fail(c, msg, false).await;
            return Err(RpcError::not_supported(msg));
        }
        super::glance::pull(op, c, &repo).await?
    } else {
        (repo, tag)
    };
    let reference = mapping::image_reference(&repo, &tag);
    if driver != "glance" {
        let policy = image_ref::pull_policy(c.get_str("image_pull_policy"), &tag);
        let present = svc.docker.image_exists(&reference).await.map_err(|e| docker_error(&e));
        let present = match present {
            Ok(p) => p,
            Err(e) => {
                op.fail(c, &reason(&e), false).await;
                return Err(e);
            }
        };
        if image_ref::should_pull(&policy, present.is_some()) {
            let creds = credentials(op, &repo);
            tracing::info!(container = c.uuid().unwrap_or("-"), image = %reference, policy = policy.as_str(), "pulling image");
            if let Err(e) = svc.docker.pull(&repo, &tag, creds.as_ref()).await {
                let (msg, err) = if e.is_not_found() {
                    let m = e.to_string();
                    (m.clone(), RpcError::image_not_found(m))
                } else {
                    let m = format!("Cannot download image from docker: Error on pulling image: {repo}:{tag}: {}", e.message);
                    (m.clone(), RpcError::internal(m))
                };
                op.fail(c, &msg, false).await;
                return Err(err);
            }
        } else if present.is_none() {
            let msg = match policy {
                PullPolicy::Never => format!("Image {repo} not present with pull policy of Never"),
                _ => format!("Image {repo} not present with pull policy of {}", policy.as_str()),
            };
            op.fail(c, &msg, false).await;
            return Err(RpcError::image_not_found(msg));
        }
        if c.get_str("image_driver") != Some("docker") {
            c.set("image_driver", json!("docker"));
        }
    }
    op.save(c).await?;

    // driver.create
    let mut provisioned: Option<network::Provisioned> = None;
    let created: Result<(), RpcError> = async {
        if !net.nets.is_empty() {
            tracing::info!(
                container = c.uuid().unwrap_or("-"),
                networks = net.nets.len(),
                exposed_ports = net.exposed.len(),
                "provisioning Neutron networks"
            );
            provisioned = Some(network::provision(op, c, &net.nets, &net.exposed).await.map_err(|e| network::rpc_error(&e))?);
        }
        if mapping::needs_image_command(c).unwrap_or(false) {
            let inspect = svc.docker.image_exists(&reference).await.map_err(|e| docker_error(&e))?;
            if let Some(inspect) = inspect {
                mapping::fill_command_from_image(c, &inspect).map_err(|e| RpcError::invalid(e.to_string()))?;
            }
        }
        // zun's `_get_binds`: the container's volume mappings (attached above).
        let binds = volumes::binds(op, c.uuid().unwrap_or_default()).await.map_err(|e| e.to_rpc())?;
        let opts = MappingOptions {
            default_runtime: svc.conf.default_runtime.clone(),
            disk_quota_supported: svc.disk_quota_supported,
            network_mode: match &provisioned {
                Some(p) => p.network.clone(),
                None => svc.conf.default_network.clone(),
            },
            api_version: svc.docker.api_version(),
            binds,
        };
        let mut body = mapping::container_create_config(c, &repo, &tag, &opts).map_err(|e| RpcError::invalid(e.to_string()))?;
        let id = match &provisioned {
            Some(p) => {
                mapping::pin_endpoint(&mut body, &p.network, p.first.ipv4(), p.first.ipv6(), &p.first.port.mac_address);
                svc.docker.create_with_mac(&name, body, &p.first.port.mac_address).await.map_err(|e| docker_error(&e))?
            }
            None => svc.docker.create(&name, body).await.map_err(|e| docker_error(&e))?,
        };
        c.set("container_id", json!(id));
        if let Some(p) = provisioned.as_mut() {
            if let Err(e) = network::connect_rest(op, c, p).await {
                // The container exists on a network it cannot fully have: remove it.
                let _ = svc.docker.remove(&id, true).await;
                c.set("container_id", Value::Null);
                return Err(network::rpc_error(&e));
            }
        }
        let inspect = svc.docker.inspect(&id).await.map_err(|e| docker_error(&e))?;
        populate::populate_from_inspect(c, &inspect, true, chrono::Utc::now());
        op.save(c).await
    }
    .await;
    if let Err(e) = &created {
        if let Some(p) = provisioned.take() {
            network::undo_create(op, c, p).await;
        }
        op.fail(c, &reason(e), true).await;
    }
    created
}

/// `requested_networks`, validated; entries without a network id are ignored (the
/// standalone CLI sends none, zun-api always one).
pub(crate) fn requested_networks(op: &Op) -> Result<Vec<RequestedNetwork>, crate::compute::network::NetworkError> {
    let Some(Value::Array(list)) = op.arg("requested_networks") else { return Ok(vec![]) };
    let wanted: Vec<Value> =
        list.iter().filter(|n| n.get("network").and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty())).cloned().collect();
    RequestedNetwork::parse_list(Some(&Value::Array(wanted)))
}

/// zun's auth_config: `[docker] default_registry_username/password` for the default registry.
fn credentials(op: &Op, repo: &str) -> Option<RegistryCredentials> {
    let registry = op.svc.conf.default_registry.as_deref()?;
    let (user, password) = op.svc.conf.registry_login()?;
    let domain = image_ref::parse_reference(repo).ok().and_then(|r| r.split_hostname().0.map(str::to_string))?;
    (domain == registry).then(|| RegistryCredentials {
        username: user.to_string(),
        password: password.to_string(),
        server: registry.to_string(),
    })
}

/// `container_rebuild(run)`: delete the Docker container, create it again from the
/// (possibly new) image, start it when `run`.
pub async fn container_rebuild(op: Op) -> MethodResult {
    let mut c = op.container_or_finish("rebuild").await?;
    let uuid = c.uuid().unwrap_or_default().to_string();
    let run = op.arg_bool("run");
    op.announce_start(&c, "rebuild");
    op.event_start(&uuid, "compute__do_container_rebuild").await;
    let res = rebuild_flow(&op, &mut c, run).await;
    op.event_finish(&uuid, "compute__do_container_rebuild", &res).await;
    op.finish_action(&c, "rebuild", res.is_err()).await;
    res.map(|_| Value::Null)
}

async fn rebuild_flow(op: &Op, c: &mut Container, run: bool) -> Result<(), RpcError> {
    // Refused before anything is written: the id must be this container's.
    if let Some(id) = c.get_str("container_id").map(str::to_string) {
        op.check_owned(c, &id).await?;
    }
    let guard = op.begin_task(c, TaskState::ContainerRebuilding).await?;
    let res: Result<(), RpcError> = async {
        if let Some(id) = c.get_str("container_id").map(str::to_string) {
            if let Err(e) = op.svc.docker.remove(&id, true).await {
                let e = docker_error(&e);
                op.fail(c, &reason(&e), false).await;
                return Err(e);
            }
        }
        // A fresh create under the same name.
        let _ = op.svc.docker.remove(&crate::docker::container_name(c.uuid().unwrap_or_default()), true).await;
        create_base(op, c, &network::NetworkRequest::default()).await?;
        c.set_status(Status::Created, None);
        op.save(c).await
    }
    .await;
    let ended = op.end_task(c, guard).await;
    res.and(ended)?;
    if run {
        lifecycle::do_start(op, c).await?;
    }
    Ok(())
}
