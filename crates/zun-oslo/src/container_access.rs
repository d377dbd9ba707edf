//! Typed accessors of [`Container`]: the domain reads and writes fields through these,
//! while `data` stays in zun's wire form.
//!
//! Getters are tolerant (they accept every form the real server accepts: numbers in
//! string fields, queens' string `command`, `"512M"` memory, raw dicts in Json fields)
//! and return `None` for unset, null or unusable values. Setters write the wire form
//! for the object's version (e.g. `command` as a string before 1.33) and mark the
//! field changed.
use crate::container_fields::{parse_isotime, py_float};
use crate::container_types::{shlex_join, shlex_split, Cpuset, Healthcheck, RestartPolicy, Status, TaskState};
use crate::object::{Container, ObjectPrimitive};
use crate::pyjson;
use chrono::NaiveDateTime;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// zun's DateTimeField wire form.
pub const WIRE_DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

fn opt_str(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::String)
}

macro_rules! str_fields {
    ($($get:ident, $set:ident, $field:literal;)*) => {
        $(
            #[doc = concat!("`", $field, "` (string field).")]
            pub fn $get(&self) -> Option<String> {
                self.get_string($field)
            }
            #[doc = concat!("Sets `", $field, "` (`None` writes null).")]
            pub fn $set(&mut self, value: Option<&str>) {
                self.set($field, opt_str(value.map(str::to_string)));
            }
        )*
    };
}

macro_rules! bool_fields {
    ($($get:ident, $set:ident, $field:literal;)*) => {
        $(
            #[doc = concat!("`", $field, "` (Python truthiness; `None` when unset or null).")]
            pub fn $get(&self) -> Option<bool> {
                self.get_bool($field)
            }
            #[doc = concat!("Sets `", $field, "`.")]
            pub fn $set(&mut self, value: Option<bool>) {
                self.set($field, value.map_or(Value::Null, Value::Bool));
            }
        )*
    };
}

