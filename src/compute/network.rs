//! The kuryr flow (zun's `KuryrNetwork` with `[network] driver = kuryr`): for each
//! requested Neutron network, the Docker network named by the Neutron network id (driver
//! and IPAM `[network] driver_name`) is created once and reused; a Neutron port is created
//! (or the requested port taken) with `device_owner` `compute:kuryr`, `device_id` = the
//! container uuid and `binding:host_id` = this host; the container gets the port's IPs and
//! MAC; `addresses` is written as zun writes it.
//!
//! Tokens: zun's `NeutronAPI` lists networks, subnets, ports and security groups as the
//! user (the RPC context's token) and creates, updates and deletes ports as the service
//! (`admin=True`: `binding:host_id` needs it). Wire values (network ids, port ids, IPs)
//! are validated here before they reach a URL or Docker.
use crate::docker::{DockerClient, DockerError, IpamPool, NetworkSpec};
use crate::openstack::neutron::{check_id, Neutron, Port};
use crate::openstack::{Auth, OpenStackError, UserToken};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// zun's `DEVICE_OWNER` for kuryr ports.
pub const DEVICE_OWNER: &str = "compute:kuryr";

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Neutron (or Keystone, for the service token) refused or could not be reached.
    #[error("{0}")]
    OpenStack(#[from] OpenStackError),
    #[error("{0}")]
    Docker(#[from] DockerError),
    /// A wire value that fails validation.
    #[error("{0}")]
    Invalid(String),
    /// zun's `ZunException` texts (no subnet, several subnets, already connected...).
    #[error("{0}")]
    Zun(String),
}

/// One entry of `requested_networks` as zun-api sends it, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedNetwork {
    pub network: String,
    pub port: Option<String>,
    pub fixed_ip: Option<IpAddr>,
    pub preserve_on_delete: bool,
}

impl RequestedNetwork {
    /// Parses one dict; ids must be Neutron ids, `fixed_ip` an IP address.
    pub fn parse(v: &Value) -> Result<RequestedNetwork, NetworkError> {
        let o = v.as_object().ok_or_else(|| NetworkError::Invalid("a requested network is not a dict".into()))?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let network = s("network").ok_or_else(|| NetworkError::Invalid("a requested network has no network id".into()))?;
        if !check_id(network) {
            return Err(NetworkError::Invalid(format!("invalid Neutron network id {:?}", truncate(network))));
        }
        let port = match s("port") {
            Some(p) if check_id(p) => Some(p.to_string()),
            Some(p) => return Err(NetworkError::Invalid(format!("invalid Neutron port id {:?}", truncate(p)))),
            None => None,
        };
        let fixed_ip = match s("fixed_ip").or_else(|| s("v4-fixed-ip")).or_else(|| s("v6-fixed-ip")) {
            Some(ip) => Some(ip.parse().map_err(|_| NetworkError::Invalid(format!("invalid fixed IP {:?}", truncate(ip))))?),
            None => None,
        };
        let preserve_on_delete = match o.get("preserve_on_delete") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        Ok(RequestedNetwork { network: network.to_string(), port, fixed_ip, preserve_on_delete })
    }

    /// The whole `requested_networks` argument (absent or null: none).
    pub fn parse_list(v: Option<&Value>) -> Result<Vec<RequestedNetwork>, NetworkError> {
        match v {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a.iter().map(Self::parse).collect(),
            Some(_) => Err(NetworkError::Invalid("requested_networks is not a list".into())),
        }
    }
}

/// One of a container's `exposed_ports` (`{"80/tcp": {}}`), validated as zun-api's
/// `build_exposed_ports` does (a missing protocol is tcp; tcp or udp) and, since it reaches
/// Neutron and Docker, as a port number 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExposedPort {
    pub port: u16,
    pub udp: bool,
}

