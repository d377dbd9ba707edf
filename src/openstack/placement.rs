//! The Placement API as zun-compute uses it (zun's `SchedulerReportClient`): the compute
//! node's resource provider, its inventories and traits, and freeing a container's
//! allocation. Microversions are zun's per call; the server's maximum is checked once.
//!
//! [`compute_inventories`] is zun's `update_provider_tree` arithmetic, pure.
use super::error::{OpenStackError, Service};
use super::session::{path_segment, Auth, Request, ServiceClient};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The trait zun-api's scheduler excludes (`required=!CUSTOM_ZUN_COMPUTE_STATUS_DISABLED`).
pub const TRAIT_COMPUTE_STATUS_DISABLED: &str = "CUSTOM_ZUN_COMPUTE_STATUS_DISABLED";
/// The highest microversion a call of ours uses (consumer generations).
pub const REQUIRED_MICROVERSION: (u32, u32) = (1, 28);
const GET_PROVIDER_VERSION: &str = "1.14";
const CREATE_PROVIDER_VERSION: &str = "1.20";
const INVENTORY_VERSION: &str = "1.26";
const TRAITS_VERSION: &str = "1.6";
const ALLOCATIONS_VERSION: &str = "1.28";
/// Generation conflicts retried per update (zun: 3 retries, no pause; ours back off with jitter).
const CONFLICT_RETRIES: usize = 7;
/// Consumer generation conflicts retried when freeing an allocation.
const CONFLICT_ATTEMPTS: usize = 4;

pub const VCPU: &str = "VCPU";
pub const MEMORY_MB: &str = "MEMORY_MB";
pub const DISK_GB: &str = "DISK_GB";

/// One inventory record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub total: i64,
    #[serde(default)]
    pub reserved: i64,
    #[serde(default = "one")]
    pub min_unit: i64,
    pub max_unit: i64,
    #[serde(default = "one")]
    pub step_size: i64,
    #[serde(default = "one_f")]
    pub allocation_ratio: f64,
}

fn one() -> i64 {
    1
}
fn one_f() -> f64 {
    1.0
}

/// What the host has, as zun's docker driver measures it for Placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostResources {
    /// Logical CPUs.
    pub vcpus: i64,
    /// `MemTotal` in MiB.
    pub memory_mb: i64,
    /// Size of the filesystem holding Docker's root, in whole GiB.
    pub disk_gb: i64,
}

/// The `[compute]` options that shape the inventories.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryPolicy {
    pub cpu_allocation_ratio: Option<f64>,
    pub ram_allocation_ratio: Option<f64>,
    pub disk_allocation_ratio: Option<f64>,
    pub initial_cpu_allocation_ratio: f64,
    pub initial_ram_allocation_ratio: f64,
    pub initial_disk_allocation_ratio: f64,
    pub reserved_host_cpus: i64,
    pub reserved_host_memory_mb: i64,
    pub reserved_host_disk_mb: i64,
}

impl InventoryPolicy {
    pub fn from_compute(c: &crate::config::ComputeSection) -> Self {
        InventoryPolicy {
            cpu_allocation_ratio: c.cpu_allocation_ratio,
            ram_allocation_ratio: c.ram_allocation_ratio,
            disk_allocation_ratio: c.disk_allocation_ratio,
            initial_cpu_allocation_ratio: c.initial_cpu_allocation_ratio,
            initial_ram_allocation_ratio: c.initial_ram_allocation_ratio,
            initial_disk_allocation_ratio: c.initial_disk_allocation_ratio,
            reserved_host_cpus: c.reserved_host_cpus,
            reserved_host_memory_mb: c.reserved_host_memory_mb,
            reserved_host_disk_mb: c.reserved_host_disk_mb,
        }
    }
}

