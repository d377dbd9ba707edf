//! The network operations (zun's kuryr driver as the manager uses it): provisioning at
//! create, cleanup at delete, `network_attach`, `network_detach`, `add_security_group`,
//! `remove_security_group`, `network_create`, `network_delete`.
use super::{docker_error, reason, Op};
use crate::compute::checks;
use crate::compute::network::{Attached, ExposedPort, Kuryr, NetworkError, RequestedNetwork, Undo};
use crate::docker::{DockerError, DockerErrorKind};
use crate::openstack::UserToken;
use crate::oslo::{Container, TaskState};
use crate::rpc::{MethodResult, RpcError};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The RPC error for a network failure: Docker's as zun's `DockerError`, the rest as
/// `ZunException` with a text naming the service and the call.
pub fn rpc_error(e: &NetworkError) -> RpcError {
    match e {
        NetworkError::Docker(d) => docker_error(d),
        NetworkError::Invalid(m) => RpcError::invalid(m.clone()),
        other => RpcError::internal(other.to_string()),
    }
}

/// The user's token from the RPC context (zun's `NeutronAPI(context)` client).
pub fn user_token(op: &Op) -> UserToken {
    UserToken::new(op.ctx.auth_token().unwrap_or_default(), op.ctx.get("auth_token_info"))
}

/// The driver, or the error zun-compute-rs gives when Neutron is not configured.
pub fn kuryr(op: &Op) -> Result<Arc<Kuryr>, RpcError> {
    op.svc.kuryr.clone().ok_or_else(|| {
        RpcError::not_supported(
            "Neutron networks need [network] driver = kuryr and [keystone_auth]: this zun-compute-rs has no Neutron configured",
        )
    })
}

/// What a create asks of Neutron: the requested networks and the ports to expose (only
/// with Neutron networks; on Docker's default network they are only `ExposedPorts`).
#[derive(Debug, Default)]
pub struct NetworkRequest {
    pub nets: Vec<RequestedNetwork>,
    pub exposed: Vec<ExposedPort>,
}

/// What the create needs from the first network (zun processes the last requested one at
/// create time and connects the others after the Docker create).
pub struct Provisioned {
    pub network: String,
    pub first: Attached,
    pub rest: Vec<RequestedNetwork>,
    pub security_groups: Option<Vec<String>>,
    pub undo: Undo,
    /// The security group made for the exposed ports, deleted if the create fails.
    pub exposed_group: Option<String>,
}

/// `_provision_network` + `_process_exposed_ports` + `process_networking_config`: every
/// Docker network exists, the exposed ports' security group is made and added to
/// `security_groups`, the port of the network the container is created on is ready,
/// `addresses` is set (not saved). On error, what was made is undone before returning.
pub async fn provision(
    op: &Op,
    c: &mut Container,
    nets: &[RequestedNetwork],
    exposed: &[ExposedPort],
) -> Result<Provisioned, NetworkError> {
    let k = op.svc.kuryr.clone().ok_or_else(|| NetworkError::Zun("no Neutron configured".into()))?;
    let user = user_token(op);
    let project = op.ctx.project_id().map(str::to_string);
    for rq in nets {
        ensure_network(op, &k, &user, project.as_deref(), &rq.network, false).await?;
    }
    let uuid = c.uuid().unwrap_or_default().to_string();
    let mut exposed_group = None;
    if !exposed.is_empty() {
        let id = k.expose_ports(&user, &uuid, exposed).await?;
        let mut groups = c.security_groups().unwrap_or_default();
        groups.push(id.clone());
        c.set_security_groups(Some(&groups));
        exposed_group = Some(id);
    }
    let ports = async {
        let groups = c.security_groups().unwrap_or_default();
        let sg_ids = k.security_group_ids(&user, project.as_deref().unwrap_or_default(), &groups).await?;
        let mut rest = nets.to_vec();
        let last = rest.pop().ok_or_else(|| NetworkError::Zun("no requested network".into()))?;
        let first = k.create_or_update_port(&uuid, project.as_deref(), &last, sg_ids.as_deref(), true).await?;
        Ok::<_, NetworkError>((sg_ids, rest, last, first))
    }
    .await;
    let (sg_ids, rest, last, first) = match ports {
        Ok(p) => p,
        Err(e) => {
            forget_exposed_group(op, &k, c, exposed_group.as_deref()).await;
            return Err(e);
        }
    };
    let mut undo = Undo::default();
    undo.record(&first);
    let mut addresses = Map::new();
    addresses.insert(last.network.clone(), Value::Array(first.addresses.clone()));
    c.set_json("addresses", Some(&Value::Object(addresses)));
    Ok(Provisioned { network: last.network, first, rest, security_groups: sg_ids, undo, exposed_group })
}

