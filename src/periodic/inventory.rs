//! The compute-node inventory (`ComputeNodeTracker.update_available_resources`): host
//! memory from `/proc/meminfo`, disk from the Docker root directory's filesystem,
//! the rest from `docker info`; usage audited from this host's container rows.
use crate::compute::Services;
use crate::store::ComputeNodeRecord;
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("docker info: {0}")]
    Docker(#[from] crate::docker::DockerError),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// MiB figures from `/proc/meminfo`: (total, free, available).
pub fn meminfo(text: &str) -> (i64, i64, i64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<i64>().ok()))
            .unwrap_or(0)
            / 1024
    };
    (field("MemTotal:"), field("MemFree:"), field("MemAvailable:"))
}

/// GB of the filesystem holding `path` (zun: total minus `reserve_disk_for_image`).
fn disk_total_gb(path: &str, reserve: f64) -> i64 {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            let total = (s.blocks() as f64 * s.fragment_size() as f64 / (1u64 << 30) as f64) as i64;
            total - (total as f64 * reserve) as i64
        }
        Err(_) => 0,
    }
}

/// Builds the record from what the host and Docker say, keeping the row's identity.
pub async fn gather(svc: &Services, existing: Option<&ComputeNodeRecord>) -> Result<ComputeNodeRecord, InventoryError> {
    let info = svc.docker.info().await?;
    let (mem_total, mem_free, mem_available) = meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    let mut labels = Map::new();
    for l in &info.labels {
        if let Some((k, v)) = l.split_once('=') {
            labels.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    let cpuset: Vec<i64> = (0..info.ncpu).collect();
    let mut rec = existing.cloned().unwrap_or_default();
    rec.hostname = svc.host.clone();
    rec.numa_topology =
        json!({"nodes": [{"id": 0, "cpuset": cpuset, "pinned_cpus": [], "mem_total": mem_total, "mem_available": mem_available}]});
    rec.mem_total = mem_total;
    rec.mem_free = mem_free;
    rec.mem_available = mem_available;
    if existing.is_none() {
        rec.mem_used = mem_total - mem_available;
    }
    rec.total_containers = info.containers;
    rec.paused_containers = info.containers_paused;
    rec.stopped_containers = info.containers_stopped;
    rec.cpus = info.ncpu;
    rec.architecture = Some(info.architecture.clone());
    rec.os_type = Some(info.os_type.clone());
    rec.os = Some(info.operating_system.clone());
    rec.kernel_version = Some(info.kernel_version.clone());
    rec.labels = labels;
    rec.disk_total = disk_total_gb(&info.docker_root_dir, svc.settings.compute.reserve_disk_for_image);
    rec.disk_quota_supported = svc.disk_quota_supported;
    rec.runtimes = if info.runtimes.is_empty() { vec!["runc".into()] } else { info.runtimes.clone() };
    Ok(rec)
}

/// One inventory pass: upsert the row, then audit usage from the container rows.
pub async fn refresh(svc: &Services) -> Result<ComputeNodeRecord, InventoryError> {
    let _lock = svc.claims.lock().await;
    let existing = svc.store.compute_node_get(&svc.host).await?;
    let rec = gather(svc, existing.as_ref()).await?;
    svc.store.compute_node_upsert(&rec).await?;
    Ok(svc.store.compute_node_recompute_usage(&svc.host).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_in_mib() {
        let text = "MemTotal:       24576000 kB\nMemFree:        20480000 kB\nMemAvailable:   22528000 kB\n";
        assert_eq!(meminfo(text), (24000, 20000, 22000));
    }
}