/// zun's inventories: VCPU, MEMORY_MB, DISK_GB with total = max_unit = the host's figure,
/// min_unit = step_size = 1, reserved from `reserved_host_*` (disk MB rounded up to GB),
/// and the allocation ratio from `*_allocation_ratio` when set (non-zero), else the
/// ratio already in Placement, else `initial_*_allocation_ratio`.
///
/// Where zun would send what Placement refuses, we do better: a class whose total is not
/// positive is left out, and `reserved` is kept within `[0, total]`.
pub fn compute_inventories(
    host: &HostResources,
    policy: &InventoryPolicy,
    existing: &BTreeMap<String, Inventory>,
) -> BTreeMap<String, Inventory> {
    let ratio = |rc: &str, conf: Option<f64>, initial: f64| -> f64 {
        match conf {
            Some(r) if r != 0.0 && r.is_finite() => r,
            _ => existing.get(rc).map(|i| i.allocation_ratio).unwrap_or(initial),
        }
    };
    let disk_reserved_gb = (policy.reserved_host_disk_mb.max(0) + 1023) / 1024;
    let classes = [
        (VCPU, host.vcpus, policy.reserved_host_cpus, ratio(VCPU, policy.cpu_allocation_ratio, policy.initial_cpu_allocation_ratio)),
        (
            MEMORY_MB,
            host.memory_mb,
            policy.reserved_host_memory_mb,
            ratio(MEMORY_MB, policy.ram_allocation_ratio, policy.initial_ram_allocation_ratio),
        ),
        (DISK_GB, host.disk_gb, disk_reserved_gb, ratio(DISK_GB, policy.disk_allocation_ratio, policy.initial_disk_allocation_ratio)),
    ];
    let mut out = BTreeMap::new();
    for (rc, total, reserved, allocation_ratio) in classes {
        if total <= 0 {
            continue;
        }
        out.insert(
            rc.to_string(),
            Inventory { total, reserved: reserved.clamp(0, total), min_unit: 1, max_unit: total, step_size: 1, allocation_ratio },
        );
    }
    out
}

/// The traits the provider should carry: what it has, with zun's disabled trait added
/// when the service is disabled and removed when it is not.
pub fn desired_traits(current: &BTreeSet<String>, service_disabled: bool) -> BTreeSet<String> {
    let mut t = current.clone();
    if service_disabled {
        t.insert(TRAIT_COMPUTE_STATUS_DISABLED.to_string());
    } else {
        t.remove(TRAIT_COMPUTE_STATUS_DISABLED);
    }
    t
}

/// A resource provider.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Provider {
    pub uuid: String,
    pub name: String,
    pub generation: i64,
}

/// A consumer's allocations (`GET /allocations/{consumer}` at 1.28).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConsumerAllocations {
    #[serde(default)]
    pub allocations: BTreeMap<String, Value>,
    #[serde(default)]
    pub consumer_generation: Option<i64>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

/// What one [`Placement::sync_provider`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    pub created: bool,
    pub inventories_updated: bool,
    pub traits_updated: bool,
    /// Retries after a generation conflict (another writer) or a 5xx answer.
    pub conflicts: usize,
    pub generation: i64,
}

/// What the compute host reports for its node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    /// The provider uuid (= the compute node's uuid).
    pub uuid: String,
    /// The provider name (= `[DEFAULT] host`).
    pub name: String,
    pub host: HostResources,
    pub policy: InventoryPolicy,
    pub service_disabled: bool,
}

/// The Placement client.
#[derive(Debug)]
pub struct Placement {
    client: ServiceClient,
    max_version: OnceCell<(u32, u32)>,
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

fn bad_input(call: &str, what: &str) -> OpenStackError {
    OpenStackError::Decode { service: Service::Placement, call: call.to_string(), detail: format!("refusing to send {what}") }
}

impl Placement {
    pub fn new(client: ServiceClient) -> Self {
        Placement { client, max_version: OnceCell::new() }
    }

    pub fn client(&self) -> &ServiceClient {
        &self.client
    }

