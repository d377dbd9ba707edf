//! The field table of zun's `Container` object, version by version (1.0 .. 1.44).
//!
//! Derived from the `VERSION` history of `zun/objects/container.py` (zun git history;
//! queens ships 1.24, master/18.0.0 ships 1.44). A field is known at version `v` when
//! `since <= v < until`. Notable changes inside the supported 1.24..1.44 range:
//! `auto_heal` 1.26 (nullable from 1.27), `capsule_id` 1.30 (dropped at 1.39 when
//! capsules moved into the container table), `started_at` 1.31, `exec_instances` 1.32,
//! `command` string -> list of strings at 1.33, `privileged` 1.34, `healthcheck` 1.35,
//! `exposed_ports` 1.37, `cpu_policy` + `cpuset` 1.38, `registry_id` + `registry` 1.39,
//! `tty` (again) 1.40, `annotations` 1.41, `meta` removed 1.42, `cni_metadata` 1.43,
//! `entrypoint` 1.44.
//!
//! [`check_value`] applies the coercion rules of oslo.versionedobjects' field types (the
//! real server's tolerance: a string field takes numbers, an integer field takes
//! numeric strings, booleans take anything, ...) and returns Python's `ValueError` /
//! `TypeError` text when the real server would refuse the value.
use crate::pyjson::{self, py_repr, py_type_name};
use crate::version::py_int;
use serde_json::Value;

/// The wire type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Str,
    Int,
    Float,
    Bool,
    /// `UUIDField`: any value is accepted (oslo only warns).
    Uuid,
    /// `ContainerStatusField`: one of [`crate::Status`].
    Status,
    /// `TaskStateField`: one of [`crate::TaskState`].
    TaskState,
    DictOfStr,
    ListOfStr,
    ListOfInt,
    /// zun `JsonField`: on the wire a JSON *string* (a raw value is tolerated).
    Json,
    /// `DateTimeField`: ISO 8601 string, zun writes `YYYY-MM-DDTHH:MM:SSZ`.
    DateTime,
    /// Nested object primitive of the named class.
    Object(&'static str),
    /// List of nested object primitives of the named class.
    ListOfObjects(&'static str),
    /// `SetOfIntegersField` (a list on the wire).
    SetOfInt,
}

/// One field of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    pub nullable: bool,
    /// First version (major 1 implied) with this field: the minor number.
    pub since: u32,
    /// First minor version without it (or with a different type); `None` = still there.
    pub until: Option<u32>,
}

const fn f(name: &'static str, ty: FieldType, since: u32) -> FieldSpec {
    FieldSpec { name, ty, nullable: true, since, until: None }
}
const fn fu(name: &'static str, ty: FieldType, since: u32, until: u32) -> FieldSpec {
    FieldSpec { name, ty, nullable: true, since, until: Some(until) }
}

use FieldType as T;