/// A create that made the exposed ports' group failed: the group is deleted and dropped
/// from `security_groups` (zun leaves it to the container's delete, which a create that
/// failed before the claim never gets).
async fn forget_exposed_group(op: &Op, k: &Kuryr, c: &mut Container, group: Option<&str>) {
    let Some(group) = group else { return };
    k.unexpose_ports(&user_token(op), group).await;
    let mut groups = c.security_groups().unwrap_or_default();
    groups.retain(|g| g != group);
    c.set_security_groups(if groups.is_empty() { None } else { Some(&groups) });
}

/// True when the container has `exposed_ports` (a non-empty dict).
pub fn exposes_ports(c: &Container) -> bool {
    c.exposed_ports().is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
}

/// zun's `_cleanup_exposed_ports` at delete: when the container (or a member of the
/// capsule) exposes ports, the security group the create made for them is deleted. zun
/// deletes the first of `security_groups` blindly; here only a group of the list that
/// Neutron names `zun-<uuid>` is. Never fails the delete.
pub async fn cleanup_exposed_ports(op: &Op, c: &Container, exposes: bool) {
    if !exposes {
        return;
    }
    let Some(k) = op.svc.kuryr.clone() else { return };
    let groups = c.security_groups().unwrap_or_default();
    if groups.is_empty() {
        return;
    }
    let user = user_token(op);
    let project = op.ctx.project_id().unwrap_or_default();
    k.unexpose_ports_of(&user, project, c.uuid().unwrap_or_default(), &groups).await;
}

/// `_setup_network_for_container` after the Docker create: connects the other requested
/// networks (port, then Docker connect with its addresses). Updates `addresses`.
pub async fn connect_rest(op: &Op, c: &mut Container, p: &mut Provisioned) -> Result<(), NetworkError> {
    let k = op.svc.kuryr.clone().ok_or_else(|| NetworkError::Zun("no Neutron configured".into()))?;
    let id = c.get_str("container_id").unwrap_or_default().to_string();
    let mut addresses = c.get_json("addresses").and_then(|v| v.as_object().cloned()).unwrap_or_default();
    for rq in std::mem::take(&mut p.rest) {
        if addresses.contains_key(&rq.network) {
            continue;
        }
        let a = connect(op, &k, c, &id, &rq, p.security_groups.as_deref(), &mut p.undo).await?;
        addresses.insert(rq.network.clone(), Value::Array(a.addresses));
        c.set_json("addresses", Some(&Value::Object(addresses.clone())));
    }
    Ok(())
}

/// `connect_container_to_network`: a port (not bound to the host: zun binds only at
/// create), then Docker connect with its IPs; a Docker failure releases the port.
async fn connect(
    op: &Op,
    k: &Kuryr,
    c: &Container,
    docker_id: &str,
    rq: &RequestedNetwork,
    sgs: Option<&[String]>,
    undo: &mut Undo,
) -> Result<Attached, NetworkError> {
    let uuid = c.uuid().unwrap_or_default();
    let a = k.create_or_update_port(uuid, op.ctx.project_id(), rq, sgs, false).await?;
    if let Err(e) = op.svc.docker.network_connect(&rq.network, docker_id, a.ipv4(), a.ipv6()).await {
        let mut own = Undo::default();
        own.record(&a);
        k.undo(own).await;
        return Err(e.into());
    }
    undo.record(&a);
    Ok(a)
}