impl Container {
    /// A string field as Python's `StringField` would hold it (numbers stringified).
    pub fn get_string(&self, field: &str) -> Option<String> {
        match self.get(field)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            v @ (Value::Number(_) | Value::Bool(_)) => Some(pyjson::py_str(v)),
            _ => None,
        }
    }

    fn get_bool(&self, field: &str) -> Option<bool> {
        Some(match self.get(field)? {
            Value::Null => return None,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_none_or(|f| f != 0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        })
    }

    fn get_i64(&self, field: &str) -> Option<i64> {
        match self.get(field)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc() as i64)),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::String(s) => crate::version::py_int(s).ok(),
            _ => None,
        }
    }

    fn get_str_list(&self, field: &str) -> Option<Vec<String>> {
        match self.get(field)? {
            Value::Array(a) => Some(a.iter().filter_map(|x| if x.is_null() { None } else { Some(pyjson::py_str(x)) }).collect()),
            // queens: `command` was a plain string.
            Value::String(s) => shlex_split(s).ok(),
            _ => None,
        }
    }

    fn get_str_map(&self, field: &str) -> Option<BTreeMap<String, String>> {
        match self.get(field)? {
            Value::Object(m) => Some(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), pyjson::py_str(v))).collect()),
            _ => None,
        }
    }

    fn set_str_map(&mut self, field: &str, value: Option<&BTreeMap<String, String>>) {
        let v = value.map_or(Value::Null, |m| Value::Object(m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()));
        self.set(field, v);
    }

    /// A JsonField parsed (the wire holds a JSON string; a raw value is tolerated).
    pub fn get_json(&self, field: &str) -> Option<Value> {
        match self.get(field)? {
            Value::Null => None,
            Value::String(s) => pyjson::parse(s).ok(),
            other => Some(other.clone()),
        }
    }

    /// Sets a JsonField: written as a JSON string, like zun's `json.dumps`.
    pub fn set_json(&mut self, field: &str, value: Option<&Value>) {
        self.set(field, value.map_or(Value::Null, |v| Value::String(pyjson::to_python_json(v))));
    }

    fn get_datetime(&self, field: &str) -> Option<NaiveDateTime> {
        parse_isotime(self.get(field)?.as_str()?)
    }

    fn set_datetime(&mut self, field: &str, value: Option<NaiveDateTime>) {
        self.set(field, opt_str(value.map(|t| t.format(WIRE_DATETIME_FORMAT).to_string())));
    }

    // ---- identity ----

    /// `id` (the DB primary key).
    pub fn id(&self) -> Option<i64> {
        self.get_i64("id")
    }

    pub fn set_id(&mut self, id: i64) {
        self.set("id", Value::from(id));
    }

    str_fields! {
        container_id, set_container_id, "container_id";
        name_field, set_name_field, "name";
        project_id, set_project_id, "project_id";
        user_id, set_user_id, "user_id";
        image, set_image, "image";
        image_pull_policy, set_image_pull_policy, "image_pull_policy";
        image_driver, set_image_driver, "image_driver";
        cpu_policy, set_cpu_policy, "cpu_policy";
        status_reason, set_status_reason, "status_reason";
        status_detail, set_status_detail, "status_detail";
        workdir, set_workdir, "workdir";
        hostname, set_hostname, "hostname";
        host, set_host, "host";
        runtime, set_runtime, "runtime";
        websocket_url, set_websocket_url, "websocket_url";
        websocket_token, set_websocket_token, "websocket_token";
    }

    bool_fields! {
        tty, set_tty, "tty";
        interactive, set_interactive, "interactive";
        privileged, set_privileged, "privileged";
        auto_remove, set_auto_remove, "auto_remove";
        auto_heal, set_auto_heal, "auto_heal";
    }

    pub fn set_uuid(&mut self, uuid: &str) {
        self.set("uuid", Value::String(uuid.into()));
    }

    // ---- state ----

    /// `status`; `None` when unset, null or not a valid status.
    pub fn status(&self) -> Option<Status> {
        Status::from_wire(&self.get_string("status")?)
    }

    /// A status transition, in one call: the status and its reason. `None` clears the
    /// reason, so a reason never outlives the status it explained.
    pub fn set_status(&mut self, status: Status, reason: Option<&str>) {
        self.set("status", Value::String(status.as_str().into()));
        self.set("status_reason", opt_str(reason.map(str::to_string)));
    }

    /// Whether the status is `status` (an unknown or missing wire value is not).
    pub fn status_is(&self, status: Status) -> bool {
        self.get_str("status") == Some(status.as_str())
    }

    pub fn task_state(&self) -> Option<TaskState> {
        TaskState::from_wire(&self.get_string("task_state")?)
    }

    pub fn set_task_state(&mut self, state: Option<TaskState>) {
        self.set("task_state", opt_str(state.map(|s| s.as_str().to_string())));
    }

    pub fn started_at(&self) -> Option<NaiveDateTime> {
        self.get_datetime("started_at")
    }

    /// Written as `YYYY-MM-DDTHH:MM:SSZ` (microseconds dropped, like zun).
    pub fn set_started_at(&mut self, t: Option<NaiveDateTime>) {
        self.set_datetime("started_at", t);
    }

    pub fn created_at(&self) -> Option<NaiveDateTime> {
        self.get_datetime("created_at")
    }

    pub fn updated_at(&self) -> Option<NaiveDateTime> {
        self.get_datetime("updated_at")
    }

    pub fn set_updated_at(&mut self, t: Option<NaiveDateTime>) {
        self.set_datetime("updated_at", t);
    }

    // ---- resources ----

    /// `memory` in MB. The wire is a string: `"512"` (master) or `"512M"` (queens,
    /// also `k`/`g` suffixes, case-insensitive); numbers are tolerated.
    pub fn memory(&self) -> Option<i64> {
        self.memory_mb().ok().flatten()
    }

    /// `memory` in MB, with the reason when it is set but not a usable size.
    pub fn memory_mb(&self) -> Result<Option<i64>, MemoryError> {
        memory_mb_of(self.get("memory"))
    }

    /// Writes `memory` as zun does: the MB count as a string.
    pub fn set_memory(&mut self, mb: Option<i64>) {
        self.set("memory", opt_str(mb.map(|m| m.to_string())));
    }

    /// `cpu` (a float: number of CPUs).
    pub fn cpu(&self) -> Option<f64> {
        match self.get("cpu")? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => py_float(s),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }

    pub fn set_cpu(&mut self, cpu: Option<f64>) {
        self.set("cpu", cpu.and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number));
    }

    /// `disk` in GB.
    pub fn disk(&self) -> Option<i64> {
        self.get_i64("disk")
    }

    pub fn set_disk(&mut self, gb: Option<i64>) {
        self.set("disk", gb.map_or(Value::Null, Value::from));
    }

    /// The nested `Cpuset` object.
    pub fn cpuset(&self) -> Option<Cpuset> {
        let p = ObjectPrimitive::from_value(self.get("cpuset")?).ok()?;
        Some(Cpuset::from_data(&p.data))
    }

    pub fn set_cpuset(&mut self, cpuset: Option<&Cpuset>) {
        self.set("cpuset", cpuset.map_or(Value::Null, |c| c.to_primitive().to_value()));
    }

    // ---- process ----

    /// `command` as argv. Queens (before 1.33) sent one string, split like `shlex`.
    pub fn command(&self) -> Option<Vec<String>> {
        self.get_str_list("command")
    }

    /// Writes `command` in the object's version form (string before 1.33).
    pub fn set_command(&mut self, argv: Option<&[String]>) {
        let v = match argv {
            None => Value::Null,
            Some(a) if self.container_minor() < 33 => Value::String(shlex_join(a)),
            Some(a) => Value::Array(a.iter().cloned().map(Value::String).collect()),
        };
        self.set("command", v);
    }

    pub fn entrypoint(&self) -> Option<Vec<String>> {
        self.get_str_list("entrypoint")
    }

    pub fn set_entrypoint(&mut self, argv: Option<&[String]>) {
        self.set("entrypoint", argv.map_or(Value::Null, |a| Value::Array(a.iter().cloned().map(Value::String).collect())));
    }

    pub fn environment(&self) -> Option<BTreeMap<String, String>> {
        self.get_str_map("environment")
    }

    pub fn set_environment(&mut self, env: Option<&BTreeMap<String, String>>) {
        self.set_str_map("environment", env);
    }

    pub fn labels(&self) -> Option<BTreeMap<String, String>> {
        self.get_str_map("labels")
    }

    pub fn set_labels(&mut self, labels: Option<&BTreeMap<String, String>>) {
        self.set_str_map("labels", labels);
    }

    /// queens' `meta` dict (holds `sandbox_id`); removed in 1.42.
    pub fn meta(&self) -> Option<BTreeMap<String, String>> {
        self.get_str_map("meta")
    }

    pub fn restart_policy(&self) -> Option<RestartPolicy> {
        RestartPolicy::from_wire(self.get("restart_policy")?.as_object()?)
    }

    pub fn set_restart_policy(&mut self, rp: Option<&RestartPolicy>) {
        self.set("restart_policy", rp.map_or(Value::Null, RestartPolicy::to_wire));
    }

    /// `healthcheck` parsed; `None` when unset, null or empty (`"{}"`).
    pub fn healthcheck(&self) -> Option<Healthcheck> {
        let v = self.get_json("healthcheck")?;
        if v.as_object().is_some_and(Map::is_empty) {
            return None;
        }
        Healthcheck::from_json(&v)
    }

    pub fn set_healthcheck(&mut self, h: Option<&Healthcheck>) {
        let v = h.map(Healthcheck::to_json);
        self.set_json("healthcheck", v.as_ref());
    }

    // ---- network ----

    /// `exposed_ports` (Json), e.g. `{"80/tcp": {}}`.
    pub fn exposed_ports(&self) -> Option<Value> {
        self.get_json("exposed_ports")
    }

    pub fn set_exposed_ports(&mut self, v: Option<&Value>) {
        self.set_json("exposed_ports", v);
    }

    /// `addresses` (Json): `{network_id: [{addr, version, port, ...}]}`.
    pub fn addresses(&self) -> Option<Value> {
        self.get_json("addresses")
    }

    pub fn set_addresses(&mut self, v: Option<&Value>) {
        self.set_json("addresses", v);
    }

    pub fn annotations(&self) -> Option<Value> {
        self.get_json("annotations")
    }

    pub fn cni_metadata(&self) -> Option<Value> {
        self.get_json("cni_metadata")
    }

    pub fn set_cni_metadata(&mut self, v: Option<&Value>) {
        self.set_json("cni_metadata", v);
    }

    /// `ports` (list of ints).
    pub fn ports(&self) -> Option<Vec<i64>> {
        match self.get("ports")? {
            Value::Array(a) => {
                Some(a.iter().filter_map(|x| x.as_i64().or_else(|| x.as_str().and_then(|s| crate::version::py_int(s).ok()))).collect())
            }
            _ => None,
        }
    }

    pub fn set_ports(&mut self, ports: Option<&[i64]>) {
        self.set("ports", ports.map_or(Value::Null, |p| Value::Array(p.iter().map(|i| Value::from(*i)).collect())));
    }

    pub fn security_groups(&self) -> Option<Vec<String>> {
        self.get_str_list("security_groups")
    }

    pub fn set_security_groups(&mut self, sgs: Option<&[String]>) {
        self.set("security_groups", sgs.map_or(Value::Null, |a| Value::Array(a.iter().cloned().map(Value::String).collect())));
    }

    pub fn registry_id(&self) -> Option<i64> {
        self.get_i64("registry_id")
    }
}

