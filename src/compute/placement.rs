//! The compute host's part of Placement (zun's `ComputeNodeTracker._update_to_placement`
//! and `delete_allocation_for_container`), deciding what to report and when; the HTTP
//! lives in [`crate::openstack::placement`].
//!
//! - Every inventory pass (start-up and each period) reports the node: resource provider
//!   uuid = `compute_node.uuid` (= `rp_uuid`), name = `[DEFAULT] host`, inventories from
//!   the host, the disabled trait from the `zun_service` row.
//! - A container's allocation (made by zun-api's scheduler) is freed when the container is
//!   deleted and when its create fails on this host (zun leaks it then).
//! - Freeing is never lost: when Placement cannot be reached at that moment, the same
//!   inventory pass that reports the node also frees every allocation on our provider
//!   whose container row is gone, or is in Error without a host (a failed create). The
//!   truth is in Placement and zun's database, so a restart loses nothing either.
use super::Services;
use crate::openstack::placement::{HostResources, InventoryPolicy, NodeReport, SyncReport};
use crate::openstack::OpenStackError;
use crate::store::ComputeNodeRecord;
use serde_json::Value;

/// Frees the allocation of container `uuid`, best effort: a failure is logged and left to
/// the next inventory pass's reconciliation.
pub async fn free_container_allocation(svc: &Services, uuid: &str, why: &str) {
    let Some(placement) = svc.placement.as_ref() else {
        return;
    };
    match placement.free_allocation(uuid).await {
        Ok(true) => {
            tracing::info!(container = %uuid, why, "freed the container's Placement allocation")
        }
        Ok(false) => tracing::debug!(container = %uuid, why, "no Placement allocation to free"),
        Err(e) => tracing::warn!(container = %uuid, why, error = %e,
            "could not free the container's Placement allocation now; the next inventory pass will"),
    }
}

/// What the host has for Placement: CPUs and memory of the compute node row, the raw size
/// of Docker's filesystem (zun reports it without `reserve_disk_for_image`).
pub fn host_resources(rec: &ComputeNodeRecord, disk_total_gb: i64) -> HostResources {
    HostResources { vcpus: rec.cpus, memory_mb: rec.mem_total, disk_gb: disk_total_gb }
}

/// Reports the node to Placement and frees leaked allocations. `Ok(None)` when the worker
/// runs without Placement.
pub async fn report_node(svc: &Services, rec: &ComputeNodeRecord, disk_total_gb: i64) -> Result<Option<SyncReport>, OpenStackError> {
    let Some(placement) = svc.placement.as_ref() else {
        return Ok(None);
    };
    let rp_uuid = if rec.rp_uuid.is_empty() { rec.uuid.clone() } else { rec.rp_uuid.clone() };
    let service_disabled = match svc.store.service_get(&svc.host, crate::periodic::BINARY).await {
        Ok(Some(row)) => row.disabled,
        Ok(None) => {
            tracing::error!(host = %svc.host, "no zun_service row for this host; reporting it enabled");
            false
        }
        Err(e) => {
            tracing::warn!(host = %svc.host, error = %e, "could not read the zun_service row; reporting it enabled");
            false
        }
    };
    let node = NodeReport {
        uuid: rp_uuid.clone(),
        name: svc.host.clone(),
        host: host_resources(rec, disk_total_gb),
        policy: InventoryPolicy::from_compute(&svc.settings.compute),
        service_disabled,
    };
    let report = placement.sync_provider(&node).await?;
    if report.created || report.inventories_updated || report.traits_updated {
        tracing::info!(rp_uuid = %rp_uuid, created = report.created, inventories = report.inventories_updated,
            traits = report.traits_updated, conflicts = report.conflicts, disabled = service_disabled, "reported the node to Placement");
    }
    reconcile_allocations(svc, &rp_uuid).await?;
    Ok(Some(report))
}

/// Frees the allocations on our provider that no live container needs: the row is gone
/// (deleted while Placement was away, or deleted by zun-api after a failed create), or
/// the row is in Error with no host (a create that failed).
pub async fn reconcile_allocations(svc: &Services, rp_uuid: &str) -> Result<usize, OpenStackError> {
    let Some(placement) = svc.placement.as_ref() else {
        return Ok(0);
    };
    let allocations = placement.provider_allocations(rp_uuid).await?;
    let mut freed = 0;
    for consumer in allocations.keys() {
        if uuid::Uuid::parse_str(consumer).is_err() {
            continue;
        }
        let leaked = match svc.store.container_get(consumer).await {
            Ok(None) => true,
            Ok(Some(c)) => failed_without_host(c.get_str("status"), c.get("host")),
            Err(e) => {
                tracing::warn!(consumer = %consumer, error = %e, "cannot read the container row; keeping its allocation");
                false
            }
        };
        if !leaked {
            continue;
        }
        match placement.free_allocation(consumer).await {
            Ok(true) => {
                freed += 1;
                tracing::info!(consumer = %consumer, "freed a leaked Placement allocation");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(consumer = %consumer, error = %e, "could not free a leaked Placement allocation")
            }
        }
    }
    Ok(freed)
}

/// A container whose allocation nobody needs: status Error with no host (a failed
/// create; zun-api deletes such rows by itself without telling the compute host).
pub fn failed_without_host(status: Option<&str>, host: Option<&Value>) -> bool {
    status == Some("Error") && host.is_none_or(|h| h.is_null() || h.as_str() == Some(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_failed_creates_without_host_are_leaked() {
        assert!(failed_without_host(Some("Error"), None));
        assert!(failed_without_host(Some("Error"), Some(&Value::Null)));
        assert!(!failed_without_host(Some("Error"), Some(&json!("node1"))));
        assert!(!failed_without_host(Some("Creating"), None));
        assert!(!failed_without_host(Some("Running"), Some(&json!("node1"))));
    }
}