/// The create failed after ports were made: release them (last first), delete the
/// exposed ports' group and forget the addresses. The caller already records the failure.
pub async fn undo_create(op: &Op, c: &mut Container, p: Provisioned) {
    if let Some(k) = op.svc.kuryr.clone() {
        if !p.undo.is_empty() {
            k.undo(p.undo).await;
        }
        forget_exposed_group(op, &k, c, p.exposed_group.as_deref()).await;
    }
    if c.get_json("addresses").is_some_and(|a| a.as_object().is_some_and(|o| !o.is_empty())) {
        c.set_json("addresses", Some(&json!({})));
    }
}

/// zun's `_cleanup_network_for_container` at delete: for each network in `addresses`,
/// Docker disconnect (a container or endpoint already gone is fine), then the ports
/// deleted (or unbound when `preserve_on_delete`).
pub async fn cleanup_for_delete(op: &Op, c: &Container) -> Result<(), NetworkError> {
    let Some(addresses) = c.get_json("addresses").and_then(|v| v.as_object().cloned()) else { return Ok(()) };
    if addresses.is_empty() {
        return Ok(());
    }
    let Some(k) = op.svc.kuryr.clone() else {
        tracing::warn!(
            container = c.uuid().unwrap_or("-"),
            "the container has Neutron addresses but no Neutron is configured; ports are left"
        );
        return Ok(());
    };
    let id = c.get_str("container_id").map(str::to_string);
    let mut first = None;
    for (net, addrs) in &addresses {
        if let Some(id) = &id {
            if let Err(e) = op.svc.docker.network_disconnect(net, id, true).await {
                if !ignorable_disconnect(&e) {
                    tracing::warn!(network = %net, error = %e, "docker disconnect failed");
                }
            }
        }
        let list = addrs.as_array().cloned().unwrap_or_default();
        if let Err(e) = k.release_ports(&list).await {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// zun's `is_not_found` / `is_not_connected`: nothing to disconnect.
fn ignorable_disconnect(e: &DockerError) -> bool {
    e.is_not_found() || e.message.contains("is not connected to") || matches!(e.kind, DockerErrorKind::Api if e.status == Some(409))
}

/// The shape of zun's attach/detach/security group casts: event, task state, the work,
/// the action finished; errors are recorded and answered.
async fn network_op<F>(op: Op, action: &str, event: &str, task: TaskState, work: F) -> MethodResult
where
    F: for<'a> FnOnce(&'a Op, &'a mut Container) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RpcError>> + Send + 'a>>,
{
    let mut c = op.container()?;
    let uuid = c.uuid().unwrap_or_default().to_string();
    op.announce_start(&c, action);
    op.event_start(&uuid, event).await;
    let res = async {
        let guard = op.begin_task(&mut c, task).await?;
        let r = work(&op, &mut c).await;
        let ended = op.end_task(&mut c, guard).await;
        r.and(ended)
    }
    .await;
    if let Err(e) = &res {
        tracing::warn!(container = %uuid, action, error = %reason(e), "network operation failed");
    }
    op.event_finish(&uuid, event, &res).await;
    op.finish_action(&c, action, res.is_err()).await;
    res.map(|_| Value::Null)
}

/// `network_attach(container, requested_network)`.
pub async fn network_attach(op: Op) -> MethodResult {
    let k = kuryr(&op)?;
    let rq = RequestedNetwork::parse(op.arg("requested_network").unwrap_or(&Value::Null)).map_err(|e| rpc_error(&e))?;
    network_op(op, "network_attach", "compute__do_network_attach", TaskState::NetworkAttaching, move |op, c| {
        Box::pin(async move {
            let mut addresses = c.get_json("addresses").and_then(|v| v.as_object().cloned()).unwrap_or_default();
            if addresses.contains_key(&rq.network) {
                return Err(RpcError::internal(format!(
                    "Container {} has already connected to the network {}.",
                    c.uuid().unwrap_or_default(),
                    rq.network
                )));
            }
            let id = op.docker_id(c).await?;
            let user = user_token(op);
            let project = op.ctx.project_id().unwrap_or_default().to_string();
            let groups = c.security_groups().unwrap_or_default();
            let sgs = k.security_group_ids(&user, &project, &groups).await.map_err(|e| rpc_error(&e))?;
            ensure_network(op, &k, &user, Some(&project), &rq.network, false).await.map_err(|e| rpc_error(&e))?;
            let mut undo = Undo::default();
            let a = connect(op, &k, c, &id, &rq, sgs.as_deref(), &mut undo).await.map_err(|e| rpc_error(&e))?;
            addresses.insert(rq.network.clone(), Value::Array(a.addresses));
            c.set_json("addresses", Some(&Value::Object(addresses)));
            if let Err(e) = op.save(c).await {
                k.undo(undo).await;
                return Err(e);
            }
            Ok(())
        })
    })
    .await
}

/// `network_detach(container, network)`: Docker disconnect, ports released, the
/// network's entry dropped from `addresses`.
pub async fn network_detach(op: Op) -> MethodResult {
    let k = kuryr(&op)?;
    let net = op.arg_str("network").unwrap_or_default();
    if !crate::openstack::neutron::check_id(&net) {
        return Err(RpcError::invalid("invalid Neutron network id"));
    }
    network_op(op, "network_detach", "compute__do_network_detach", TaskState::NetworkDetaching, move |op, c| {
        Box::pin(async move {
            let mut addresses = c.get_json("addresses").and_then(|v| v.as_object().cloned()).unwrap_or_default();
            let addrs = addresses.get(&net).and_then(Value::as_array).cloned().unwrap_or_default();
            if c.get_str("container_id").is_some() {
                let id = op.docker_id(c).await?;
                if let Err(e) = op.svc.docker.network_disconnect(&net, &id, false).await {
                    if !ignorable_disconnect(&e) {
                        // zun's `finally`: the ports are released even when Docker refused.
                        let _ = k.release_ports(&addrs).await;
                        return Err(docker_error(&e));
                    }
                }
            }
            k.release_ports(&addrs).await.map_err(|e| rpc_error(&e))?;
            addresses.remove(&net);
            c.set_json("addresses", Some(&Value::Object(addresses)));
            op.save(c).await
        })
    })
    .await
}

/// `add_security_group` / `remove_security_group(container, security_group)`: the group
/// (a name or id, resolved as the user) put on or taken off every port of the container,
/// then `security_groups` updated as zun does.
pub async fn security_group(op: Op, add: bool) -> MethodResult {
    let k = kuryr(&op)?;
    let group = op.arg_str("security_group").unwrap_or_default();
    if group.is_empty() || group.len() > 255 || group.chars().any(char::is_control) {
        return Err(RpcError::invalid("invalid security group"));
    }
    let (action, event, task) = if add {
        ("add_security_group", "compute__add_security_group", TaskState::SgAdding)
    } else {
        ("remove_security_group", "compute__remove_security_group", TaskState::SgRemoving)
    };
    network_op(op, action, event, task, move |op, c| {
        Box::pin(async move {
            let user = user_token(op);
            let project = op.ctx.project_id().unwrap_or_default().to_string();
            let ids = k.security_group_ids(&user, &project, std::slice::from_ref(&group)).await.map_err(|e| rpc_error(&e))?;
            let id = ids.and_then(|v| v.into_iter().next()).unwrap_or_default();
            let addresses = c.get_json("addresses").and_then(|v| v.as_object().cloned()).unwrap_or_default();
            k.update_port_security_groups(&user, &project, &addresses, &id, add).await.map_err(|e| rpc_error(&e))?;
            let mut groups = c.security_groups().unwrap_or_default();
            if add {
                groups.push(group.clone());
            } else {
                groups.retain(|g| g != &group);
                groups.dedup();
            }
            c.set_security_groups(Some(&groups));
            op.save(c).await
        })
    })
    .await
}

/// The Docker network of Neutron network `net` on this host, made when missing; a network
/// made here gets its `network` row (zun's `ZunNetwork`), and `always_record` records it
/// even when it existed already (`network_create`).
async fn ensure_network(
    op: &Op,
    k: &Kuryr,
    user: &UserToken,
    project: Option<&str>,
    net: &str,
    always_record: bool,
) -> Result<Option<crate::store::NetworkRow>, NetworkError> {
    let (docker_id, created) = k.ensure_network(&op.svc.docker, user, project, net).await?;
    if !created && !always_record {
        return Ok(None);
    }
    match op.svc.store.network_record(net, &op.svc.host, &docker_id, project, op.ctx.user_id()).await {
        Ok(row) => Ok(Some(row)),
        Err(e) if always_record => Err(NetworkError::Zun(format!("Cannot record the network: {e}"))),
        Err(e) => {
            // The row is zun's bookkeeping; the network itself is there and works.
            tracing::warn!(network = net, error = %e, "could not record the network row");
            Ok(None)
        }
    }
}

/// A `network` row as the `ZunNetwork` 1.2 object zun-api reads back.
fn network_primitive(row: &crate::store::NetworkRow) -> Value {
    let mut data = Map::new();
    data.insert("id".into(), json!(row.id));
    for (k, v) in [
        ("uuid", &row.uuid),
        ("project_id", &row.project_id),
        ("user_id", &row.user_id),
        ("name", &row.name),
        ("network_id", &row.network_id),
        ("neutron_net_id", &row.neutron_net_id),
        ("host", &row.host),
    ] {
        data.insert(k.into(), json!(v));
    }
    crate::oslo::ObjectPrimitive { name: "ZunNetwork".into(), namespace: "zun".into(), version: "1.2".into(), data, changes: Vec::new() }
        .into_value()
}

/// `network_create(neutron_net_id)` (a call to any host, zun-api's `POST /v1/networks`):
/// the Docker network of the Neutron network on this host, made when missing, and its
/// `network` row, returned as zun's `ZunNetwork`.
pub async fn network_create(op: Op) -> MethodResult {
    let k = kuryr(&op)?;
    let net = op.arg("neutron_net_id").and_then(Value::as_str).unwrap_or_default().to_string();
    let user = user_token(&op);
    let project = op.ctx.project_id().map(str::to_string);
    let row = ensure_network(&op, &k, &user, project.as_deref(), &net, true).await.map_err(|e| rpc_error(&e))?;
    let row = row.ok_or_else(|| RpcError::internal("the network row was not recorded"))?;
    tracing::info!(network = %net, docker_network = row.network_id.as_deref().unwrap_or("-"), "network created");
    Ok(network_primitive(&row))
}

/// `network_delete(network)` (zun-api's `DELETE /v1/networks/<id>`): the Docker network
/// named after the Neutron network removed from this host (only one made with the kuryr
/// driver: any other Docker network is refused), then the object's `network` row.
pub async fn network_delete(op: Op) -> MethodResult {
    let k = kuryr(&op)?;
    let v = op.arg("network").ok_or_else(|| RpcError::builtin("TypeError", "missing required argument: 'network'"))?;
    let p = crate::oslo::ObjectPrimitive::from_value(v).map_err(RpcError::Object)?;
    if p.name != "ZunNetwork" {
        return Err(RpcError::invalid(format!("network_delete needs a ZunNetwork, not {}", checks::shown(&p.name))));
    }
    let name = p.data.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if !crate::openstack::neutron::check_id(&name) {
        return Err(RpcError::invalid(format!("invalid network name {}", checks::shown(&name))));
    }
    let uuid = p.data.get("uuid").and_then(Value::as_str).filter(|u| crate::host::mounts::is_uuid(u)).map(str::to_string);
    let docker = &op.svc.docker;
    if let Some(n) = docker.networks_named(&name).await.map_err(|e| docker_error(&e))?.into_iter().find(|n| n.name == name) {
        if n.driver != k.driver_name() {
            return Err(RpcError::invalid(format!("Docker network {name} is not a {} network: not removing it", k.driver_name())));
        }
        docker.network_remove(&n.id).await.map_err(|e| docker_error(&e))?;
        tracing::info!(network = %name, docker_network = %n.id, "Docker network removed");
    }
    if let Some(uuid) = uuid {
        op.svc.store.network_destroy_by_uuid(&uuid).await.map_err(|e| RpcError::internal(e.to_string()))?;
    }
    Ok(Value::Null)
}

/// The error a create gets when Neutron is needed and not configured.
pub fn not_configured_reason() -> &'static str {
    "Neutron networks need [network] driver = kuryr and [keystone_auth]: this zun-compute-rs has no Neutron configured"
}