/// The most memory a container may ask for, in MB: Docker takes the limit in bytes as an
/// `i64`, so anything larger cannot be expressed (and would wrap).
pub const MAX_MEMORY_MB: i64 = i64::MAX / (1024 * 1024);

/// A `memory` value that is not a size zun-compute-rs can honour.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("bad memory {value}: {reason}")]
pub struct MemoryError {
    /// The value as it came (JSON form, so a string shows its quotes).
    pub value: String,
    pub reason: &'static str,
}

/// Parses zun's memory strings into MB: `"512"`, `"512M"`, `"1G"`, `"1024k"`, `"512m"`
/// (queens sent the suffixed forms). Fractions of a MB are dropped; negative, non-finite
/// and too large (over [`MAX_MEMORY_MB`]) sizes are refused. The one memory parser:
/// claims, Docker's limit and usage accounting all read memory through it.
pub fn parse_memory_mb(s: &str) -> Result<i64, MemoryError> {
    let bad = |reason| MemoryError { value: Value::String(s.to_string()).to_string(), reason };
    let t = s.trim();
    let Some(last) = t.chars().last() else { return Err(bad("empty")) };
    let (num, mult): (&str, f64) = match last {
        'm' | 'M' => (&t[..t.len() - 1], 1.0),
        'g' | 'G' => (&t[..t.len() - 1], 1024.0),
        'k' | 'K' => (&t[..t.len() - 1], 1.0 / 1024.0),
        'b' | 'B' => (&t[..t.len() - 1], 1.0 / (1024.0 * 1024.0)),
        _ => (t, 1.0),
    };
    let v = py_float(num).ok_or_else(|| bad("not a number of MB"))?;
    mb_in_range(v * mult).map_err(bad)
}