/// Every `Container` field of every 1.x version, in zun's declaration order.
pub const CONTAINER_FIELDS: &[FieldSpec] = &[
    FieldSpec { name: "id", ty: T::Int, nullable: false, since: 0, until: None },
    f("container_id", T::Str, 1),
    f("uuid", T::Uuid, 0),
    f("name", T::Str, 0),
    f("project_id", T::Str, 0),
    f("user_id", T::Str, 0),
    f("image", T::Str, 0),
    f("cpu", T::Float, 4),
    f("cpu_policy", T::Str, 38),
    f("cpuset", T::Object("Cpuset"), 38),
    f("memory", T::Str, 2),
    fu("command", T::Str, 0, 33),
    f("command", T::ListOfStr, 33),
    f("status", T::Status, 0),
    f("status_reason", T::Str, 4),
    f("task_state", T::TaskState, 3),
    f("environment", T::DictOfStr, 0),
    f("workdir", T::Str, 4),
    f("auto_remove", T::Bool, 18),
    f("ports", T::ListOfInt, 4),
    f("hostname", T::Str, 4),
    f("labels", T::DictOfStr, 4),
    fu("meta", T::DictOfStr, 5, 42),
    f("addresses", T::Json, 6),
    f("image_pull_policy", T::Str, 4),
    f("host", T::Str, 7),
    f("restart_policy", T::DictOfStr, 8),
    f("status_detail", T::Str, 9),
    fu("stdin_open", T::Bool, 10, 15),
    f("interactive", T::Bool, 15),
    fu("tty", T::Bool, 10, 15),
    f("tty", T::Bool, 40),
    f("image_driver", T::Str, 11),
    f("websocket_url", T::Str, 16),
    f("websocket_token", T::Str, 16),
    f("security_groups", T::ListOfStr, 17),
    f("runtime", T::Str, 19),
    f("pci_devices", T::ListOfObjects("PciDevice"), 23),
    f("disk", T::Int, 24),
    FieldSpec { name: "auto_heal", ty: T::Bool, nullable: false, since: 26, until: Some(27) },
    f("auto_heal", T::Bool, 27),
    fu("capsule_id", T::Int, 30, 39),
    f("started_at", T::DateTime, 31),
    f("exposed_ports", T::Json, 37),
    f("exec_instances", T::ListOfObjects("ExecInstance"), 32),
    f("privileged", T::Bool, 34),
    f("healthcheck", T::Json, 35),
    f("registry_id", T::Int, 39),
    f("registry", T::Object("Registry"), 39),
    f("annotations", T::Json, 41),
    f("cni_metadata", T::Json, 43),
    f("entrypoint", T::ListOfStr, 44),
    f("created_at", T::DateTime, 0),
    f("updated_at", T::DateTime, 0),
];

/// Extra fields of `Capsule` (v1.0 .. 1.4).
pub const CAPSULE_EXTRA_FIELDS: &[FieldSpec] =
    &[f("containers", T::ListOfObjects("CapsuleContainer"), 0), f("init_containers", T::ListOfObjects("CapsuleInitContainer"), 0)];

/// Extra field of `CapsuleContainer` and `CapsuleInitContainer` (v1.0 .. 1.4).
pub const CAPSULE_CONTAINER_EXTRA_FIELDS: &[FieldSpec] =
    &[FieldSpec { name: "capsule_id", ty: T::Int, nullable: false, since: 0, until: None }];

/// Fields of `Cpuset` 1.0.
pub const CPUSET_FIELDS: &[FieldSpec] = &[f("cpuset_cpus", T::SetOfInt, 0), f("cpuset_mems", T::SetOfInt, 0)];

/// The Container minor version whose `ContainerBase` fields a capsule-family object of
/// minor version `capsule_minor` carries (Capsule 1.0 = stein = Container 1.39 ...
/// 1.4 = master = Container 1.44).
pub fn capsule_minor_to_container_minor(capsule_minor: u32) -> u32 {
    match capsule_minor {
        0 => 39,
        1 => 40,
        2 => 41,
        3 => 42,
        _ => 44,
    }
}

/// The spec of `field` for a `Container` at minor version `minor`.
pub fn container_field(field: &str, minor: u32) -> Option<&'static FieldSpec> {
    // Looked up for every field of every object received: an index by name instead of
    // a scan of the whole table (a name has one spec per type change, at most three).
    static BY_NAME: std::sync::OnceLock<std::collections::HashMap<&'static str, Vec<&'static FieldSpec>>> = std::sync::OnceLock::new();
    let index = BY_NAME.get_or_init(|| {
        let mut m: std::collections::HashMap<&'static str, Vec<&'static FieldSpec>> = std::collections::HashMap::new();
        for s in CONTAINER_FIELDS {
            m.entry(s.name).or_default().push(s);
        }
        m
    });
    index.get(field)?.iter().copied().find(|s| s.since <= minor && s.until.is_none_or(|u| minor < u))
}

