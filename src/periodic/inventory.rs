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
    #[error("{0}")]
    Placement(#[from] crate::openstack::OpenStackError),
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

/// Whole GiB of the filesystem holding `path` (zun's `get_total_disk_for_container`),
/// `/` when `path` does not exist, 0 when neither can be read.
pub fn filesystem_gb(path: &str) -> i64 {
    let stat = nix::sys::statvfs::statvfs(path).or_else(|_| nix::sys::statvfs::statvfs("/"));
    match stat {
        Ok(s) => (s.blocks() as f64 * s.fragment_size() as f64 / (1u64 << 30) as f64) as i64,
        Err(_) => 0,
    }
}

/// GB for containers (zun: total minus `reserve_disk_for_image`).
fn disk_total_gb(total: i64, reserve: f64) -> i64 {
    total - (total as f64 * reserve) as i64
}

/// Builds the record from what the host and Docker say, keeping the row's identity; with
/// it the raw size (GiB) of Docker's filesystem, which Placement gets.
pub async fn gather(svc: &Services, existing: Option<&ComputeNodeRecord>) -> Result<(ComputeNodeRecord, i64), InventoryError> {
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
    rec.numa_topology = json!({"nodes": [{"id": 0, "cpuset": cpuset, "pinned_cpus": [], "mem_total": mem_total, "mem_available": mem_available}]});
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
    let fs_gb = filesystem_gb(&info.docker_root_dir);
    rec.disk_total = disk_total_gb(fs_gb, svc.settings.compute.reserve_disk_for_image);
    rec.disk_quota_supported = svc.disk_quota_supported;
    rec.runtimes = if info.runtimes.is_empty() { vec!["runc".into()] } else { info.runtimes.clone() };
    Ok((rec, fs_gb))
}

/// One inventory pass: upsert the row, audit usage from the container rows, then (with
/// OpenStack configured) report the node to Placement and free leaked allocations. The
/// row is written even when Placement is down; that error comes back after it.
pub async fn refresh(svc: &Services) -> Result<ComputeNodeRecord, InventoryError> {
    let (rec, fs_gb) = {
        let _lock = svc.claims.lock().await;
        let existing = svc.store.compute_node_get(&svc.host).await?;
        let (rec, fs_gb) = gather(svc, existing.as_ref()).await?;
        svc.store.compute_node_upsert(&rec).await?;
        (svc.store.compute_node_recompute_usage(&svc.host).await?, fs_gb)
    };
    crate::compute::placement::report_node(svc, &rec, fs_gb).await?;
    Ok(rec)
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
