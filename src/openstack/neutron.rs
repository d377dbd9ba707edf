//! Neutron's networking API v2.0, the calls zun's `NeutronAPI` and kuryr driver make:
//! networks, subnets, ports (create/update/show/list/delete, fixed IPs,
//! `binding:host_id`, `device_owner`, `device_id`) and security groups.
//!
//! Each call says whose token it carries ([`Auth::User`]: the RPC context's, for what
//! zun does as the user; [`Auth::Service`]: `[keystone_auth]`'s, for zun's `admin=True`
//! calls). Ids that reach a URL are checked ([`check_id`]) and escaped.
use super::error::{OpenStackError, Service};
use super::session::{path_segment, Auth, Request, ServiceClient};
use serde_json::{json, Value};

/// A Neutron id (network, subnet, port, security group) as it may appear in a URL:
/// 1 to 64 characters of `[0-9A-Za-z-_]`. UUIDs pass.
pub fn check_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fixed IP of a port.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedIp {
    pub ip_address: String,
    pub subnet_id: String,
}

/// A port, with the fields the domain reads; `raw` keeps Neutron's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub id: String,
    pub network_id: String,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIp>,
    pub security_groups: Vec<String>,
    pub raw: Value,
}

impl Port {
    fn from_json(v: &Value, call: &str) -> Result<Port, OpenStackError> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let id = s("id").filter(|i| check_id(i)).ok_or_else(|| decode(call, "the port has no valid id"))?;
        let fixed_ips = v
            .get("fixed_ips")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| {
                        Some(FixedIp {
                            ip_address: f.get("ip_address")?.as_str()?.to_string(),
                            subnet_id: f.get("subnet_id").and_then(Value::as_str).unwrap_or_default().to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let security_groups = v
            .get("security_groups")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        Ok(Port {
            id,
            network_id: s("network_id").unwrap_or_default(),
            mac_address: s("mac_address").unwrap_or_default(),
            fixed_ips,
            security_groups,
            raw: v.clone(),
        })
    }
}

fn decode(call: &str, detail: &str) -> OpenStackError {
    OpenStackError::Decode { service: Service::Neutron, call: call.to_string(), detail: detail.to_string() }
}

fn invalid_id(kind: &str) -> OpenStackError {
    OpenStackError::Config(format!("invalid Neutron {kind} id"))
}

/// Neutron through a [`ServiceClient`] (catalog type `network`, `[neutron_client]`).
#[derive(Debug, Clone)]
pub struct Neutron {
    client: ServiceClient,
}

impl Neutron {
    pub fn new(client: ServiceClient) -> Self {
        Neutron { client }
    }

    pub fn client(&self) -> &ServiceClient {
        &self.client
    }

    async fn json(&self, auth: Auth<'_>, req: Request) -> Result<(Value, String), OpenStackError> {
        let call = req.call();
        let resp = self.client.call(auth, &req).await?;
        if resp.body.is_empty() {
            return Ok((Value::Null, call));
        }
        Ok((resp.json()?, call))
    }

    fn id_path(kind: &str, plural: &str, id: &str) -> Result<String, OpenStackError> {
        if !check_id(id) {
            return Err(invalid_id(kind));
        }
        Ok(format!("/v2.0/{plural}/{}", path_segment(id)))
    }

    // ---------------------------------------------------------------- networks

    /// `GET /networks?id=` (zun's `get_neutron_network` by uuid): the network, or `None`.
    pub async fn network_get(&self, auth: Auth<'_>, id: &str) -> Result<Option<Value>, OpenStackError> {
        if !check_id(id) {
            return Err(invalid_id("network"));
        }
        let (v, _) = self.json(auth, Request::get("/v2.0/networks").query("id", id)).await?;
        Ok(v.get("networks").and_then(Value::as_array).and_then(|a| a.first()).cloned())
    }

    /// `POST /networks` with `{"network": body}`.
    pub async fn network_create(&self, auth: Auth<'_>, body: Value) -> Result<Value, OpenStackError> {
        let (v, _) = self.json(auth, Request::post("/v2.0/networks", json!({ "network": body }))).await?;
        Ok(v.get("network").cloned().unwrap_or(Value::Null))
    }

    /// `DELETE /networks/{id}`.
    pub async fn network_delete(&self, auth: Auth<'_>, id: &str) -> Result<(), OpenStackError> {
        self.json(auth, Request::delete(Self::id_path("network", "networks", id)?)).await.map(|_| ())
    }

    // ---------------------------------------------------------------- subnets

    /// `GET /subnets?network_id=`.
    pub async fn subnets_of(&self, auth: Auth<'_>, network_id: &str) -> Result<Vec<Value>, OpenStackError> {
        if !check_id(network_id) {
            return Err(invalid_id("network"));
        }
        let (v, _) = self.json(auth, Request::get("/v2.0/subnets").query("network_id", network_id)).await?;
        Ok(v.get("subnets").and_then(Value::as_array).cloned().unwrap_or_default())
    }

    /// `POST /subnets` with `{"subnet": body}`.
    pub async fn subnet_create(&self, auth: Auth<'_>, body: Value) -> Result<Value, OpenStackError> {
        let (v, _) = self.json(auth, Request::post("/v2.0/subnets", json!({ "subnet": body }))).await?;
        Ok(v.get("subnet").cloned().unwrap_or(Value::Null))
    }

    // ---------------------------------------------------------------- ports

    /// `POST /ports` with `{"port": body}`.
    pub async fn port_create(&self, auth: Auth<'_>, body: Value) -> Result<Port, OpenStackError> {
        let (v, call) = self.json(auth, Request::post("/v2.0/ports", json!({ "port": body }))).await?;
        Port::from_json(v.get("port").unwrap_or(&Value::Null), &call)
    }

    /// `PUT /ports/{id}` with `{"port": body}`.
    pub async fn port_update(&self, auth: Auth<'_>, id: &str, body: Value) -> Result<Port, OpenStackError> {
        let (v, call) = self.json(auth, Request::put(Self::id_path("port", "ports", id)?, json!({ "port": body }))).await?;
        Port::from_json(v.get("port").unwrap_or(&Value::Null), &call)
    }

    /// `GET /ports/{id}`.
    pub async fn port_show(&self, auth: Auth<'_>, id: &str) -> Result<Port, OpenStackError> {
        let (v, call) = self.json(auth, Request::get(Self::id_path("port", "ports", id)?)).await?;
        Port::from_json(v.get("port").unwrap_or(&Value::Null), &call)
    }

    /// `GET /ports?k=v...`.
    pub async fn ports(&self, auth: Auth<'_>, filters: &[(&str, &str)]) -> Result<Vec<Port>, OpenStackError> {
        let mut req = Request::get("/v2.0/ports");
        for (k, v) in filters {
            req = req.query(*k, *v);
        }
        let (v, call) = self.json(auth, req).await?;
        let list = v.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
        list.iter().map(|p| Port::from_json(p, &call)).collect()
    }

    /// `DELETE /ports/{id}`.
    pub async fn port_delete(&self, auth: Auth<'_>, id: &str) -> Result<(), OpenStackError> {
        self.json(auth, Request::delete(Self::id_path("port", "ports", id)?)).await.map(|_| ())
    }

    // ---------------------------------------------------------------- security groups

    /// `GET /security-groups?tenant_id=`.
    pub async fn security_groups(&self, auth: Auth<'_>, project_id: &str) -> Result<Vec<Value>, OpenStackError> {
        let (v, _) = self.json(auth, Request::get("/v2.0/security-groups").query("tenant_id", project_id)).await?;
        Ok(v.get("security_groups").and_then(Value::as_array).cloned().unwrap_or_default())
    }

    /// `POST /security-groups`.
    pub async fn security_group_create(&self, auth: Auth<'_>, name: &str) -> Result<Value, OpenStackError> {
        let (v, _) = self.json(auth, Request::post("/v2.0/security-groups", json!({"security_group": {"name": name}}))).await?;
        Ok(v.get("security_group").cloned().unwrap_or(Value::Null))
    }

    /// `POST /security-group-rules`.
    pub async fn security_group_rule_create(&self, auth: Auth<'_>, rule: Value) -> Result<Value, OpenStackError> {
        let (v, _) = self.json(auth, Request::post("/v2.0/security-group-rules", json!({"security_group_rule": rule}))).await?;
        Ok(v.get("security_group_rule").cloned().unwrap_or(Value::Null))
    }

    /// `DELETE /security-groups/{id}`.
    pub async fn security_group_delete(&self, auth: Auth<'_>, id: &str) -> Result<(), OpenStackError> {
        self.json(auth, Request::delete(Self::id_path("security group", "security-groups", id)?)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(check_id("5f0c6b1e-4a8b-4bbd-9d61-0e3c3f1f7c2a"));
        assert!(!check_id(""));
        assert!(!check_id("../networks"));
        assert!(!check_id("a b"));
        assert!(!check_id(&"a".repeat(65)));
        assert!(Neutron::id_path("port", "ports", "..").is_err());
        assert_eq!(Neutron::id_path("port", "ports", "p-1").unwrap(), "/v2.0/ports/p-1");
    }

    #[test]
    fn ports_parse() {
        let p = Port::from_json(
            &json!({"id": "p1", "network_id": "n", "mac_address": "fa:16:3e:00:00:01",
                "fixed_ips": [{"ip_address": "10.0.0.5", "subnet_id": "s"}, {"ip_address": 3}], "security_groups": ["sg"]}),
            "x",
        )
        .unwrap();
        assert_eq!(p.fixed_ips, vec![FixedIp { ip_address: "10.0.0.5".into(), subnet_id: "s".into() }]);
        assert_eq!(p.security_groups, vec!["sg".to_string()]);
        assert!(Port::from_json(&json!({"id": "../x"}), "x").is_err());
    }
}
