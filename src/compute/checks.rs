//! What the domain checks in a container object from the wire before it touches Docker,
//! the compute node's usage or arithmetic. Pure logic.
//!
//! - The `uuid` names the Docker container (`zun-<uuid>`) and appears in URLs: letters,
//!   digits, `-` and `_` only, at most 64 of them (zun's are canonical UUIDs).
//! - `container_id` is what Docker answered at create: 12 to 64 lower-case hex digits, or
//!   this container's own name `zun-<uuid>`. Anything else (`../images/x`, `id?force=1`)
//!   is refused before any Docker call; the operation then checks that the Docker
//!   container it found is named `zun-<uuid>` (`Op::docker_id`).
//! - `memory` (MB), `cpu` and `disk` (GB) are bounded so that every product and sum the
//!   worker computes from them fits: memory ≤ 2^31-1 MB (zun's `compute_node.mem_used` is
//!   an INT column; ×2^20 fits an i64), `cpu` ≤ 256 (Docker's `CpuShares` maximum is
//!   262144 = 1024 × 256), disk ≤ 2^31-1 GB. Negative, NaN and infinite values are refused.
use super::claims;
use crate::oslo::Container;
use serde_json::Value;

/// The largest `memory` (MB) and `disk` (GB) accepted: zun's INT usage columns.
pub const MAX_MB: i64 = i32::MAX as i64;
pub const MAX_DISK_GB: i64 = i32::MAX as i64;
/// The largest `cpu`: Docker's CpuShares maximum (262144) / 1024.
pub const MAX_CPU: f64 = 256.0;

/// A value from the wire, shown in an error without control characters and bounded.
pub fn shown(v: &str) -> String {
    let mut s: String = v.chars().take(80).flat_map(char::escape_debug).collect();
    if v.chars().count() > 80 {
        s.push('…');
    }
    s
}

/// `uuid`: `[A-Za-z0-9_-]{1,64}`.
pub fn check_uuid(uuid: &str) -> Result<(), String> {
    let ok = !uuid.is_empty() && uuid.len() <= 64 && uuid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("Invalid container uuid \"{}\": letters, digits, '-' and '_' only", shown(uuid)))
    }
}

/// True for a Docker container id as Docker prints it (full or short).
pub fn is_docker_id(id: &str) -> bool {
    (12..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `container_id`: a Docker id, or `zun-<uuid>` of this very container.
pub fn check_container_id(id: &str, uuid: &str) -> Result<(), String> {
    if is_docker_id(id) || id.strip_prefix(crate::docker::NAME_PREFIX) == Some(uuid) {
        Ok(())
    } else {
        Err(format!("Invalid container_id \"{}\" for container {uuid}: not a Docker container id", shown(id)))
    }
}

/// The uuid and container_id of an object, checked.
pub fn check_docker_refs(c: &Container) -> Result<(), String> {
    let uuid = c.uuid().unwrap_or_default();
    check_uuid(uuid)?;
    match c.get("container_id") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(id)) => check_container_id(id, uuid),
        Some(other) => Err(format!("Invalid container_id {}: not a string", shown(&other.to_string()))),
    }
}

/// zun's `memory`: a string of MB (`"512"`, queens `"512M"`) or a number; absent = 0.
pub fn memory_mb(v: Option<&Value>) -> Result<i64, String> {
    let mb = match v {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::String(s)) => {
            let t = s.trim().trim_end_matches(['M', 'm']).trim();
            if t.is_empty() {
                return Ok(0);
            }
            t.parse::<i64>().map_err(|_| format!("Invalid memory \"{}\": a number of MB is expected", shown(s)))?
        }
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => i,
            None => return Err(format!("Invalid memory {}: a whole number of MB is expected", shown(&n.to_string()))),
        },
        Some(other) => return Err(format!("Invalid memory {}: a number of MB is expected", shown(&other.to_string()))),
    };
    if !(0..=MAX_MB).contains(&mb) {
        return Err(format!("Invalid memory {mb} MB: out of range (0 to {MAX_MB})"));
    }
    Ok(mb)
}

