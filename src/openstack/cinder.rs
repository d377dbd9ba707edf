//! Cinder's block storage API v3, the calls zun's `CinderAPI` makes (the legacy attach
//! flow): show a volume, `os-reserve`/`os-unreserve`, `os-initialize_connection`,
//! `os-attach`, `os-begin_detaching`/`os-roll_detaching`, `os-terminate_connection`,
//! `os-detach`, delete.
//!
//! The catalog's `volumev3` URL carries the token's project (`/v3/<project_id>`); calls
//! go to the project-less form (`/v3/volumes/...`, Cinder since Yoga), so the same
//! client serves the user's token and the service's. Volume ids are checked (UUID shape)
//! before they reach a URL.
use super::error::{OpenStackError, Service};
use super::session::{path_segment, Auth, Request, ServiceClient};
use serde_json::{json, Map, Value};

/// A Cinder volume id: a UUID.
pub fn check_volume_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().enumerate().all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() })
}

/// What the domain reads of a volume.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeInfo {
    pub id: String,
    pub status: String,
    pub multiattach: bool,
    /// (`server_id`, `attachment_id`, `host_name`) of each attachment.
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub server_id: Option<String>,
    pub attachment_id: Option<String>,
    pub host_name: Option<String>,
}

/// Cinder through a [`ServiceClient`] (catalog type `volumev3`, `[cinder_client]`).
#[derive(Debug, Clone)]
pub struct Cinder {
    client: ServiceClient,
}

fn decode(call: &str, detail: &str) -> OpenStackError {
    OpenStackError::Decode { service: Service::Cinder, call: call.to_string(), detail: detail.to_string() }
}

/// `http://h/v3/<project>` → `http://h/v3` (and a URL without the project as it is).
pub fn project_less(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    match e.rsplit_once('/') {
        Some((head, last))
            if head.ends_with("/v3") && !last.is_empty() && last.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            head.to_string()
        }
        _ => e.to_string(),
    }
}

impl Cinder {
    pub fn new(client: ServiceClient) -> Self {
        Cinder { client }
    }

    pub fn client(&self) -> &ServiceClient {
        &self.client
    }

    async fn send(&self, auth: Auth<'_>, req: Request) -> Result<super::Response, OpenStackError> {
        let root = project_less(&self.client.endpoint(auth).await?);
        self.client.clone().with_endpoint_override(root).call(auth, &req).await
    }

    fn volume_path(id: &str) -> Result<String, OpenStackError> {
        if !check_volume_id(id) {
            return Err(OpenStackError::Config("invalid Cinder volume id".into()));
        }
        Ok(format!("/volumes/{}", path_segment(id)))
    }

