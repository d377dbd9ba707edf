//! One Docker stats sample → zun's `container_stats` dict (pure).
//!
//! zun's `DockerDriver.stats` (master) computes, from a single `stats(stream=False)` sample:
//! - `CPU %` = `cpu_usage.total_usage / system_cpu_usage * 100` (no delta is taken);
//! - `MEM USAGE(MiB)` = (`usage` − `total_inactive_file` (cgroup v1) or `inactive_file`
//!   (v2), whichever is non-zero first) / 2^20; `MEM LIMIT(MiB)` = `limit` / 2^20;
//!   `MEM %` = usage / limit * 100 — all floats;
//! - `BLOCK I/O(B)` = `"<read>/<write>"` summed over `io_service_bytes_recursive` by `op`;
//! - `NET I/O(B)` = `"<rx>/<tx>"` summed over `networks` (absent with CNI: `"0/0"`);
//! - `CONTAINER` = the container's (user-visible) name.
//!
//! Keys come in zun's order. Floats are written the way Python's `json` writes them
//! (`64.0`, `3.2e-05`).

use crate::oslo::pyjson::py_float_value as py_float;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// A key zun reads unconditionally is missing (zun fails with a KeyError).
    #[error("stats sample has no {0}")]
    Missing(&'static str),
    /// zun would divide by zero (e.g. a stopped container reports no usage).
    #[error("stats sample has a zero {0}")]
    Zero(&'static str),
}

fn num(v: Option<&Value>, what: &'static str) -> Result<f64, StatsError> {
    v.and_then(Value::as_f64).ok_or(StatsError::Missing(what))
}

/// Integer sums as Python keeps them (ints stay ints).
fn int(v: Option<&Value>) -> i128 {
    match v {
        Some(Value::Number(n)) => {
            n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)).or_else(|| n.as_f64().map(|f| f as i128)).unwrap_or(0)
        }
        _ => 0,
    }
}