/// A size in MB (fractions dropped) when it is finite, not negative and at most [`MAX_MEMORY_MB`].
fn mb_in_range(mb: f64) -> Result<i64, &'static str> {
    if !mb.is_finite() {
        return Err("not a finite size");
    }
    if mb < 0.0 {
        return Err("negative");
    }
    if mb.trunc() > MAX_MEMORY_MB as f64 {
        return Err("larger than Docker can limit");
    }
    Ok(mb.trunc() as i64)
}

/// `memory` in MB, strictly: `None` when unset or null, an error for what cannot be a size.
pub fn memory_mb_of(v: Option<&Value>) -> Result<Option<i64>, MemoryError> {
    let bad = |v: &Value, reason| MemoryError { value: v.to_string(), reason };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_memory_mb(s).map(Some),
        Some(n @ Value::Number(_)) => match n.as_i64() {
            Some(i) => mb_in_range(i as f64).map(Some).map_err(|r| bad(n, r)),
            None => Err(bad(n, "not a whole number of MB")),
        },
        Some(other) => Err(bad(other, "not a number of MB")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(version: &str, data: Value) -> Container {
        Container::from_value(&json!({
            "zun_object.name": "Container", "zun_object.namespace": "zun",
            "zun_object.version": version, "zun_object.data": data}))
        .unwrap()
    }

    #[test]
    fn master_fields() {
        let mut c = container(
            "1.44",
            json!({"memory": "512", "cpu": 0.5, "command": ["sh", "-c", "x"], "status": "Running",
            "restart_policy": {"Name": "on-failure", "MaximumRetryCount": "3"}, "healthcheck": "{}", "exposed_ports": "{\"80/tcp\": {}}",
            "started_at": null, "ports": [80], "labels": {"a": "b"}}),
        );
        c.validate().unwrap();
        assert_eq!(c.memory(), Some(512));
        assert_eq!(c.cpu(), Some(0.5));
        assert_eq!(c.command().unwrap(), ["sh", "-c", "x"]);
        assert_eq!(c.status(), Some(Status::Running));
        assert_eq!(c.restart_policy().unwrap().max_retry, 3);
        assert!(c.healthcheck().is_none());
        assert_eq!(c.exposed_ports(), Some(json!({"80/tcp": {}})));
        assert_eq!(c.ports(), Some(vec![80]));
        assert!(c.changes.is_empty());
        c.set_status(Status::Stopped, None);
        c.set_task_state(None);
        let t = NaiveDateTime::parse_from_str("2024-05-17T09:30:12.345678", "%Y-%m-%dT%H:%M:%S%.f").unwrap();
        c.set_started_at(Some(t));
        assert_eq!(c.get("started_at"), Some(&json!("2024-05-17T09:30:12Z")));
        // A transition writes its reason too (cleared here), so no stale reason survives it.
        assert_eq!(c.get("status_reason"), Some(&Value::Null));
        assert_eq!(c.to_primitive().changes, ["status", "status_reason", "task_state", "started_at"].map(String::from).to_vec());
        c.set_status(Status::Error, Some("boom"));
        assert!(c.status_is(Status::Error) && !c.status_is(Status::Running));
        assert_eq!(c.get("status_reason"), Some(&json!("boom")));
        c.set_healthcheck(Some(&Healthcheck { test: json!("true"), interval: 5.0, timeout: 1.5, retries: 2 }));
        assert_eq!(c.get("healthcheck"), Some(&json!("{\"test\": \"true\", \"interval\": 5, \"timeout\": 1.5, \"retries\": 2}")));
    }

    #[test]
    fn one_memory_parser_for_every_form() {
        for (s, mb) in [
            ("512", 512),
            ("512M", 512),
            ("512m", 512),
            (" 64 ", 64),
            ("1G", 1024),
            ("1g", 1024),
            ("0.5G", 512),
            ("1024k", 1),
            ("1048576b", 1),
            ("0", 0),
        ] {
            assert_eq!(parse_memory_mb(s), Ok(mb), "{s}");
        }
        for s in ["", "x", "M", "-1", "-1G", "inf", "nan", "1T", "17592186044416", "99999999999999999999"] {
            assert!(parse_memory_mb(s).is_err(), "{s}");
        }
        assert_eq!(parse_memory_mb(&MAX_MEMORY_MB.to_string()), Ok(MAX_MEMORY_MB));
        assert!(parse_memory_mb(&(MAX_MEMORY_MB + 1).to_string()).is_err());
        assert_eq!(memory_mb_of(None), Ok(None));
        assert_eq!(memory_mb_of(Some(&Value::Null)), Ok(None));
        assert_eq!(memory_mb_of(Some(&json!(256))), Ok(Some(256)));
        assert!(memory_mb_of(Some(&json!(-5))).is_err());
        assert!(memory_mb_of(Some(&json!(1.5))).is_err());
        assert!(memory_mb_of(Some(&json!([1]))).is_err());
        assert_eq!(memory_mb_of(Some(&json!("2G"))), Ok(Some(2048)));
    }

    #[test]
    fn queens_forms() {
        let mut c = container("1.24", json!({"memory": "512M", "command": "sh -c 'echo hi'", "meta": {"sandbox_id": "abc"}}));
        c.validate().unwrap();
        assert_eq!(c.memory(), Some(512));
        assert_eq!(c.command().unwrap(), ["sh", "-c", "echo hi"]);
        assert_eq!(c.meta().unwrap()["sandbox_id"], "abc");
        c.set_command(Some(&["echo".to_string(), "a b".to_string()]));
        assert_eq!(c.get("command"), Some(&json!("echo 'a b'")));
        assert_eq!(parse_memory_mb("1G"), Ok(1024));
        assert!(parse_memory_mb("x").is_err());
    }
}