    /// The server's maximum microversion (`GET /`), checked once against what we need.
    pub async fn negotiate(&self) -> Result<(u32, u32), OpenStackError> {
        let v = self
            .max_version
            .get_or_try_init(|| async {
                let r = self.client.call(Auth::Service, &Request::get("/")).await?;
                let body: Value = r.json()?;
                let max = body
                    .get("versions")
                    .and_then(|v| v.as_array())
                    .and_then(|a| a.iter().find_map(|v| v.get("max_version").and_then(|m| m.as_str()).and_then(parse_version)))
                    .ok_or_else(|| OpenStackError::Decode {
                        service: Service::Placement,
                        call: "GET /".into(),
                        detail: "no max_version".into(),
                    })?;
                if max < REQUIRED_MICROVERSION {
                    return Err(OpenStackError::Status {
                        service: Service::Placement,
                        call: "GET /".into(),
                        status: 406,
                        code: None,
                        detail: format!(
                            "Placement's maximum microversion {}.{} is below the {}.{} this worker needs",
                            max.0, max.1, REQUIRED_MICROVERSION.0, REQUIRED_MICROVERSION.1
                        ),
                    });
                }
                Ok(max)
            })
            .await?;
        Ok(*v)
    }

    pub async fn get_provider(&self, uuid: &str) -> Result<Option<Provider>, OpenStackError> {
        if !is_uuid(uuid) {
            return Err(bad_input("GET /resource_providers", "a provider id that is not a uuid"));
        }
        let r = self
            .client
            .send(Auth::Service, &Request::get(format!("/resource_providers/{}", path_segment(uuid))).microversion(GET_PROVIDER_VERSION))
            .await?;
        if r.status == 404 {
            return Ok(None);
        }
        Ok(Some(r.check()?.json()?))
    }

    /// Creates the provider; a concurrent creation of the same uuid is read back.
    pub async fn create_provider(&self, uuid: &str, name: &str) -> Result<Provider, OpenStackError> {
        if !is_uuid(uuid) {
            return Err(bad_input("POST /resource_providers", "a provider id that is not a uuid"));
        }
        let req = Request::post("/resource_providers", json!({"uuid": uuid, "name": name})).microversion(CREATE_PROVIDER_VERSION);
        let r = self.client.send(Auth::Service, &req).await?;
        if r.is_success() {
            tracing::info!(rp_uuid = %uuid, name = %name, "created the resource provider in Placement");
            return r.json();
        }
        let err = r.error();
        if r.status == 409 && !err.to_string().contains("Conflicting resource provider name") {
            if let Some(p) = self.get_provider(uuid).await? {
                return Ok(p);
            }
        }
        Err(err)
    }

    pub async fn get_inventories(&self, uuid: &str) -> Result<(i64, BTreeMap<String, Inventory>), OpenStackError> {
        #[derive(Deserialize)]
        struct B {
            resource_provider_generation: i64,
            #[serde(default)]
            inventories: BTreeMap<String, Inventory>,
        }
        let req = Request::get(format!("/resource_providers/{}/inventories", path_segment(uuid))).microversion(INVENTORY_VERSION);
        let b: B = self.client.call(Auth::Service, &req).await?.json()?;
        Ok((b.resource_provider_generation, b.inventories))
    }

    /// Replaces the inventories at `generation`; the new generation on success. A
    /// generation conflict is an `OpenStackError::Status` with code `placement.concurrent_update`.
    pub async fn set_inventories(&self, uuid: &str, generation: i64, inv: &BTreeMap<String, Inventory>) -> Result<i64, OpenStackError> {
        let req = Request::put(
            format!("/resource_providers/{}/inventories", path_segment(uuid)),
            json!({"resource_provider_generation": generation, "inventories": inv}),
        )
        .microversion(INVENTORY_VERSION);
        let b: Value = self.client.call(Auth::Service, &req).await?.json()?;
        Ok(b.get("resource_provider_generation").and_then(Value::as_i64).unwrap_or(generation + 1))
    }