/// Builds zun's stats dict from one raw Docker stats sample.
pub fn zun_stats(container_name: Option<&str>, raw: &Value) -> Result<Map<String, Value>, StatsError> {
    let cpu = raw.get("cpu_stats").ok_or(StatsError::Missing("cpu_stats"))?;
    let cpu_usage = num(cpu.get("cpu_usage").and_then(|u| u.get("total_usage")), "cpu_stats.cpu_usage.total_usage")?;
    let system = num(cpu.get("system_cpu_usage"), "cpu_stats.system_cpu_usage")?;
    if system == 0.0 {
        return Err(StatsError::Zero("cpu_stats.system_cpu_usage"));
    }
    let cpu_percent = cpu_usage / system * 100.0;

    let mem = raw.get("memory_stats").ok_or(StatsError::Missing("memory_stats"))?;
    let mut cache: i128 = 0;
    if let Some(s) = mem.get("stats").filter(|s| s.as_object().is_some_and(|m| !m.is_empty())) {
        let v1 = int(s.get("total_inactive_file"));
        let v2 = int(s.get("inactive_file"));
        cache = if v1 != 0 { v1 } else { v2 };
    }
    let usage = int(Some(mem.get("usage").ok_or(StatsError::Missing("memory_stats.usage"))?));
    let limit = num(mem.get("limit"), "memory_stats.limit")?;
    let mem_usage = (usage - cache) as f64 / 1024.0 / 1024.0;
    let mem_limit = limit / 1024.0 / 1024.0;
    if mem_limit == 0.0 {
        return Err(StatsError::Zero("memory_stats.limit"));
    }
    let mem_percent = mem_usage / mem_limit * 100.0;

    let (mut io_read, mut io_write) = (0i128, 0i128);
    let blk = raw.get("blkio_stats").ok_or(StatsError::Missing("blkio_stats"))?.get("io_service_bytes_recursive").and_then(Value::as_array);
    for item in blk.into_iter().flatten() {
        match item.get("op").and_then(Value::as_str).map(str::to_lowercase).as_deref() {
            Some("read") => io_read += int(item.get("value")),
            Some("write") => io_write += int(item.get("value")),
            _ => {}
        }
    }

    let (mut rx, mut tx) = (0i128, 0i128);
    if let Some(nets) = raw.get("networks").and_then(Value::as_object) {
        for v in nets.values() {
            rx += int(v.get("rx_bytes"));
            tx += int(v.get("tx_bytes"));
        }
    }

    let mut m = Map::new();
    m.insert("CONTAINER".into(), container_name.map(|n| Value::String(n.into())).unwrap_or(Value::Null));
    m.insert("CPU %".into(), py_float(cpu_percent));
    m.insert("MEM USAGE(MiB)".into(), py_float(mem_usage));
    m.insert("MEM LIMIT(MiB)".into(), py_float(mem_limit));
    m.insert("MEM %".into(), py_float(mem_percent));
    m.insert("BLOCK I/O(B)".into(), Value::String(format!("{io_read}/{io_write}")));
    m.insert("NET I/O(B)".into(), Value::String(format!("{rx}/{tx}")));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "read": "2026-11-28T15:16:32.062401444Z",
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 254, "minor": 0, "op": "Read", "value": 4096},
                {"major": 254, "minor": 0, "op": "Write", "value": 8192},
                {"major": 254, "minor": 0, "op": "Sync", "value": 1},
                {"major": 254, "minor": 1, "op": "read", "value": 10}
            ]},
            "cpu_stats": {"cpu_usage": {"total_usage": 29007554}, "system_cpu_usage": 1714930000000u64, "online_cpus": 2},
            "memory_stats": {"usage": 67108864, "limit": 134217728,
                             "stats": {"total_inactive_file": 1048576, "inactive_file": 5}},
            "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 200}, "eth1": {"rx_bytes": 1, "tx_bytes": 2}}
        })
    }

    #[test]
    fn zun_dict() {
        let m = zun_stats(Some("web-1"), &sample()).unwrap();
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(keys, ["CONTAINER", "CPU %", "MEM USAGE(MiB)", "MEM LIMIT(MiB)", "MEM %", "BLOCK I/O(B)", "NET I/O(B)"]);
        assert_eq!(m["CONTAINER"], "web-1");
        // Python: float(29007554) / float(1714930000000) * 100
        assert_eq!(serde_json::to_string(&m["CPU %"]).unwrap(), "0.0016914716052550249");
        assert_eq!(serde_json::to_string(&m["MEM USAGE(MiB)"]).unwrap(), "63.0");
        assert_eq!(serde_json::to_string(&m["MEM LIMIT(MiB)"]).unwrap(), "128.0");
        assert_eq!(serde_json::to_string(&m["MEM %"]).unwrap(), "49.21875");
        assert_eq!(m["BLOCK I/O(B)"], "4106/8192");
        assert_eq!(m["NET I/O(B)"], "1001/202");
    }

    #[test]
    fn cgroup_v2_and_no_network() {
        let mut s = sample();
        s["memory_stats"]["stats"] = json!({"inactive_file": 2097152});
        s.as_object_mut().unwrap().remove("networks");
        s["blkio_stats"]["io_service_bytes_recursive"] = Value::Null;
        let m = zun_stats(None, &s).unwrap();
        assert_eq!(serde_json::to_string(&m["MEM USAGE(MiB)"]).unwrap(), "62.0");
        assert_eq!(m["NET I/O(B)"], "0/0");
        assert_eq!(m["BLOCK I/O(B)"], "0/0");
        assert_eq!(m["CONTAINER"], Value::Null);
    }

    #[test]
    fn errors_where_zun_fails() {
        let mut s = sample();
        s["memory_stats"] = json!({});
        assert_eq!(zun_stats(None, &s), Err(StatsError::Missing("memory_stats.usage")));
        let mut s = sample();
        s["cpu_stats"]["system_cpu_usage"] = json!(0);
        assert!(matches!(zun_stats(None, &s), Err(StatsError::Zero(_))));
    }

    #[test]
    fn python_float_repr() {
        let t = |f: f64| serde_json::to_string(&py_float(f)).unwrap();
        assert_eq!(t(64.0), "64.0");
        assert_eq!(t(0.5), "0.5");
        assert_eq!(t(3.2e-5), "3.2e-05");
        assert_eq!(t(1e-5), "1e-05");
        assert_eq!(t(0.0001), "0.0001");
        assert_eq!(t(1e16), "1e+16");
        assert_eq!(t(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(t(1234567890123456.0), "1234567890123456.0");
        assert_eq!(t(0.0), "0.0");
    }
}