impl ExposedPort {
    pub fn protocol(&self) -> &'static str {
        if self.udp {
            "udp"
        } else {
            "tcp"
        }
    }

    /// One key of `exposed_ports`.
    pub fn parse(key: &str) -> Result<ExposedPort, NetworkError> {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let udp = match proto {
            "tcp" => false,
            "udp" => true,
            _ => return Err(NetworkError::Invalid(format!("value {:?} is an invalid protocol", truncate(proto)))),
        };
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(ExposedPort { port, udp }),
            _ => Err(NetworkError::Invalid(format!("value {:?} is invalid as publish port.", truncate(port)))),
        }
    }

    /// Every key of an `exposed_ports` dict (absent, null or empty: none), sorted, each once.
    pub fn parse_all(v: Option<&Value>) -> Result<Vec<ExposedPort>, NetworkError> {
        let mut out = match v {
            None | Some(Value::Null) => vec![],
            Some(Value::Object(m)) => m.keys().map(|k| Self::parse(k)).collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(NetworkError::Invalid("exposed_ports is not a dict".into())),
        };
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// One address entry of `container.addresses[net]`, in zun's key order.
pub fn address_entry(ip: &str, version: u8, port: &str, subnet_id: &str, preserve: bool) -> Value {
    json!({"addr": ip, "version": version, "port": port, "subnet_id": subnet_id, "preserve_on_delete": preserve})
}

/// zun's `create_or_update_port` result: the address list and the port.
#[derive(Debug, Clone)]
pub struct Attached {
    pub addresses: Vec<Value>,
    pub port: Port,
    /// True when this call created the port (undo deletes it) rather than took it.
    pub created: bool,
}

impl Attached {
    pub fn ipv4(&self) -> Option<&str> {
        self.addresses.iter().find(|a| a["version"] == 4).and_then(|a| a["addr"].as_str())
    }
    pub fn ipv6(&self) -> Option<&str> {
        self.addresses.iter().find(|a| a["version"] == 6).and_then(|a| a["addr"].as_str())
    }
}

/// What the flow made, undone in reverse order in one place ([`Kuryr::undo`]).
#[derive(Debug, Default)]
pub struct Undo {
    steps: Vec<UndoStep>,
}

#[derive(Debug)]
enum UndoStep {
    /// A port this flow created: delete it.
    DeletePort(String),
    /// A requested port this flow bound: unbind it (it belongs to the user).
    UnbindPort(String),
}

impl Undo {
    pub fn record(&mut self, a: &Attached) {
        self.steps.push(if a.created { UndoStep::DeletePort(a.port.id.clone()) } else { UndoStep::UnbindPort(a.port.id.clone()) });
    }
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// The network driver: Neutron plus Docker, for one compute host.
pub struct Kuryr {
    pub neutron: Neutron,
    /// `[network] driver_name`: the Docker network and IPAM driver.
    pub driver_name: String,
    pub host: String,
    /// One lock per Neutron network: concurrent creates on a new network make one Docker network.
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Kuryr {
    pub fn new(neutron: Neutron, driver_name: &str, host: &str) -> Self {
        Kuryr { neutron, driver_name: driver_name.to_string(), host: host.to_string(), locks: Default::default() }
    }

    fn lock_for(&self, net: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(net.to_string()).or_default().clone()
    }

    /// `get_or_create_network`: the Docker network named `net` (the Neutron id), created
    /// when missing. Returns the Docker network id, and whether this call created it.
    pub async fn ensure_network(
        &self,
        docker: &DockerClient,
        user: &UserToken,
        project_id: Option<&str>,
        net: &str,
    ) -> Result<(String, bool), NetworkError> {
        if !check_id(net) {
            return Err(NetworkError::Invalid(format!("invalid Neutron network id {:?}", truncate(net))));
        }
        let lock = self.lock_for(net);
        let _held = lock.lock().await;
        if let Some(n) = docker.networks_named(net).await?.into_iter().next() {
            return Ok((n.id, false));
        }
        let spec = self.network_spec(user, net).await?;
        tracing::info!(network = net, project = project_id.unwrap_or("-"), driver = %self.driver_name, "creating the Docker network for a Neutron network");
        match docker.network_create(&spec).await {
            Ok(id) => Ok((id, true)),
            // Another process (or a zun-compute) made it meanwhile: use it.
            Err(e) if e.status == Some(409) => match docker.networks_named(net).await?.into_iter().next() {
                Some(n) => Ok((n.id, false)),
                None => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// The driver Docker networks of Neutron networks are made with (`[network] driver_name`).
    pub fn driver_name(&self) -> &str {
        &self.driver_name
    }

    /// zun's `create_network` arguments: the network's `shared`, its v4 and/or v6 subnet.
    pub async fn network_spec(&self, user: &UserToken, net: &str) -> Result<NetworkSpec, NetworkError> {
        let network = self
            .neutron
            .network_get(Auth::User(user), net)
            .await?
            .ok_or_else(|| NetworkError::Zun(format!("Neutron network {net} could not be found.")))?;
        let shared = if network.get("shared").and_then(Value::as_bool).unwrap_or(false) { "True" } else { "False" };
        let subnets = self.neutron.subnets_of(Auth::User(user), net).await?;
        let pick = |version: i64| -> Result<Option<&Value>, NetworkError> {
            let v: Vec<&Value> = subnets.iter().filter(|s| s.get("ip_version").and_then(Value::as_i64) == Some(version)).collect();
            match v.len() {
                0 => Ok(None),
                1 => Ok(Some(v[0])),
                _ => Err(NetworkError::Zun(format!("Multiple Neutron subnets exist with ip version {version}"))),
            }
        };
        let (v4, v6) = (pick(4)?, pick(6)?);
        if v4.is_none() && v6.is_none() {
            return Err(NetworkError::Zun(format!("The Neutron network {net} has no subnet")));
        }
        let mut spec = NetworkSpec {
            name: net.to_string(),
            driver: self.driver_name.clone(),
            ipam_driver: self.driver_name.clone(),
            enable_ipv6: v6.is_some(),
            ..Default::default()
        };
        spec.options.insert("neutron.net.uuid".into(), net.to_string());
        spec.options.insert("neutron.net.shared".into(), shared.into());
        spec.ipam_options.insert("neutron.net.shared".into(), shared.into());
        for (subnet, key) in [(v4, "neutron.subnet.uuid"), (v6, "neutron.subnet.v6.uuid")] {
            let Some(s) = subnet else { continue };
            let id = s.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            let cidr = s.get("cidr").and_then(Value::as_str).unwrap_or_default();
            cidr.split('/')
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .ok_or_else(|| NetworkError::Zun(format!("subnet {id} has no valid cidr")))?;
            let gateway = s.get("gateway_ip").and_then(Value::as_str).filter(|g| g.parse::<IpAddr>().is_ok()).map(str::to_string);
            spec.ipam_options.insert(key.into(), id.clone());
            spec.options.insert(key.into(), id);
            spec.ipam_config.push(IpamPool { subnet: cidr.to_string(), gateway });
        }
        Ok(spec)
    }

    /// zun's security group names/ids → ids (`get_security_group_ids`), as the user.
    pub async fn security_group_ids(
        &self,
        user: &UserToken,
        project_id: &str,
        groups: &[String],
    ) -> Result<Option<Vec<String>>, NetworkError> {
        if groups.is_empty() {
            return Ok(None);
        }
        let all = self.neutron.security_groups(Auth::User(user), project_id).await?;
        let ids: Vec<String> = all
            .iter()
            .filter(|g| {
                let name = g.get("name").and_then(Value::as_str).unwrap_or_default();
                let id = g.get("id").and_then(Value::as_str).unwrap_or_default();
                groups.iter().any(|x| x == name || x == id)
            })
            .filter_map(|g| g.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        if ids.len() >= groups.len() {
            Ok(Some(ids))
        } else {
            Err(NetworkError::Zun(format!("Any of the security group in {groups:?} is not found ")))
        }
    }

    /// zun's `create_or_update_port` (admin): a new port on `rq.network`, or the requested
    /// port bound to this container. `bind` sets `device_owner` and `binding:host_id`
    /// (zun does at create, not at attach).
    pub async fn create_or_update_port(
        &self,
        uuid: &str,
        project_id: Option<&str>,
        rq: &RequestedNetwork,
        security_groups: Option<&[String]>,
        bind: bool,
    ) -> Result<Attached, NetworkError> {
        let (port, created) = if let Some(port_id) = &rq.port {
            let mut body = json!({"device_id": uuid});
            if bind {
                body["device_owner"] = json!(DEVICE_OWNER);
                body["binding:host_id"] = json!(self.host);
            }
            (self.neutron.port_update(Auth::Service, port_id, body).await?, false)
        } else {
            let mut body = Map::new();
            body.insert("network_id".into(), json!(rq.network));
            if let Some(p) = project_id {
                body.insert("tenant_id".into(), json!(p));
            }
            body.insert("device_id".into(), json!(uuid));
            if bind {
                body.insert("device_owner".into(), json!(DEVICE_OWNER));
                body.insert("binding:host_id".into(), json!(self.host));
            }
            if let Some(ip) = rq.fixed_ip {
                body.insert("fixed_ips".into(), json!([{"ip_address": ip.to_string()}]));
            }
            if let Some(sg) = security_groups {
                body.insert("security_groups".into(), json!(sg));
            }
            (self.neutron.port_create(Auth::Service, Value::Object(body)).await?, true)
        };
        let mut addresses = Vec::new();
        for f in &port.fixed_ips {
            let ip: IpAddr = match f.ip_address.parse() {
                Ok(ip) => ip,
                Err(_) => {
                    let attached = Attached { addresses: vec![], port: port.clone(), created };
                    let mut undo = Undo::default();
                    undo.record(&attached);
                    self.undo(undo).await;
                    return Err(NetworkError::Invalid(format!("Neutron gave port {} an invalid IP", port.id)));
                }
            };
            let version = if ip.is_ipv4() { 4 } else { 6 };
            addresses.push(address_entry(&f.ip_address, version, &port.id, &f.subnet_id, rq.preserve_on_delete));
        }
        if port.mac_address.parse::<MacCheck>().is_err() {
            let attached = Attached { addresses: vec![], port: port.clone(), created };
            let mut undo = Undo::default();
            undo.record(&attached);
            self.undo(undo).await;
            return Err(NetworkError::Invalid(format!("Neutron gave port {} an invalid MAC address", port.id)));
        }
        tracing::info!(container = uuid, port = %port.id, network = %rq.network, created, "neutron port ready");
        Ok(Attached { addresses, port, created })
    }

    /// Undoes what a failed flow made, last first. Errors are logged, never raised: the
    /// caller is already failing with the first error.
    pub async fn undo(&self, undo: Undo) {
        for step in undo.steps.into_iter().rev() {
            let r = match &step {
                UndoStep::DeletePort(id) => self.delete_port(id).await,
                UndoStep::UnbindPort(id) => self.unbind_port(id).await,
            };
            match r {
                Ok(()) => tracing::info!(step = ?step, "undone"),
                Err(e) => tracing::warn!(step = ?step, error = %e, "could not undo"),
            }
        }
    }

    /// Deletes a port (admin); a port already gone is fine.
    pub async fn delete_port(&self, id: &str) -> Result<(), NetworkError> {
        match self.neutron.port_delete(Auth::Service, id).await {
            Err(e) if e.status() == Some(404) => Ok(()),
            r => r.map_err(Into::into),
        }
    }

    /// zun's `_unbind_port`: clear `device_id`, `device_owner`, `binding:host_id` and the
    /// PCI keys of `binding:profile`; a port already gone is fine.
    pub async fn unbind_port(&self, id: &str) -> Result<(), NetworkError> {
        let mut profile = match self.neutron.port_show(Auth::Service, id).await {
            Ok(p) => p.raw.get("binding:profile").cloned().filter(Value::is_object).unwrap_or(json!({})),
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(_) => json!({}),
        };
        if let Some(o) = profile.as_object_mut() {
            o.remove("pci_vendor_info");
            o.remove("pci_slot");
        }
        let body = json!({"device_id": "", "device_owner": "", "binding:host_id": null, "binding:profile": profile});
        match self.neutron.port_update(Auth::Service, id, body).await {
            Err(e) if e.status() == Some(404) => Ok(()),
            r => r.map(|_| ()).map_err(Into::into),
        }
    }

    /// `delete_or_unbind_ports` for the addresses of one network: ports not preserved are
    /// deleted, preserved ones unbound. Returns the first error after trying them all.
    pub async fn release_ports(&self, addrs: &[Value]) -> Result<(), NetworkError> {
        let mut seen: Vec<(String, bool)> = Vec::new();
        for a in addrs {
            let Some(port) = a.get("port").and_then(Value::as_str).filter(|p| check_id(p)) else { continue };
            let preserve = a.get("preserve_on_delete").and_then(Value::as_bool).unwrap_or(false);
            if !seen.iter().any(|(p, _)| p == port) {
                seen.push((port.to_string(), preserve));
            }
        }
        let mut first = None;
        for (port, preserve) in seen {
            let r = if preserve { self.unbind_port(&port).await } else { self.delete_port(&port).await };
            if let Err(e) = r {
                tracing::warn!(port = %port, error = %e, "could not release the port");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// zun's `_process_exposed_ports` (Neutron half): a security group named
    /// `zun-<container uuid>` with one ingress rule per exposed port from anywhere, made as
    /// the user. A rule Neutron refuses deletes the group and fails with zun's text. The
    /// group's id.
    pub async fn expose_ports(&self, user: &UserToken, container_uuid: &str, ports: &[ExposedPort]) -> Result<String, NetworkError> {
        let name = crate::docker::container_name(container_uuid);
        let group = self.neutron.security_group_create(Auth::User(user), &name).await?;
        let id = group
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| check_id(id))
            .map(str::to_string)
            .ok_or_else(|| NetworkError::Zun(format!("Neutron answered the creation of security group {name} without a valid id")))?;
        for p in ports {
            let rule = json!({
                "security_group_id": id,
                "direction": "ingress",
                "port_range_min": p.port,
                "port_range_max": p.port,
                "protocol": p.protocol(),
                "remote_ip_prefix": "0.0.0.0/0",
            });
            if let Err(e) = self.neutron.security_group_rule_create(Auth::User(user), rule.clone()).await {
                tracing::warn!(security_group = %id, port = p.port, protocol = p.protocol(), error = %e, "Neutron refused a security group rule");
                if let Err(d) = self.neutron.security_group_delete(Auth::User(user), &id).await {
                    tracing::warn!(security_group = %id, error = %d, "could not delete the security group");
                }
                return Err(NetworkError::Zun(format!(
                    "Could not create required security group rules {rule} for setting up exported port."
                )));
            }
        }
        tracing::info!(container = container_uuid, security_group = %id, ports = ports.len(), "exposed ports opened");
        Ok(id)
    }

    /// zun's `_cleanup_exposed_ports`: the group made for the exposed ports deleted, as the
    /// user. Errors are logged, as zun does, and never fail the delete.
    pub async fn unexpose_ports(&self, user: &UserToken, group_id: &str) {
        match self.neutron.security_group_delete(Auth::User(user), group_id).await {
            Ok(()) => tracing::info!(security_group = group_id, "exposed ports' security group deleted"),
            Err(e) if e.status() == Some(404) => {}
            Err(e) => tracing::warn!(security_group = group_id, error = %e, "Failed to delete security group"),
        }
    }

    /// At delete: among the container's `security_groups`, the one named
    /// `zun-<container uuid>` (the exposed ports' group) is deleted.
    pub async fn unexpose_ports_of(&self, user: &UserToken, project_id: &str, container_uuid: &str, groups: &[String]) {
        let name = crate::docker::container_name(container_uuid);
        let all = match self.neutron.security_groups(Auth::User(user), project_id).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(container = container_uuid, error = %e, "Failed to delete security group: cannot list them");
                return;
            }
        };
        for g in all {
            let id = g.get("id").and_then(Value::as_str).unwrap_or_default();
            if g.get("name").and_then(Value::as_str) == Some(name.as_str()) && groups.iter().any(|x| x == id) && check_id(id) {
                self.unexpose_ports(user, id).await;
            }
        }
    }

    /// Adds (or removes) a security group id on every port of the container (admin
    /// update), as zun's `add_security_groups_to_ports` / `remove_...`.
    pub async fn update_port_security_groups(
        &self,
        user: &UserToken,
        project_id: &str,
        addresses: &Map<String, Value>,
        group_id: &str,
        add: bool,
    ) -> Result<(), NetworkError> {
        let ids: Vec<&str> =
            addresses.values().filter_map(Value::as_array).flatten().filter_map(|a| a.get("port").and_then(Value::as_str)).collect();
        let ports = self.neutron.ports(Auth::User(user), &[("tenant_id", project_id)]).await?;
        for p in ports.into_iter().filter(|p| ids.contains(&p.id.as_str())) {
            let mut groups = p.security_groups.clone();
            if add {
                groups.push(group_id.to_string());
            } else if let Some(i) = groups.iter().position(|g| g == group_id) {
                groups.remove(i);
            }
            if let Err(e) = self.neutron.port_update(Auth::Service, &p.id, json!({"security_groups": groups})).await {
                if e.status() == Some(400) {
                    let what = if add { "SecurityGroupCannotBeApplied" } else { "SecurityGroupCannotBeRemoved" };
                    return Err(NetworkError::Zun(format!("{what}: {e}")));
                }
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// A MAC address `xx:xx:xx:xx:xx:xx` (what Docker accepts as `MacAddress`).
struct MacCheck;

impl std::str::FromStr for MacCheck {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())) {
            Ok(MacCheck)
        } else {
            Err(())
        }
    }
}

/// True when `s` is a MAC address Docker accepts.
pub fn valid_mac(s: &str) -> bool {
    s.parse::<MacCheck>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_ports_parse_as_zun_api_builds_them() {
        let all = ExposedPort::parse_all(Some(&json!({"80/tcp": {}, "53/udp": {}, "8080": {}, "80": {}}))).unwrap();
        assert_eq!(
            all,
            [ExposedPort { port: 53, udp: true }, ExposedPort { port: 80, udp: false }, ExposedPort { port: 8080, udp: false }]
        );
        assert!(ExposedPort::parse_all(None).unwrap().is_empty());
        assert!(ExposedPort::parse_all(Some(&Value::Null)).unwrap().is_empty());
        for bad in ["0/tcp", "65536", "80/sctp", "-1", "80/tcp/x", "", "/tcp", "1e3", "eighty"] {
            assert!(ExposedPort::parse(bad).is_err(), "{bad}");
        }
        assert!(ExposedPort::parse_all(Some(&json!(["80/tcp"]))).is_err());
        assert_eq!(ExposedPort::parse("65535/udp").unwrap().protocol(), "udp");
    }

    #[test]
    fn requested_networks_are_validated() {
        let ok = RequestedNetwork::parse(&json!({"network": "5f0c6b1e-4a8b-4bbd-9d61-0e3c3f1f7c2a", "port": "",
            "router:external": false, "shared": false, "fixed_ip": "", "preserve_on_delete": false}))
        .unwrap();
        assert_eq!(ok.port, None);
        assert_eq!(ok.fixed_ip, None);
        let p =
            RequestedNetwork::parse(&json!({"network": "n1", "port": "p1", "fixed_ip": "10.0.0.9", "preserve_on_delete": true})).unwrap();
        assert_eq!(p.port.as_deref(), Some("p1"));
        assert_eq!(p.fixed_ip, Some("10.0.0.9".parse().unwrap()));
        assert!(p.preserve_on_delete);
        for bad in [
            json!({"network": "../../x"}),
            json!({"network": "n", "port": "a/b"}),
            json!({"network": "n", "fixed_ip": "10.0.0.300"}),
            json!({"port": "p"}),
            json!("n"),
        ] {
            assert!(RequestedNetwork::parse(&bad).is_err(), "{bad}");
        }
        assert!(RequestedNetwork::parse_list(Some(&json!({}))).is_err());
        assert_eq!(RequestedNetwork::parse_list(None).unwrap(), vec![]);
    }

    #[test]
    fn addresses_keep_zuns_key_order() {
        let a = address_entry("10.0.0.5", 4, "p", "s", false);
        let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["addr", "version", "port", "subnet_id", "preserve_on_delete"]);
    }

    #[test]
    fn macs_are_checked() {
        assert!(valid_mac("fa:16:3e:00:aB:01"));
        assert!(!valid_mac("fa:16:3e:00:ab"));
        assert!(!valid_mac("fa:16:3e:00:ab:0g"));
    }
}