    pub async fn get_traits(&self, uuid: &str) -> Result<(i64, BTreeSet<String>), OpenStackError> {
        #[derive(Deserialize)]
        struct B {
            resource_provider_generation: i64,
            #[serde(default)]
            traits: BTreeSet<String>,
        }
        let req = Request::get(format!("/resource_providers/{}/traits", path_segment(uuid))).microversion(TRAITS_VERSION);
        let b: B = self.client.call(Auth::Service, &req).await?.json()?;
        Ok((b.resource_provider_generation, b.traits))
    }

    /// Creates the custom traits among `traits` that Placement does not know yet.
    pub async fn ensure_traits(&self, traits: &BTreeSet<String>) -> Result<(), OpenStackError> {
        if traits.is_empty() {
            return Ok(());
        }
        let names = traits.iter().cloned().collect::<Vec<_>>().join(",");
        let req = Request::get("/traits").query("name", format!("in:{names}")).microversion(TRAITS_VERSION);
        #[derive(Deserialize)]
        struct B {
            traits: BTreeSet<String>,
        }
        let known: B = self.client.call(Auth::Service, &req).await?.json()?;
        for t in traits.difference(&known.traits) {
            let req = Request::new(super::session::Method::PUT, format!("/traits/{}", path_segment(t))).microversion(TRAITS_VERSION);
            self.client.call(Auth::Service, &req).await?;
        }
        Ok(())
    }

    /// Replaces the provider's traits at `generation`; the new generation on success.
    pub async fn set_traits(&self, uuid: &str, generation: i64, traits: &BTreeSet<String>) -> Result<i64, OpenStackError> {
        let req = Request::put(
            format!("/resource_providers/{}/traits", path_segment(uuid)),
            json!({"resource_provider_generation": generation, "traits": traits}),
        )
        .microversion(TRAITS_VERSION);
        let b: Value = self.client.call(Auth::Service, &req).await?.json()?;
        Ok(b.get("resource_provider_generation").and_then(Value::as_i64).unwrap_or(generation + 1))
    }

