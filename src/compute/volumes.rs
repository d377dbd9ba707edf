//! Container volumes as zun-compute 18.0.0 handles them (`zun/volume/driver.py`,
//! `zun/compute/manager.py`): `requested_volumes` (unsaved `VolumeMapping` objects per
//! container uuid) validated, waited for, attached (one `volume_mapping` row each), bound
//! into the Docker container (`_get_binds`), and detached on delete or failure.
//!
//! Providers: `local` (the request's base64 contents written to
//! `<volume_dir>/<volume uuid>/<volume uuid>`, bound as a file) and `cinder` (reserve,
//! initialize_connection with this host's connector, a connector chosen by the
//! connection's `driver_volume_type` (`local` here), mkfs when empty, mount on
//! `<volume_dir>/<volume uuid>`, `connection_info` recorded, os-attach; detach closes all
//! of it, terminate_connection included). Host paths come only from
//! [`crate::host::MountPoints`], from the volume row's uuid, never from the wire.
use super::mapping::VolumeBind;
use super::ops::Op;
use crate::host::{mounts::check_device, mounts::is_uuid, HostError, MountPoints};
use crate::openstack::{cinder::Cinder, Auth, OpenStackError, Service};
use crate::store::{NewVolumeMapping, StoreError, VolumeMappingRow};
use base64::Engine;
use serde_json::{json, Value};