/// `cpu`: a finite number from 0 to [`MAX_CPU`]; absent = 0.
pub fn cpu(v: Option<&Value>) -> Result<f64, String> {
    let cpu = match v {
        None | Some(Value::Null) => return Ok(0.0),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(s)) => s.trim().parse::<f64>().unwrap_or(f64::NAN),
        Some(_) => f64::NAN,
    };
    if !cpu.is_finite() || !(0.0..=MAX_CPU).contains(&cpu) {
        let raw = v.map(Value::to_string).unwrap_or_default();
        return Err(format!("Invalid cpu {}: out of range (0 to {MAX_CPU})", shown(&raw)));
    }
    Ok(cpu)
}

/// `disk` (GB): a whole number from 0 to [`MAX_DISK_GB`]; absent = 0.
pub fn disk_gb(v: Option<&Value>) -> Result<i64, String> {
    let disk = match v {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    match disk {
        Some(d) if (0..=MAX_DISK_GB).contains(&d) => Ok(d),
        _ => {
            let raw = v.map(Value::to_string).unwrap_or_default();
            Err(format!("Invalid disk {} GB: out of range (0 to {MAX_DISK_GB})", shown(&raw)))
        }
    }
}

/// What a container asks for, every figure checked.
pub fn resources(c: &Container) -> Result<claims::Request, String> {
    Ok(claims::Request { memory_mb: memory_mb(c.get("memory"))?, cpu: cpu(c.get("cpu"))?, disk_gb: disk_gb(c.get("disk"))? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuids_and_container_ids() {
        assert!(check_uuid("0f3c1a2e-6f0b-4f7e-9f43-1c5d2e3f4a5b").is_ok());
        for bad in ["", "../x", "a?b", "a/b", "a\nb", &"a".repeat(65)] {
            assert!(check_uuid(bad).is_err(), "{bad:?}");
        }
        let id = "4f3c".repeat(16);
        assert!(check_container_id(&id, "u").is_ok());
        assert!(check_container_id(&id[..12], "u").is_ok());
        assert!(check_container_id("zun-u", "u").is_ok());
        for bad in ["zun-v", "../images/busybox", "abc", "4f3c4f3c4f3c?force=1", "4F3C4F3C4F3C4F3C", "zun-u/../x"] {
            assert!(check_container_id(bad, "u").is_err(), "{bad:?}");
        }
        let e = check_container_id("a\nforged log line", "u").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn resource_bounds() {
        assert_eq!(memory_mb(Some(&json!("512"))), Ok(512));
        assert_eq!(memory_mb(Some(&json!("512M"))), Ok(512));
        assert_eq!(memory_mb(None), Ok(0));
        assert!(memory_mb(Some(&json!("17592186044416"))).is_err());
        assert!(memory_mb(Some(&json!("-64"))).is_err());
        assert!(memory_mb(Some(&json!("1G"))).is_err());
        assert!(memory_mb(Some(&json!(1.5))).is_err());
        assert_eq!(cpu(Some(&json!(0.5))), Ok(0.5));
        for bad in [json!(-1.0), json!(1e300), json!("nan"), json!("inf"), json!(257), json!([1])] {
            assert!(cpu(Some(&bad)).is_err(), "{bad}");
        }
        assert_eq!(disk_gb(Some(&json!(10))), Ok(10));
        assert!(disk_gb(Some(&json!(-1))).is_err());
        assert!(disk_gb(Some(&json!(1u64 << 40))).is_err());
        // Every product the worker forms from checked values fits.
        assert!(MAX_MB.checked_mul(1024 * 1024).is_some());
        assert!((1024.0 * MAX_CPU) as i64 <= 262_144);
    }
}