/// All `Container` fields known at minor version `minor`, declaration order.
pub fn container_fields_at(minor: u32) -> impl Iterator<Item = &'static FieldSpec> {
    CONTAINER_FIELDS.iter().filter(move |s| s.since <= minor && s.until.is_none_or(|u| minor < u))
}

/// The version (as `1.N`) in which a Container field first appeared.
pub fn container_field_since(field: &str) -> Option<String> {
    CONTAINER_FIELDS.iter().filter(|s| s.name == field).map(|s| s.since).min().map(|m| format!("1.{m}"))
}

/// Checks a non-null wire value against a scalar/compound type with oslo's coercion
/// rules. Nested objects are checked by the caller (they need the object registry);
/// here they must at least be dicts (or lists of dicts). `Err` holds Python's message.
pub fn check_value(ty: FieldType, attr: &str, v: &Value) -> Result<(), String> {
    let tn = py_type_name(v);
    match ty {
        T::Str => check_str(attr, v),
        T::Status => check_enum(v, crate::Status::is_valid),
        T::TaskState => check_enum(v, crate::TaskState::is_valid),
        T::Int => check_int(v),
        T::Float => match v {
            Value::Number(_) | Value::Bool(_) => Ok(()),
            Value::String(s) => py_float(s).map(|_| ()).ok_or_else(|| format!("could not convert string to float: {}", py_repr(v))),
            _ => Err(format!("float() argument must be a string or a real number, not '{tn}'")),
        },
        T::Bool | T::Uuid => Ok(()),
        T::DictOfStr => match v {
            Value::Object(m) => m.values().try_for_each(|x| check_str(attr, x)),
            _ => Err(format!("A dict is required in field {attr}, not a {tn}")),
        },
        T::ListOfStr => match v {
            Value::Array(a) => a.iter().try_for_each(|x| check_str(attr, x)),
            _ => Err(format!("A list is required in field {attr}, not a {tn}")),
        },
        T::ListOfInt => match v {
            Value::Array(a) => a.iter().try_for_each(check_int),
            _ => Err(format!("A list is required in field {attr}, not a {tn}")),
        },
        T::SetOfInt => match v {
            Value::Array(a) => a.iter().try_for_each(check_int),
            _ => Err(format!("A set is required in field {attr}, not a {tn}")),
        },
        T::Json => match v {
            Value::String(s) => pyjson::parse(s).map(|_| ()).map_err(|e| e.to_string()),
            _ => Ok(()),
        },
        T::DateTime => match v {
            Value::String(s) if parse_isotime(s).is_some() => Ok(()),
            Value::String(_) => Err(format!("Unable to parse date string {}", py_repr(v))),
            _ => Err(format!("Expecting a string {}", py_repr(v))),
        },
        T::Object(name) => match v {
            Value::Object(_) => Ok(()),
            _ => Err(format!("An object of type {name} is required in field {attr}, not a {tn}")),
        },
        T::ListOfObjects(_) => match v {
            Value::Array(_) => Ok(()),
            _ => Err(format!("A list is required in field {attr}, not a {tn}")),
        },
    }
}

fn check_str(attr: &str, v: &Value) -> Result<(), String> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(()),
        other => Err(format!("A string is required in field {attr}, not a {}", py_type_name(other))),
    }
}

fn check_enum(v: &Value, valid: fn(&str) -> bool) -> Result<(), String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => pyjson::py_str(v),
        other => return Err(format!("A string is required, not a {}", py_type_name(other))),
    };
    if valid(&s) {
        Ok(())
    } else {
        Err(format!("Field value {s} is invalid"))
    }
}

fn check_int(v: &Value) -> Result<(), String> {
    match v {
        Value::Number(n) => {
            if n.as_f64().is_none() && !pyjson::is_int_literal(&n.to_string()) {
                Err("cannot convert float infinity to integer".into())
            } else {
                Ok(())
            }
        }
        Value::Bool(_) => Ok(()),
        Value::String(s) => py_int(s).map(|_| ()).map_err(|e| e.message),
        other => Err(format!("int() argument must be a string, a bytes-like object or a real number, not '{}'", py_type_name(other))),
    }
}