/// The largest local volume content accepted (decoded bytes).
pub const MAX_LOCAL_CONTENTS: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("Invalid requested volume: {0}")]
    Invalid(String),
    #[error("The volume provider '{0}' is not supported")]
    Unsupported(String),
    #[error("Volumes did not reach available status after {0} seconds")]
    NotAvailable(u64),
    #[error("Volumes cannot be successfully deleted after {0} seconds")]
    NotDeleted(u64),
    #[error("Cinder volumes need [keystone_auth]: this zun-compute-rs has no OpenStack configured")]
    CinderNotConfigured,
    #[error("Volume {0} could not be found.")]
    NotFound(String),
    #[error("Volume connection failed: {0}")]
    Connection(String),
    #[error("{0}")]
    OpenStack(#[from] OpenStackError),
    #[error("{0}")]
    Host(#[from] HostError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl VolumeError {
    /// The exception class zun raises for it (zun-api shows its message).
    pub fn to_rpc(&self) -> crate::rpc::RpcError {
        use crate::rpc::RpcError;
        match self {
            VolumeError::Invalid(_) | VolumeError::Unsupported(_) => RpcError::invalid(self.to_string()),
            VolumeError::NotAvailable(_) | VolumeError::NotDeleted(_) => RpcError::conflict(self.to_string()),
            VolumeError::CinderNotConfigured => RpcError::not_supported(self.to_string()),
            VolumeError::NotFound(_) => RpcError::internal(self.to_string()),
            _ => RpcError::internal(self.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Local,
    Cinder,
}

impl Provider {
    fn parse(s: &str) -> Result<Self, VolumeError> {
        match s {
            "local" => Ok(Provider::Local),
            "cinder" => Ok(Provider::Cinder),
            other => Err(VolumeError::Unsupported(other.chars().take(36).collect())),
        }
    }
}

/// One unsaved `VolumeMapping` from `requested_volumes`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeRequest {
    pub uuid: Option<String>,
    pub volume_id: i64,
    pub provider: Provider,
    pub cinder_volume_id: Option<String>,
    pub container_path: String,
    pub auto_remove: bool,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
}

/// A container path a bind may target: absolute, no `..`, no `:` (Docker's bind
/// separator), no control characters, at most 255 characters (the column).
pub fn check_container_path(p: &str) -> Result<(), VolumeError> {
    let bad = |why: &str| Err(VolumeError::Invalid(format!("destination {:?} {why}", p.chars().take(64).collect::<String>())));
    if p.is_empty() || !p.starts_with('/') {
        return bad("must be an absolute path");
    }
    if p.chars().count() > 255 {
        return bad("is longer than 255 characters");
    }
    if p.chars().any(|c| c.is_control() || c == ':') {
        return bad("must not contain ':' or control characters");
    }
    if p.split('/').any(|seg| seg == "..") {
        return bad("must not contain '..'");
    }
    if p == "/" {
        return bad("must not be the container's root");
    }
    Ok(())
}

fn short_text(v: &Value, key: &str, max: usize) -> Result<Option<String>, VolumeError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max && !s.chars().any(char::is_control) => Ok(Some(s.clone())),
        Some(_) => Err(VolumeError::Invalid(format!("field {key} is not a string of at most {max} characters"))),
    }
}

/// `requested_volumes[container_uuid]`, each a `VolumeMapping` primitive, checked.
/// Absent or `null` is no volumes; anything else malformed is refused as a whole.
pub fn parse_requested(all: Option<&Value>, container_uuid: &str, drivers: &[String]) -> Result<Vec<VolumeRequest>, VolumeError> {
    let list = match all {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Object(m)) => match m.get(container_uuid) {
            None | Some(Value::Null) => return Ok(vec![]),
            Some(Value::Array(l)) => l,
            Some(_) => return Err(VolumeError::Invalid("the container's entry is not a list".into())),
        },
        Some(_) => return Err(VolumeError::Invalid("requested_volumes is not a mapping".into())),
    };
    if list.len() > 64 {
        return Err(VolumeError::Invalid(format!("{} volumes for one container (at most 64)", list.len())));
    }
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        if item.get(crate::oslo::object::KEY_NAME).and_then(Value::as_str) != Some("VolumeMapping") {
            return Err(VolumeError::Invalid("an entry is not a VolumeMapping object".into()));
        }
        let d = item
            .get(crate::oslo::object::KEY_DATA)
            .filter(|d| d.is_object())
            .ok_or_else(|| VolumeError::Invalid("a VolumeMapping without data".into()))?;
        let provider_text =
            short_text(d, "volume_provider", 36)?.ok_or_else(|| VolumeError::Invalid("volume_provider is missing".into()))?;
        let provider = Provider::parse(&provider_text)?;
        if !drivers.iter().any(|x| x == &provider_text) {
            return Err(VolumeError::Unsupported(provider_text));
        }
        let volume_id = d.get("volume_id").and_then(Value::as_i64).filter(|i| *i > 0 && *i <= i32::MAX as i64);
        let volume_id = volume_id.ok_or_else(|| VolumeError::Invalid("volume_id is not a positive integer".into()))?;
        let container_path =
            short_text(d, "container_path", 255)?.ok_or_else(|| VolumeError::Invalid("container_path is missing".into()))?;
        check_container_path(&container_path)?;
        let uuid = short_text(d, "uuid", 36)?;
        if uuid.as_deref().is_some_and(|u| !is_uuid(u)) {
            return Err(VolumeError::Invalid("uuid is not a UUID".into()));
        }
        let cinder_volume_id = short_text(d, "cinder_volume_id", 36)?;
        if cinder_volume_id.as_deref().is_some_and(|u| !is_uuid(u)) {
            return Err(VolumeError::Invalid("cinder_volume_id is not a UUID".into()));
        }
        if provider == Provider::Cinder && cinder_volume_id.is_none() {
            return Err(VolumeError::Invalid("a cinder volume without cinder_volume_id".into()));
        }
        out.push(VolumeRequest {
            uuid,
            volume_id,
            provider,
            cinder_volume_id,
            container_path,
            auto_remove: d.get("auto_remove").and_then(Value::as_bool).unwrap_or(false),
            user_id: short_text(d, "user_id", 255)?,
            project_id: short_text(d, "project_id", 255)?,
        });
    }
    Ok(out)
}