    /// zun's `_update_to_placement`: the provider exists (created with uuid and name),
    /// its inventories are what the host has, its traits carry the disabled trait exactly
    /// when the service is disabled. Generation conflicts (another writer) and 5xx answers
    /// are refreshed and retried up to seven times, with a jittered backoff from 20 ms.
    pub async fn sync_provider(&self, node: &NodeReport) -> Result<SyncReport, OpenStackError> {
        if !is_uuid(&node.uuid) {
            return Err(bad_input("POST /resource_providers", "a provider id that is not a uuid"));
        }
        self.negotiate().await?;
        use backon::{ExponentialBuilder, Retryable};
        let report = std::sync::Mutex::new(SyncReport::default());
        let attempt = || async {
            let mut r = report.lock().map(|g| g.clone()).unwrap_or_default();
            let res = self.sync_once(node, &mut r).await;
            if let Ok(mut g) = report.lock() {
                *g = r;
            }
            res
        };
        attempt
            .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(20)).with_max_delay(Duration::from_secs(1)).with_jitter().with_max_times(CONFLICT_RETRIES))
            // A 5xx is retried too: Placement answers 500 when its database deadlocks
            // under concurrent writes to one provider (seen with a concurrent trait writer).
            .when(|e: &OpenStackError| is_generation_conflict(e) || e.status().is_some_and(|s| s >= 500))
            .notify(|e, _| {
                if let Ok(mut g) = report.lock() {
                    g.conflicts += 1;
                }
                tracing::info!(rp_uuid = %node.uuid, error = %e, "resource provider update refused (generation conflict or server error); refreshing and retrying");
            })
            .await?;
        Ok(report.into_inner().unwrap_or_default())
    }

    async fn sync_once(&self, node: &NodeReport, report: &mut SyncReport) -> Result<(), OpenStackError> {
        if self.get_provider(&node.uuid).await?.is_none() {
            self.create_provider(&node.uuid, &node.name).await?;
            report.created = true;
        }
        let (generation, existing) = self.get_inventories(&node.uuid).await?;
        let wanted = compute_inventories(&node.host, &node.policy, &existing);
        let mut generation = generation;
        if wanted != existing {
            generation = self.set_inventories(&node.uuid, generation, &wanted).await?;
            report.inventories_updated = true;
        }
        let (tgen, current) = self.get_traits(&node.uuid).await?;
        generation = generation.max(tgen);
        let wanted = desired_traits(&current, node.service_disabled);
        if wanted != current {
            let added: BTreeSet<String> = wanted.difference(&current).cloned().collect();
            self.ensure_traits(&added).await?;
            generation = self.set_traits(&node.uuid, tgen, &wanted).await?;
            report.traits_updated = true;
        }
        report.generation = generation;
        Ok(())
    }

    pub async fn get_allocations(&self, consumer: &str) -> Result<ConsumerAllocations, OpenStackError> {
        if !is_uuid(consumer) {
            return Err(bad_input("GET /allocations", "a consumer id that is not a uuid"));
        }
        let req = Request::get(format!("/allocations/{}", path_segment(consumer))).microversion(ALLOCATIONS_VERSION);
        self.client.call(Auth::Service, &req).await?.json()
    }

    /// Frees a container's allocation as zun does (read it, then `PUT` it empty at the
    /// consumer generation read), retrying a consumer generation conflict a few times.
    /// `Ok(false)` when there was nothing to free.
    pub async fn free_allocation(&self, consumer: &str) -> Result<bool, OpenStackError> {
        let mut last = None;
        for _ in 0..CONFLICT_ATTEMPTS {
            let mut current = self.get_allocations(consumer).await?;
            if current.allocations.is_empty() {
                return Ok(false);
            }
            current.allocations.clear();
            let body = json!({
                "allocations": {},
                "consumer_generation": current.consumer_generation,
                "project_id": current.project_id,
                "user_id": current.user_id,
            });
            let req = Request::put(format!("/allocations/{}", path_segment(consumer)), body).microversion(ALLOCATIONS_VERSION);
            let r = self.client.send(Auth::Service, &req).await?;
            if r.is_success() {
                tracing::info!(consumer = %consumer, "freed the Placement allocation");
                return Ok(true);
            }
            let e = r.error();
            if r.status == 409 {
                last = Some(e);
                continue;
            }
            return Err(e);
        }
        Err(last.expect("at least one attempt"))
    }

    /// `DELETE /allocations/{consumer}`: `Ok(false)` when there was none.
    pub async fn delete_allocation(&self, consumer: &str) -> Result<bool, OpenStackError> {
        if !is_uuid(consumer) {
            return Err(bad_input("DELETE /allocations", "a consumer id that is not a uuid"));
        }
        let r = self.client.send(Auth::Service, &Request::delete(format!("/allocations/{}", path_segment(consumer)))).await?;
        if r.status == 404 {
            return Ok(false);
        }
        r.check()?;
        Ok(true)
    }

    /// `GET /resource_providers/{uuid}/allocations`: consumer uuid → resources.
    pub async fn provider_allocations(&self, uuid: &str) -> Result<BTreeMap<String, Value>, OpenStackError> {
        #[derive(Deserialize)]
        struct B {
            #[serde(default)]
            allocations: BTreeMap<String, Value>,
        }
        let req = Request::get(format!("/resource_providers/{}/allocations", path_segment(uuid)));
        let b: B = self.client.call(Auth::Service, &req).await?.json()?;
        Ok(b.allocations)
    }
}

/// Placement's "the generation you sent is stale".
pub fn is_generation_conflict(e: &OpenStackError) -> bool {
    e.status() == Some(409) && (e.code() == Some("placement.concurrent_update") || e.to_string().contains("generation"))
}