    /// `GET /volumes/{id}`; `None` when Cinder answers 404.
    pub async fn get(&self, auth: Auth<'_>, id: &str) -> Result<Option<VolumeInfo>, OpenStackError> {
        let req = Request::get(Self::volume_path(id)?);
        let call = req.call();
        let resp = match self.send(auth, req).await {
            Ok(r) => r,
            Err(OpenStackError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let v: Value = resp.json()?;
        let vol = v.get("volume").ok_or_else(|| decode(&call, "no volume in the answer"))?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Some(VolumeInfo {
            id: s(vol, "id").unwrap_or_default(),
            status: s(vol, "status").ok_or_else(|| decode(&call, "the volume has no status"))?,
            multiattach: vol.get("multiattach").and_then(Value::as_bool).unwrap_or(false),
            attachments: vol
                .get("attachments")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| Attachment {
                            server_id: s(x, "server_id"),
                            attachment_id: s(x, "attachment_id"),
                            host_name: s(x, "host_name"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }))
    }

    async fn action(&self, auth: Auth<'_>, id: &str, name: &str, arg: Value) -> Result<Value, OpenStackError> {
        let mut body = Map::new();
        body.insert(name.to_string(), arg);
        let resp = self.send(auth, Request::post(format!("{}/action", Self::volume_path(id)?), Value::Object(body))).await?;
        if resp.body.is_empty() {
            return Ok(Value::Null);
        }
        resp.json()
    }

    pub async fn reserve(&self, auth: Auth<'_>, id: &str) -> Result<(), OpenStackError> {
        self.action(auth, id, "os-reserve", Value::Null).await.map(|_| ())
    }

    pub async fn unreserve(&self, auth: Auth<'_>, id: &str) -> Result<(), OpenStackError> {
        self.action(auth, id, "os-unreserve", Value::Null).await.map(|_| ())
    }

    /// `os-initialize_connection`: the `connection_info` (`driver_volume_type`, `data`).
    pub async fn initialize_connection(&self, auth: Auth<'_>, id: &str, connector: &Value) -> Result<Value, OpenStackError> {
        let v = self.action(auth, id, "os-initialize_connection", json!({ "connector": connector })).await?;
        let call = format!("POST /volumes/{id}/action os-initialize_connection");
        let info = v.get("connection_info").cloned().ok_or_else(|| decode(&call, "no connection_info in the answer"))?;
        if !info.get("driver_volume_type").is_some_and(Value::is_string) || !info.get("data").is_some_and(Value::is_object) {
            return Err(decode(&call, "connection_info lacks driver_volume_type or data"));
        }
        Ok(info)
    }

    pub async fn terminate_connection(&self, auth: Auth<'_>, id: &str, connector: &Value) -> Result<(), OpenStackError> {
        self.action(auth, id, "os-terminate_connection", json!({ "connector": connector })).await.map(|_| ())
    }

    /// `os-attach` as zun sends it (instance = the container uuid, rw).
    pub async fn attach(&self, auth: Auth<'_>, id: &str, container_uuid: &str, mountpoint: &str, host: &str) -> Result<(), OpenStackError> {
        let arg = json!({"instance_uuid": container_uuid, "mountpoint": mountpoint, "mode": "rw", "host_name": host});
        self.action(auth, id, "os-attach", arg).await.map(|_| ())
    }

    pub async fn begin_detaching(&self, auth: Auth<'_>, id: &str) -> Result<(), OpenStackError> {
        self.action(auth, id, "os-begin_detaching", Value::Null).await.map(|_| ())
    }

    pub async fn roll_detaching(&self, auth: Auth<'_>, id: &str) -> Result<(), OpenStackError> {
        self.action(auth, id, "os-roll_detaching", Value::Null).await.map(|_| ())
    }

    /// `os-detach` of the attachment `attachment_id` (none: Cinder detaches the only one).
    pub async fn detach(&self, auth: Auth<'_>, id: &str, attachment_id: Option<&str>) -> Result<(), OpenStackError> {
        let arg = match attachment_id {
            Some(a) => json!({ "attachment_id": a }),
            None => json!({}),
        };
        self.action(auth, id, "os-detach", arg).await.map(|_| ())
    }

    /// `DELETE /volumes/{id}`; gone already is success.
    pub async fn delete(&self, auth: Auth<'_>, id: &str) -> Result<(), OpenStackError> {
        match self.send(auth, Request::delete(Self::volume_path(id)?)).await {
            Ok(_) | Err(OpenStackError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_urls_lose_their_project() {
        assert_eq!(project_less("http://127.0.0.1:8776/v3/0a1b2c3d4e5f"), "http://127.0.0.1:8776/v3");
        assert_eq!(project_less("http://127.0.0.1:8776/v3/0a1b2c3d4e5f/"), "http://127.0.0.1:8776/v3");
        assert_eq!(project_less("http://127.0.0.1:8776/v3"), "http://127.0.0.1:8776/v3");
        assert_eq!(project_less("https://cloud/volume/v3/abc"), "https://cloud/volume/v3");
    }

    #[test]
    fn volume_ids_are_uuids() {
        assert!(check_volume_id("0e9f6b3c-58a4-4b39-9a1d-3f1f6a1c2b7d"));
        assert!(!check_volume_id("../volumes"));
        assert!(!check_volume_id("0e9f6b3c-58a4-4b39-9a1d-3f1f6a1c2b7"));
        assert!(Cinder::volume_path("x/../y").is_err());
    }
}