/// A capsule's `requested_volumes`, by member. zun-api's capsule path sends
/// `VolumeMapping`s naming only the volume row (`volume_id`) and the container path; the
/// provider, the Cinder volume and `auto_remove` are the row's, as zun's
/// `VolumeMapping.create` reads them back. Every key must be one of `members`; a volume row
/// must exist and belong to the capsule's `project` (when the capsule names one).
pub async fn parse_capsule_requested(
    op: &Op,
    all: Option<&Value>,
    members: &[&str],
    project: Option<&str>,
) -> Result<Vec<(String, Vec<VolumeRequest>)>, VolumeError> {
    let map = match all {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(VolumeError::Invalid("requested_volumes is not a mapping".into())),
    };
    let mut out = Vec::new();
    for (member, list) in map {
        if !members.contains(&member.as_str()) {
            return Err(VolumeError::Invalid(format!(
                "requested_volumes names {}, which is not a container of the capsule",
                member.chars().take(40).collect::<String>().escape_debug()
            )));
        }
        let mut list = list.clone();
        if let Some(items) = list.as_array_mut().filter(|a| a.len() <= 64) {
            for item in items.iter_mut() {
                let Some(d) = item.get_mut(crate::oslo::object::KEY_DATA).and_then(Value::as_object_mut) else { continue };
                if d.contains_key("volume_provider") {
                    continue;
                }
                let id = d.get("volume_id").and_then(Value::as_i64).filter(|i| *i > 0 && *i <= i32::MAX as i64);
                let id = id.ok_or_else(|| VolumeError::Invalid("volume_id is not a positive integer".into()))?;
                let row = op.svc.store.volume_get(id).await?.ok_or_else(|| VolumeError::Invalid(format!("volume {id} does not exist")))?;
                if project.is_some() && row.project_id.as_deref() != project {
                    return Err(VolumeError::Invalid(format!("volume {id} belongs to another project")));
                }
                d.insert("volume_provider".into(), json!(row.volume_provider));
                d.insert("cinder_volume_id".into(), json!(row.cinder_volume_id));
                d.insert("auto_remove".into(), json!(row.auto_remove.unwrap_or(false)));
            }
        }
        let one = serde_json::Map::from_iter([(member.clone(), list)]);
        let reqs = parse_requested(Some(&Value::Object(one)), member, &op.svc.conf.volume.drivers)?;
        if !reqs.is_empty() {
            out.push((member.clone(), reqs));
        }
    }
    Ok(out)
}

fn mounts(op: &Op) -> MountPoints {
    MountPoints::new(&op.svc.conf.volume.volume_dir)
}

fn provider_of(m: &VolumeMappingRow) -> Result<Provider, VolumeError> {
    Provider::parse(&m.volume.volume_provider)
}

/// zun's `_wait_for_volumes_available`: local volumes are available at once, Cinder
/// volumes when `available` (or `in-use` and multiattach) within `[volume]
/// timeout_wait_volume_available`; on failure the `auto_remove` ones are deleted.
pub async fn wait_available(op: &Op, reqs: &[VolumeRequest]) -> Result<(), VolumeError> {
    let res = cinder_wait_available(op, reqs).await;
    if res.is_err() {
        delete_auto_remove(op, reqs).await;
    }
    res
}

/// zun's `_attach_volumes`: a `volume_mapping` row per request, then the driver's attach.
/// A failed attach destroys its own mapping (and deletes an `auto_remove` volume); the
/// caller detaches the ones attached before it ([`detach_all`]).
pub async fn attach_all(op: &Op, container_uuid: &str, reqs: &[VolumeRequest]) -> Result<(), VolumeError> {
    for r in reqs {
        let row = op
            .svc
            .store
            .volume_mapping_create(&NewVolumeMapping {
                uuid: r.uuid.as_deref(),
                project_id: r.project_id.as_deref(),
                user_id: r.user_id.as_deref(),
                container_uuid,
                container_path: &r.container_path,
                volume_id: r.volume_id,
            })
            .await?;
        if provider_of(&row)? == Provider::Cinder && row.volume.connection_info.is_some() {
            // Attached on this host already: another member of the same capsule shares the
            // volume row (zun's `_attach_volumes` skips it likewise).
            tracing::info!(container = container_uuid, volume = %row.volume.uuid, "volume attached already; sharing it");
            continue;
        }
        tracing::info!(container = container_uuid, volume = %row.volume.uuid, provider = %row.volume.volume_provider, "attaching volume");
        if let Err(e) = attach_one(op, &row).await {
            tracing::warn!(container = container_uuid, volume = %row.volume.uuid, error = %e, "attaching the volume failed");
            if r.auto_remove {
                delete_auto_remove(op, std::slice::from_ref(r)).await;
            }
            if let Err(d) = op.svc.store.volume_mapping_destroy(&row.uuid, row.volume.id).await {
                tracing::warn!(container = container_uuid, error = %d, "could not remove the volume mapping");
            }
            return Err(e);
        }
    }
    Ok(())
}

async fn attach_one(op: &Op, m: &VolumeMappingRow) -> Result<(), VolumeError> {
    match provider_of(m)? {
        Provider::Local => {
            let contents = decode_contents(m.volume.contents.as_deref().unwrap_or(""))?;
            mounts(op).write_local(&m.volume.uuid, &contents).await?;
            Ok(())
        }
        Provider::Cinder => cinder_attach(op, m).await,
    }
}

