//! Resource claims, as zun's `Claim._claim_test`: each requested resource is tested
//! against the scheduler's `limits` (a missing limit means unlimited) minus what the
//! compute node already uses. Pure logic; the caller holds the resources lock and
//! records the usage.
use crate::oslo::pyjson::py_float_repr as py_float;
use serde_json::{Map, Value};

/// What a container asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Request {
    pub memory_mb: i64,
    pub cpu: f64,
    pub disk_gb: i64,
}

impl Request {
    /// zun's NopClaim case: nothing asked, nothing claimed (and, on master, no host set).
    pub fn is_empty(&self) -> bool {
        self.memory_mb == 0 && self.cpu == 0.0 && self.disk_gb == 0
    }
}

/// What the compute node already uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub mem_used_mb: i64,
    pub cpu_used: f64,
    pub disk_used_gb: i64,
}

fn limit(limits: &Map<String, Value>, key: &str) -> Option<f64> {
    limits.get(key).and_then(|v| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

fn test(kind: &str, unit: &str, used: f64, requested: String, requested_n: f64, limit: Option<f64>) -> Option<String> {
    let limit = limit?;
    let free = limit - used;
    (requested_n > free).then(|| format!("Free {kind} {free:.2} {unit} < requested {requested} {unit}"))
}

/// `Ok` when the claim fits; otherwise zun's `ResourcesUnavailable` message.
pub fn claim_test(req: &Request, usage: &Usage, limits: &Map<String, Value>) -> Result<(), String> {
    let reasons: Vec<String> = [
        test("memory", "MB", usage.mem_used_mb as f64, req.memory_mb.to_string(), req.memory_mb as f64, limit(limits, "memory")),
        test("vcpu", "VCPU", usage.cpu_used, py_float(req.cpu), req.cpu, limit(limits, "cpu")),
        test("disk", "GB", usage.disk_used_gb as f64, req.disk_gb.to_string(), req.disk_gb as f64, limit(limits, "disk")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(format!("Insufficient compute resources: {}.", reasons.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn no_limits_means_unlimited() {
        let r = Request { memory_mb: 1 << 40, cpu: 1000.0, disk_gb: 1 << 30 };
        assert!(claim_test(&r, &Usage::default(), &Map::new()).is_ok());
    }

    #[test]
    fn over_the_memory_limit_gives_zuns_message() {
        let r = Request { memory_mb: 4096, cpu: 0.5, disk_gb: 0 };
        let u = Usage { mem_used_mb: 812, cpu_used: 0.0, disk_used_gb: 0 };
        let e = claim_test(&r, &u, &limits(json!({"memory": 1024, "cpu": 8}))).unwrap_err();
        assert_eq!(e, "Insufficient compute resources: Free memory 212.00 MB < requested 4096 MB.");
    }

    #[test]
    fn several_reasons_are_joined() {
        let r = Request { memory_mb: 100, cpu: 2.0, disk_gb: 20 };
        let u = Usage { mem_used_mb: 0, cpu_used: 1.5, disk_used_gb: 0 };
        let e = claim_test(&r, &u, &limits(json!({"memory": 50, "cpu": 2, "disk": 10}))).unwrap_err();
        assert_eq!(
            e,
            "Insufficient compute resources: Free memory 50.00 MB < requested 100 MB; \
             Free vcpu 0.50 VCPU < requested 2.0 VCPU; Free disk 10.00 GB < requested 20 GB."
        );
    }

    #[test]
    fn requested_vcpus_print_as_python_does() {
        // zun formats the request with Python's str(float): 1e-05, not 0.00001.
        let u = Usage { mem_used_mb: 0, cpu_used: 1.0, disk_used_gb: 0 };
        let r = Request { memory_mb: 0, cpu: 1e-5, disk_gb: 0 };
        let e = claim_test(&r, &u, &limits(json!({"cpu": 1}))).unwrap_err();
        assert_eq!(e, "Insufficient compute resources: Free vcpu 0.00 VCPU < requested 1e-05 VCPU.");
    }

    #[test]
    fn exactly_fitting_is_fine() {
        let r = Request { memory_mb: 512, cpu: 1.0, disk_gb: 10 };
        assert!(claim_test(&r, &Usage::default(), &limits(json!({"memory": 512, "cpu": 1.0, "disk": 10}))).is_ok());
    }
}