/// Python's `float(str)`: decimal literals, `inf`, `nan`, surrounding whitespace.
pub fn py_float(s: &str) -> Option<f64> {
    let t = s.trim().replace('_', "");
    let l = t.to_ascii_lowercase();
    let l = l.trim_start_matches(['+', '-']);
    if matches!(l, "inf" | "infinity" | "nan") {
        return t.parse::<f64>().ok();
    }
    if l.is_empty() || !l.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    t.parse::<f64>().ok()
}

/// A lenient ISO 8601 parse (what `iso8601.parse_date` accepts in practice), to naive
/// UTC. zun's own form is `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_isotime(s: &str) -> Option<chrono::NaiveDateTime> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.naive_utc());
    }
    let s2 = s.trim_end_matches('Z').replace(' ', "T");
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(&s2, fmt) {
            return Some(dt);
        }
    }
    if let Ok(dt) = DateTime::parse_from_str(&s2, "%Y-%m-%dT%H:%M:%S%.f%:z") {
        return Some(dt.naive_utc());
    }
    NaiveDate::parse_from_str(&s2, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_of_fields() {
        assert_eq!(container_field("command", 24).unwrap().ty, T::Str);
        assert_eq!(container_field("command", 44).unwrap().ty, T::ListOfStr);
        assert!(container_field("meta", 41).is_some());
        assert!(container_field("meta", 42).is_none());
        assert!(container_field("tty", 24).is_none());
        assert!(container_field("tty", 40).is_some());
        assert!(container_field("entrypoint", 43).is_none());
        assert!(!container_field("auto_heal", 26).unwrap().nullable);
        assert!(container_field("auto_heal", 27).unwrap().nullable);
        assert_eq!(container_field_since("cpuset").as_deref(), Some("1.38"));
        let master: Vec<_> = container_fields_at(44).map(|s| s.name).collect();
        assert_eq!(master.len(), 48);
        assert!(!master.contains(&"meta") && !master.contains(&"capsule_id"));
        let queens: Vec<_> = container_fields_at(24).map(|s| s.name).collect();
        for q in ["meta", "disk", "interactive", "pci_devices", "runtime", "security_groups"] {
            assert!(queens.contains(&q), "{q}");
        }
        for absent in ["tty", "cpuset", "healthcheck", "auto_heal", "started_at", "entrypoint"] {
            assert!(!queens.contains(&absent), "{absent}");
        }
    }

    #[test]
    fn coercion_rules() {
        assert!(check_value(T::Str, "memory", &json!(1024)).is_ok());
        assert_eq!(check_value(T::Str, "name", &json!([1])).unwrap_err(), "A string is required in field name, not a list");
        assert!(check_value(T::Int, "disk", &json!("10")).is_ok());
        assert!(check_value(T::Int, "disk", &json!("x")).is_err());
        assert!(check_value(T::Float, "cpu", &json!("0.5")).is_ok());
        assert!(check_value(T::Float, "cpu", &json!("abc")).is_err());
        assert!(check_value(T::Status, "status", &json!("Running")).is_ok());
        assert_eq!(check_value(T::Status, "status", &json!("Flying")).unwrap_err(), "Field value Flying is invalid");
        assert!(check_value(T::Json, "addresses", &json!("{\"a\": 1}")).is_ok());
        assert!(check_value(T::Json, "addresses", &json!("{bad")).is_err());
        assert!(check_value(T::DateTime, "started_at", &json!("2024-05-17T09:30:12Z")).is_ok());
        assert!(check_value(T::DateTime, "started_at", &json!("yesterday")).is_err());
        assert!(check_value(T::DictOfStr, "labels", &json!({"a": {}})).is_err());
    }
}