/// `"1.39"` → `(1, 39)`.
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> InventoryPolicy {
        InventoryPolicy::from_compute(&crate::config::ComputeSection::default())
    }

    const HOST: HostResources = HostResources { vcpus: 2, memory_mb: 24_000, disk_gb: 100 };

    #[test]
    fn zun_defaults() {
        let inv = compute_inventories(&HOST, &policy(), &BTreeMap::new());
        assert_eq!(
            serde_json::to_value(&inv).unwrap(),
            json!({
                "DISK_GB": {"total": 100, "reserved": 0, "min_unit": 1, "max_unit": 100, "step_size": 1, "allocation_ratio": 1.0},
                "MEMORY_MB": {"total": 24000, "reserved": 512, "min_unit": 1, "max_unit": 24000, "step_size": 1, "allocation_ratio": 1.5},
                "VCPU": {"total": 2, "reserved": 0, "min_unit": 1, "max_unit": 2, "step_size": 1, "allocation_ratio": 16.0}
            })
        );
    }

    #[test]
    fn configured_ratios_and_reserved_win() {
        let mut p = policy();
        p.cpu_allocation_ratio = Some(4.0);
        p.ram_allocation_ratio = Some(0.0); // zun: a falsy ratio is "unset"
        p.reserved_host_cpus = 1;
        p.reserved_host_memory_mb = 1024;
        p.reserved_host_disk_mb = 1025; // rounded up: 2 GB
        let mut existing = BTreeMap::new();
        existing.insert(
            MEMORY_MB.to_string(),
            Inventory { total: 1, reserved: 0, min_unit: 1, max_unit: 1, step_size: 1, allocation_ratio: 2.5 },
        );
        let inv = compute_inventories(&HOST, &p, &existing);
        assert_eq!(inv[VCPU].allocation_ratio, 4.0);
        assert_eq!(inv[VCPU].reserved, 1);
        // Unset ratio: the one already in Placement (set there by an operator) is kept.
        assert_eq!(inv[MEMORY_MB].allocation_ratio, 2.5);
        assert_eq!(inv[MEMORY_MB].reserved, 1024);
        assert_eq!(inv[DISK_GB].reserved, 2);
        assert_eq!(inv[DISK_GB].allocation_ratio, 1.0);
    }

    #[test]
    fn refuses_what_placement_would_refuse() {
        let host = HostResources { vcpus: 1, memory_mb: 256, disk_gb: 0 };
        let inv = compute_inventories(&host, &policy(), &BTreeMap::new());
        assert!(!inv.contains_key(DISK_GB));
        assert_eq!(inv[MEMORY_MB].reserved, 256);
        let mut p = policy();
        p.reserved_host_cpus = -3;
        assert_eq!(compute_inventories(&host, &p, &BTreeMap::new())[VCPU].reserved, 0);
    }

    #[test]
    fn disabled_trait_follows_the_service() {
        let mut current = BTreeSet::new();
        current.insert("CUSTOM_OPERATOR_SET".to_string());
        let d = desired_traits(&current, true);
        assert!(d.contains(TRAIT_COMPUTE_STATUS_DISABLED) && d.contains("CUSTOM_OPERATOR_SET"));
        let e = desired_traits(&d, false);
        assert_eq!(e, current);
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("1.39"), Some((1, 39)));
        assert!(parse_version("1.9").unwrap() < REQUIRED_MICROVERSION);
        assert_eq!(parse_version("x"), None);
    }

    #[test]
    fn conflicts_are_recognised() {
        let e = OpenStackError::Status {
            service: Service::Placement,
            call: "PUT /x".into(),
            status: 409,
            code: Some("placement.concurrent_update".into()),
            detail: "".into(),
        };
        assert!(is_generation_conflict(&e));
        let e = OpenStackError::Status {
            service: Service::Placement,
            call: "PUT /x".into(),
            status: 409,
            code: Some("placement.inventory.inuse".into()),
            detail: "in use".into(),
        };
        assert!(!is_generation_conflict(&e));
    }
}