/// zun's `decode_file_data` (base64), bounded.
fn decode_contents(text: &str) -> Result<Vec<u8>, VolumeError> {
    if text.len() > MAX_LOCAL_CONTENTS / 3 * 4 + 4 {
        return Err(VolumeError::Invalid(format!("local volume contents over {MAX_LOCAL_CONTENTS} bytes")));
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| VolumeError::Invalid("Invalid data: contents are not base64".into()))
}

/// zun's `_get_binds` over the container's mappings: (`<mountpoint>/<uuid>` for local,
/// `<mountpoint>` for Cinder) → container path.
pub async fn binds(op: &Op, container_uuid: &str) -> Result<Vec<VolumeBind>, VolumeError> {
    let rows = op.svc.store.volume_mappings_of_container(container_uuid).await?;
    let mp = mounts(op);
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        let destination = m.container_path.clone().unwrap_or_default();
        check_container_path(&destination)?;
        let source = match provider_of(&m)? {
            Provider::Local => mp.local_file(&m.volume.uuid)?,
            Provider::Cinder => mp.mountpoint(&m.volume.uuid)?,
        };
        out.push(VolumeBind { source: source.to_string_lossy().into_owned(), destination });
    }
    Ok(out)
}

/// zun's `_detach_volumes`: every mapping of the container detached (the provider's
/// detach only when no other mapping shares the volume) and destroyed. With `reraise`
/// false (a forced delete), errors are logged and the rest goes on; otherwise the
/// first error stops it.
pub async fn detach_all(op: &Op, container_uuid: &str, reraise: bool) -> Result<(), VolumeError> {
    let rows = op.svc.store.volume_mappings_of_container(container_uuid).await?;
    for m in rows {
        let shared = op.svc.store.volume_mapping_count(m.volume.id).await? > 1;
        tracing::info!(container = container_uuid, volume = %m.volume.uuid, shared, "detaching volume");
        if !shared {
            if let Err(e) = detach_one(op, &m).await {
                tracing::warn!(container = container_uuid, volume = %m.volume.uuid, error = %e, "detaching the volume failed");
                if reraise {
                    return Err(e);
                }
            }
        }
        // zun deletes an auto_remove volume only when this was its last mapping.
        let last_of_cinder_volume = match m.volume.cinder_volume_id.as_deref() {
            Some(id) => op.svc.store.volume_mappings_of_cinder_volume(id).await?.len() == 1,
            None => false,
        };
        op.svc.store.volume_mapping_destroy(&m.uuid, m.volume.id).await?;
        if m.volume.auto_remove == Some(true) && last_of_cinder_volume && provider_of(&m)? == Provider::Cinder {
            let id = m.volume.cinder_volume_id.clone().unwrap_or_default();
            tracing::info!(container = container_uuid, volume = %id, "deleting the auto_remove volume");
            if let Err(e) = cinder_delete_and_wait(op, &id).await {
                tracing::warn!(container = container_uuid, volume = %id, error = %e, "deleting the auto_remove volume failed");
                if reraise {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

async fn detach_one(op: &Op, m: &VolumeMappingRow) -> Result<(), VolumeError> {
    match provider_of(m)? {
        Provider::Local => Ok(mounts(op).remove(&m.volume.uuid).await?),
        Provider::Cinder => cinder_detach(op, m).await,
    }
}

/// zun's `_remount_volume` at start-up (`[compute] remount_container_volume`), for one
/// mapping: a local volume's file written again from its contents; a Cinder volume with a
/// saved connection connected again through its connector and mounted (nothing when
/// still mounted; a device that will not mount is an error, never formatted), its
/// `device_path` saved when it changed; one with no saved connection (the worker stopped
/// in the middle of its attach) attached from the start.
pub async fn remount(op: &Op, m: &VolumeMappingRow) -> Result<(), VolumeError> {
    match provider_of(m)? {
        Provider::Local => attach_one(op, m).await,
        Provider::Cinder => {
            let Some(text) = m.volume.connection_info.as_deref() else { return cinder_attach(op, m).await };
            let mut conn: Value = serde_json::from_str(text)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| VolumeError::Connection("the saved connection_info is not a JSON object".into()))?;
            let device = connector_for(&conn)?.connect(&conn["data"])?;
            if conn["data"]["device_path"].as_str() != Some(device.as_str()) {
                conn["data"]["device_path"] = json!(device);
                op.svc.store.volume_set_connection_info(m.volume.id, Some(&crate::oslo::pyjson::to_python_json(&conn))).await?;
            }
            mounts(op).remount_device(&device, &m.volume.uuid, &op.svc.conf.volume.fstype).await?;
            Ok(())
        }
    }
}

// ------------------------------------------------------------------------------ Cinder

/// Cinder through the worker's Keystone session and `[cinder_client]`.
fn cinder(op: &Op) -> Result<Cinder, VolumeError> {
    let session = op.svc.keystone.as_ref().ok_or(VolumeError::CinderNotConfigured)?;
    Ok(Cinder::new(session.client(Service::Cinder, &op.svc.settings.cinder_client)?))
}

/// The calls go with the service's token (`[keystone_auth]`, admin): a user token in an
/// RPC context may expire during a wait, and the service's is renewed.
const AUTH: Auth<'static> = Auth::Service;

/// os-brick's `get_connector_properties` for this host (no iSCSI initiator, no multipath).
fn connector_properties(op: &Op) -> Value {
    let ip = op.svc.settings.default.my_ip.clone().unwrap_or_else(|| "127.0.0.1".into());
    json!({
        "platform": std::env::consts::ARCH, "os_type": std::env::consts::OS, "ip": ip, "host": op.svc.host,
        "multipath": false, "enforce_multipath": true, "do_local_attach": false,
    })
}

/// A connector for a connection's `driver_volume_type` (os-brick's `InitiatorConnector`):
/// `local` here; iSCSI, RBD, NVMe-oF and the others answer a clear error.
trait VolumeConnector {
    /// Makes the device appear; returns its path.
    fn connect(&self, data: &Value) -> Result<String, VolumeError>;
    fn disconnect(&self, data: &Value) -> Result<(), VolumeError>;
}

/// os-brick's `LocalConnector`: the device is already on this host at `device_path`.
struct LocalConnector;

impl VolumeConnector for LocalConnector {
    fn connect(&self, data: &Value) -> Result<String, VolumeError> {
        let path = data
            .get("device_path")
            .and_then(Value::as_str)
            .ok_or_else(|| VolumeError::Connection("no device_path in the local connection".into()))?;
        check_device(path)?;
        if !std::path::Path::new(path).exists() {
            return Err(VolumeError::Connection(format!("device {path} does not exist on this host")));
        }
        Ok(path.to_string())
    }
    fn disconnect(&self, _data: &Value) -> Result<(), VolumeError> {
        Ok(())
    }
}

fn connector_for(conn: &Value) -> Result<Box<dyn VolumeConnector + Send + Sync>, VolumeError> {
    match conn.get("driver_volume_type").and_then(Value::as_str).unwrap_or("") {
        "local" => Ok(Box::new(LocalConnector)),
        other => Err(VolumeError::Connection(format!(
            "volume connection type '{}' is not supported by zun-compute-rs (supported: local)",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

async fn cinder_wait_available(op: &Op, reqs: &[VolumeRequest]) -> Result<(), VolumeError> {
    let wanted: Vec<&str> = reqs.iter().filter(|r| r.provider == Provider::Cinder).filter_map(|r| r.cinder_volume_id.as_deref()).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let cinder = cinder(op)?;
    let timeout = op.svc.conf.volume.wait_available;
    let deadline = tokio::time::Instant::now() + timeout;
    for id in wanted {
        loop {
            let vol = cinder.get(AUTH, id).await?.ok_or_else(|| VolumeError::NotFound(id.to_string()))?;
            let available = vol.status == "available" || (vol.status == "in-use" && vol.multiattach);
            if available {
                break;
            }
            if vol.status == "error" || tokio::time::Instant::now() >= deadline {
                tracing::warn!(volume = id, status = %vol.status, "the volume is not available");
                return Err(VolumeError::NotAvailable(timeout.as_secs()));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

/// How often Cinder is asked while waiting.
const POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// zun's `_wait_for_volumes_available` failure: `auto_remove` volumes are deleted.
async fn delete_auto_remove(op: &Op, reqs: &[VolumeRequest]) {
    for r in reqs.iter().filter(|r| r.provider == Provider::Cinder && r.auto_remove) {
        let Some(id) = r.cinder_volume_id.as_deref() else { continue };
        match cinder(op) {
            Ok(c) => {
                if let Err(e) = c.delete(AUTH, id).await {
                    tracing::warn!(volume = id, error = %e, "could not delete the auto_remove volume");
                }
            }
            Err(e) => tracing::warn!(volume = id, error = %e, "could not delete the auto_remove volume"),
        }
    }
}

/// `CinderWorkflow.attach_volume` + `_mount_device`; every step undone on failure.
async fn cinder_attach(op: &Op, m: &VolumeMappingRow) -> Result<(), VolumeError> {
    let id = m.volume.cinder_volume_id.clone().ok_or_else(|| VolumeError::Invalid("a cinder volume without cinder_volume_id".into()))?;
    let container_uuid = m.container_uuid.clone().unwrap_or_default();
    let cinder = cinder(op)?;
    let connector = connector_properties(op);
    cinder.reserve(AUTH, &id).await?;
    let attached: Result<(String, Value), VolumeError> = async {
        let mut conn = cinder.initialize_connection(AUTH, &id, &connector).await?;
        let brick = connector_for(&conn)?;
        let device = match brick.connect(&conn["data"]) {
            Ok(d) => d,
            Err(e) => {
                let _ = cinder.terminate_connection(AUTH, &id, &connector).await;
                return Err(e);
            }
        };
        conn["data"]["device_path"] = json!(device);
        // Saved before os-attach: a detach right after needs it (zun's note).
        op.svc.store.volume_set_connection_info(m.volume.id, Some(&crate::oslo::pyjson::to_python_json(&conn))).await?;
        if let Err(e) = cinder.attach(AUTH, &id, &container_uuid, &device, &op.svc.host).await {
            let _ = brick.disconnect(&conn["data"]);
            let _ = cinder.terminate_connection(AUTH, &id, &connector).await;
            let _ = cinder.detach(AUTH, &id, None).await;
            return Err(e.into());
        }
        Ok((device, conn))
    }
    .await;
    let (device, _conn) = match attached {
        Ok(x) => x,
        Err(e) => {
            let _ = cinder.unreserve(AUTH, &id).await;
            return Err(e);
        }
    };
    tracing::info!(volume = %id, device = %device, "volume connected; mounting it");
    if let Err(e) = mounts(op).mount_device(&device, &m.volume.uuid, &op.svc.conf.volume.fstype).await {
        tracing::warn!(volume = %id, error = %e, "mounting the device failed; detaching the volume");
        let _ = mounts(op).remove(&m.volume.uuid).await;
        if let Err(d) = cinder_detach_volume(op, &cinder, m, &id).await {
            tracing::warn!(volume = %id, error = %d, "detaching after the failed mount failed");
        }
        return Err(e.into());
    }
    Ok(())
}

/// `Cinder.detach`: unmount, remove the mount point, then Cinder's detach.
async fn cinder_detach(op: &Op, m: &VolumeMappingRow) -> Result<(), VolumeError> {
    let id = m.volume.cinder_volume_id.clone().ok_or_else(|| VolumeError::Invalid("a cinder volume without cinder_volume_id".into()))?;
    let mp = mounts(op);
    mp.unmount(&m.volume.uuid).await?;
    mp.remove(&m.volume.uuid).await?;
    let cinder = cinder(op)?;
    cinder_detach_volume(op, &cinder, m, &id).await
}

/// `CinderWorkflow.detach_volume`, closing what the attach opened: begin_detaching,
/// disconnect the device, **terminate_connection** (zun 18 skips it), os-detach of this
/// container's attachment.
async fn cinder_detach_volume(op: &Op, cinder: &Cinder, m: &VolumeMappingRow, id: &str) -> Result<(), VolumeError> {
    cinder.begin_detaching(AUTH, id).await?;
    // Another container on this host still using the volume keeps the connection.
    let container_uuid = m.container_uuid.clone().unwrap_or_default();
    let others = op.svc.store.volume_mappings_of_cinder_volume(id).await?.into_iter().filter(|x| x.uuid != m.uuid).count();
    if others == 0 {
        if let Some(conn) = m.volume.connection_info.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()) {
            if let Err(e) = connector_for(&conn).and_then(|b| b.disconnect(&conn["data"])) {
                let _ = cinder.roll_detaching(AUTH, id).await;
                return Err(e);
            }
        }
        cinder.terminate_connection(AUTH, id, &connector_properties(op)).await?;
    }
    let vol = cinder.get(AUTH, id).await?;
    let attachment = vol.and_then(|v| v.attachments.into_iter().find(|a| a.server_id.as_deref() == Some(container_uuid.as_str())));
    cinder.detach(AUTH, id, attachment.and_then(|a| a.attachment_id).as_deref()).await?;
    Ok(())
}

/// zun's `delete_volume` + `_wait_for_volumes_deleted` for one `auto_remove` volume.
async fn cinder_delete_and_wait(op: &Op, id: &str) -> Result<(), VolumeError> {
    let cinder = cinder(op)?;
    cinder.delete(AUTH, id).await?;
    let timeout = op.svc.conf.volume.wait_deleted;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match cinder.get(AUTH, id).await? {
            None => return Ok(()),
            Some(v) if v.status.contains("error") => return Err(VolumeError::NotDeleted(timeout.as_secs())),
            Some(_) if tokio::time::Instant::now() >= deadline => return Err(VolumeError::NotDeleted(timeout.as_secs())),
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const C: &str = "3e6f5f6e-8a5b-4b3c-9a52-7c1f0d4e2b11";

    fn vm(data: Value) -> Value {
        json!({"zun_object.name": "VolumeMapping", "zun_object.namespace": "zun", "zun_object.version": "1.5", "zun_object.data": data})
    }

    fn drivers() -> Vec<String> {
        vec!["cinder".into(), "local".into()]
    }

    #[test]
    fn parses_zun_api_mappings() {
        let all = json!({C: [
            vm(json!({"cinder_volume_id": null, "auto_remove": false, "contents": "aGk=", "user_id": "u", "project_id": "p",
                      "volume_provider": "local", "volume_id": 7, "container_path": "/etc/app.conf"})),
            vm(json!({"cinder_volume_id": "0e9f6b3c-58a4-4b39-9a1d-3f1f6a1c2b7d", "auto_remove": true, "contents": null,
                      "user_id": "u", "project_id": "p", "volume_provider": "cinder", "volume_id": 8, "container_path": "/data"})),
        ]});
        let r = parse_requested(Some(&all), C, &drivers()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].provider, Provider::Local);
        assert_eq!(r[0].volume_id, 7);
        assert_eq!(r[1].provider, Provider::Cinder);
        assert!(r[1].auto_remove);
        assert!(parse_requested(Some(&json!({C: []})), C, &drivers()).unwrap().is_empty());
        assert!(parse_requested(Some(&json!({})), C, &drivers()).unwrap().is_empty());
        assert!(parse_requested(None, C, &drivers()).unwrap().is_empty());
    }

    #[test]
    fn refuses_hostile_mappings() {
        let base = json!({"volume_provider": "local", "volume_id": 1, "container_path": "/data"});
        let with = |k: &str, v: Value| {
            let mut d = base.clone();
            d[k] = v;
            json!({C: [vm(d)]})
        };
        for (k, v) in [
            ("container_path", json!("relative/x")),
            ("container_path", json!("/a/../../etc")),
            ("container_path", json!("/data:/etc:rw")),
            ("container_path", json!("/")),
            ("container_path", json!("/x\n")),
            ("container_path", json!(format!("/{}", "a".repeat(300)))),
            ("container_path", json!(5)),
            ("volume_id", json!(-1)),
            ("volume_id", json!("1")),
            ("volume_provider", json!("nfs")),
            ("cinder_volume_id", json!("../../x")),
            ("uuid", json!("not-a-uuid")),
        ] {
            assert!(parse_requested(Some(&with(k, v.clone())), C, &drivers()).is_err(), "{k}={v} accepted");
        }
        assert!(parse_requested(Some(&json!({C: [base.clone()]})), C, &drivers()).is_err(), "a bare dict accepted");
        assert!(parse_requested(Some(&json!({C: "x"})), C, &drivers()).is_err());
        assert!(parse_requested(Some(&json!([])), C, &drivers()).is_err());
        // A provider this host does not run.
        assert!(matches!(parse_requested(Some(&json!({C: [vm(base)]})), C, &["cinder".to_string()]), Err(VolumeError::Unsupported(_))));
    }

    #[test]
    fn contents_are_base64_and_bounded() {
        assert_eq!(decode_contents("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_contents("").unwrap(), b"");
        assert!(decode_contents("***").is_err());
        assert!(decode_contents(&"A".repeat(MAX_LOCAL_CONTENTS * 2)).is_err());
    }
}
