//! `container` rows <-> `Container` objects in zun's wire form.
//!
//! The mapping copies zun 18.0.0 (`zun/objects/container.py`, `zun/db/sqlalchemy/models.py`):
//! - `JSONEncodedDict`/`JSONEncodedList` columns hold Python's `json.dumps(value)`; `None` is
//!   written as `'{}'` / `'[]'`, never NULL (NULL still reads back as None).
//! - `JsonField`s (`addresses`, `exposed_ports`, `healthcheck`, `annotations`, `cni_metadata`)
//!   travel as a JSON *string*; the first three live in JSONEncodedDict columns, the last two
//!   in MEDIUMTEXT holding the JSON text.
//! - zun's `save()` silently skips `cpuset`, `annotations` and `cni_metadata` when they were
//!   changed to None; so does this store.
//! - DATETIME is naive UTC with whole seconds; booleans are 0/1; `cpu` is a FLOAT.
//!
//! Every value is validated against the column before anything is written (length in
//! characters for VARCHAR, bytes for TEXT/MEDIUMTEXT, JSON shape, enum values for `status` and
//! `task_state`). Characters outside the Basic Multilingual Plane (4-byte UTF-8, e.g. emoji)
//! cannot be stored in zun's `utf8mb3` columns; in plain text columns they are replaced with
//! U+FFFD instead of failing the write (JSON columns escape them as `\ud83d\ude00`, like Python).
use super::pyjson;
use super::sql::{Kind, Val};
use super::{time_from_wire, time_to_wire, StoreError};
use crate::oslo::object::{KEY_DATA, KEY_NAME, KEY_NAMESPACE, KEY_VERSION, ZUN_NAMESPACE};
use crate::oslo::pyjson::py_float_value as py_float;
use crate::oslo::{Container, ObjectPrimitive};
use serde_json::{Map, Value};

/// zun's container statuses (containers and capsules).
pub const STATUSES: &[&str] = &[
    "Error",
    "Running",
    "Stopped",
    "Paused",
    "Unknown",
    "Creating",
    "Created",
    "Deleted",
    "Deleting",
    "Rebuilding",
    "Dead",
    "Restarting",
    "Pending",
    "Succeeded",
    "Failed",
];

/// zun's task states.
pub const TASK_STATES: &[&str] = &[
    "image_pulling",
    "container_creating",
    "container_starting",
    "container_deleting",
    "container_stopping",
    "container_rebooting",
    "container_pausing",
    "container_unpausing",
    "container_killing",
    "sg_adding",
    "sg_removing",
    "network_attaching",
    "network_detaching",
    "container_rebuilding",
];

const TEXT_BYTES: usize = 65_535;
const MEDIUMTEXT_BYTES: usize = 16_777_215;

/// How one object field maps to its column.
#[derive(Debug, Clone, Copy)]
pub enum Codec {
    /// Integer primary key: read only.
    Id,
    /// `uuid`: the key, never updated.
    Uuid,
    /// VARCHAR(n), n in characters.
    Str(usize),
    /// VARCHAR(n) restricted to a list of values.
    Enum(usize, &'static [&'static str]),
    /// TEXT / MEDIUMTEXT, limit in bytes.
    Text(usize),
    Int,
    Float,
    Bool,
    Time,
    /// JSONEncodedDict column, `DictOfStringsField`.
    DictOfStr,
    /// JSONEncodedList column, `ListOfStringsField`.
    ListOfStr,
    /// JSONEncodedList column, `ListOfIntegersField`.
    ListOfInt,
    /// JSONEncodedDict column, `JsonField` (wire: a JSON string).
    JsonDict,
    /// MEDIUMTEXT column, `JsonField` (wire and column: JSON text).
    JsonText,
    /// JSONEncodedDict column, nested `Cpuset` object.
    Cpuset,
}

impl Codec {
    fn kind(self) -> Kind {
        match self {
            Codec::Id | Codec::Int | Codec::Bool => Kind::Int,
            Codec::Float => Kind::Float,
            Codec::Time => Kind::Time,
            _ => Kind::Text,
        }
    }
}

/// The `Container` object's column fields, in zun's field order (the wire order of `data`).
pub const FIELDS: &[(&str, Codec)] = &[
    ("id", Codec::Id),
    ("container_id", Codec::Str(255)),
    ("uuid", Codec::Uuid),
    ("name", Codec::Str(255)),
    ("project_id", Codec::Str(255)),
    ("user_id", Codec::Str(255)),
    ("image", Codec::Str(255)),
    ("cpu", Codec::Float),
    ("cpu_policy", Codec::Str(255)),
    ("cpuset", Codec::Cpuset),
    ("memory", Codec::Str(255)),
    ("command", Codec::ListOfStr),
    ("status", Codec::Enum(20, STATUSES)),
    ("status_reason", Codec::Text(TEXT_BYTES)),
    ("task_state", Codec::Enum(20, TASK_STATES)),
    ("environment", Codec::DictOfStr),
    ("workdir", Codec::Str(255)),
    ("auto_remove", Codec::Bool),
    ("ports", Codec::ListOfInt),
    // zun's model says String(63) but the migrated column is varchar(255): the column rules.
    ("hostname", Codec::Str(255)),
    ("labels", Codec::DictOfStr),
    ("addresses", Codec::JsonDict),
    ("image_pull_policy", Codec::Text(TEXT_BYTES)),
    ("host", Codec::Str(255)),
    ("restart_policy", Codec::DictOfStr),
    ("status_detail", Codec::Str(50)),
    ("interactive", Codec::Bool),
    ("tty", Codec::Bool),
    ("image_driver", Codec::Text(TEXT_BYTES)),
    ("websocket_url", Codec::Str(255)),
    ("websocket_token", Codec::Str(255)),
    ("security_groups", Codec::ListOfStr),
    ("runtime", Codec::Str(32)),
    ("disk", Codec::Int),
    ("auto_heal", Codec::Bool),
    ("started_at", Codec::Time),
    ("exposed_ports", Codec::JsonDict),
    ("privileged", Codec::Bool),
    ("healthcheck", Codec::JsonDict),
    ("registry_id", Codec::Int),
    ("annotations", Codec::JsonText),
    ("cni_metadata", Codec::JsonText),
    ("entrypoint", Codec::ListOfStr),
    ("created_at", Codec::Time),
    ("updated_at", Codec::Time),
];

/// `CapsuleContainer` / `CapsuleInitContainer` add this field.
pub const CAPSULE_ID: (&str, Codec) = ("capsule_id", Codec::Int);

/// `container.container_type` for an object name (zun `consts.TYPE_*`).
pub fn container_type(object_name: &str) -> Option<i64> {
    match object_name {
        "Container" => Some(0),
        "Capsule" => Some(1),
        "CapsuleContainer" => Some(2),
        "CapsuleInitContainer" => Some(3),
        _ => None,
    }
}

/// (object name, version) for a `container_type`.
fn object_for_type(t: i64) -> (&'static str, &'static str) {
    match t {
        1 => ("Capsule", "1.4"),
        2 => ("CapsuleContainer", "1.4"),
        3 => ("CapsuleInitContainer", "1.4"),
        _ => ("Container", "1.44"),
    }
}

/// The fields of an object of this type.
pub fn fields_for_type(t: i64) -> Vec<(&'static str, Codec)> {
    let mut v: Vec<(&str, Codec)> = FIELDS.to_vec();
    if t == 2 || t == 3 {
        let at = v.len() - 2;
        v.insert(at, CAPSULE_ID);
    }
    v
}

/// SELECT list (container_type last) and the kinds to decode it.
pub fn select_list(fields: &[(&str, Codec)]) -> (String, Vec<Kind>) {
    let mut cols: Vec<String> = fields.iter().map(|(n, _)| format!("`{n}`")).collect();
    let mut kinds: Vec<Kind> = fields.iter().map(|(_, c)| c.kind()).collect();
    cols.push("`container_type`".into());
    kinds.push(Kind::Int);
    (cols.join(", "), kinds)
}

/// The columns [`crate::store::Store::container_states_by_host`] reads.
pub const STATE_FIELDS: &[&str] = &["uuid", "container_id", "status", "status_reason", "status_detail", "task_state", "auto_remove"];

/// All columns of any container type (capsule_id included), for reads.
pub fn all_read_fields() -> Vec<(&'static str, Codec)> {
    let mut v = FIELDS.to_vec();
    v.push(CAPSULE_ID);
    v
}

/// Replaces characters that need 4 bytes in UTF-8 (outside the BMP) with U+FFFD, since zun's
/// tables are `utf8mb3`.
pub fn bmp_only(s: &str) -> String {
    if s.chars().all(|c| (c as u32) <= 0xFFFF) {
        return s.to_string();
    }
    s.chars().map(|c| if (c as u32) > 0xFFFF { '\u{FFFD}' } else { c }).collect()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a dict",
    }
}

/// Outcome of encoding one field for a write.
pub enum Enc {
    /// Write this column value.
    Set(Val),
    /// zun leaves the column alone (cpuset/annotations/cni_metadata changed to None).
    Skip,
}

fn parse_json_text(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("is not valid JSON text: {e}"))
}

/// Wire value -> column value, validated. `insert` selects the INSERT behaviour for the
/// fields whose None zun skips on UPDATE.
pub fn encode(codec: Codec, v: &Value, insert: bool) -> Result<Enc, String> {
    use Enc::Set;
    let expected = |what: &str| Err(format!("expected {what}, got {}", type_name(v)));
    Ok(match codec {
        Codec::Id | Codec::Int => match v {
            Value::Null => Set(Val::Null),
            Value::Number(n) => match n.as_i64() {
                Some(i) if i32::try_from(i).is_ok() => Set(Val::Int(i)),
                _ => return Err(format!("{n} is not an integer in the INT range")),
            },
            _ => return expected("an integer"),
        },
        Codec::Uuid => match v {
            Value::String(s) if s.chars().count() <= 36 => Set(Val::Text(s.clone())),
            Value::String(_) => return Err("longer than 36 characters".into()),
            _ => return expected("a string"),
        },
        Codec::Str(max) | Codec::Enum(max, _) => match v {
            Value::Null => Set(Val::Null),
            Value::String(s) => {
                let s = bmp_only(s);
                let n = s.chars().count();
                if n > max {
                    return Err(format!("{n} characters, the column holds at most {max}"));
                }
                if let Codec::Enum(_, allowed) = codec {
                    if !allowed.contains(&s.as_str()) {
                        return Err(format!("{s:?} is not one of {}", allowed.join(", ")));
                    }
                }
                Set(Val::Text(s))
            }
            _ => return expected("a string"),
        },
        Codec::Text(max) => match v {
            Value::Null => Set(Val::Null),
            Value::String(s) => {
                let s = bmp_only(s);
                if s.len() > max {
                    return Err(format!("{} bytes, the column holds at most {max}", s.len()));
                }
                Set(Val::Text(s))
            }
            _ => return expected("a string"),
        },
        Codec::Float => match v {
            Value::Null => Set(Val::Null),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => Set(Val::Float(f)),
                _ => return Err(format!("{n} is not a finite float")),
            },
            _ => return expected("a number"),
        },
        Codec::Bool => match v {
            Value::Null => Set(Val::Null),
            Value::Bool(b) => Set(Val::Int(*b as i64)),
            _ => return expected("a boolean"),
        },
        Codec::Time => match v {
            Value::Null => Set(Val::Null),
            Value::String(s) => Set(Val::Time(time_from_wire(s).ok_or_else(|| format!("{s:?} is not an ISO 8601 datetime"))?)),
            _ => return expected("a datetime string"),
        },
        Codec::DictOfStr => match v {
            Value::Null => Set(Val::Text("{}".into())),
            Value::Object(m) => {
                if let Some((k, bad)) = m.iter().find(|(_, x)| !x.is_string()) {
                    return Err(format!("value of key {k:?} is {}, expected a string", type_name(bad)));
                }
                Set(Val::Text(check_text(pyjson::dumps(v), TEXT_BYTES)?))
            }
            _ => return expected("a dict of strings"),
        },
        Codec::ListOfStr | Codec::ListOfInt => match v {
            Value::Null => Set(Val::Text("[]".into())),
            Value::Array(a) => {
                let ints = matches!(codec, Codec::ListOfInt);
                if let Some(bad) = a.iter().find(|x| if ints { !x.is_i64() } else { !x.is_string() }) {
                    return Err(format!("list item {} is {}", bad, type_name(bad)));
                }
                Set(Val::Text(check_text(pyjson::dumps(v), TEXT_BYTES)?))
            }
            _ => return expected(if matches!(codec, Codec::ListOfInt) { "a list of integers" } else { "a list of strings" }),
        },
        Codec::JsonDict => {
            let value = match v {
                Value::String(s) => parse_json_text(s)?,
                other => other.clone(),
            };
            match value {
                Value::Null => Set(Val::Text("{}".into())),
                Value::Object(_) => Set(Val::Text(check_text(pyjson::dumps(&value), TEXT_BYTES)?)),
                other => return Err(format!("expected JSON text of a dict, got {}", type_name(&other))),
            }
        }
        Codec::JsonText => {
            let value = match v {
                Value::Null => Value::Null,
                Value::String(s) => parse_json_text(s)?,
                other => other.clone(),
            };
            if value.is_null() {
                if insert {
                    Set(Val::Null)
                } else {
                    Enc::Skip
                }
            } else {
                Set(Val::Text(check_text(pyjson::dumps(&value), MEDIUMTEXT_BYTES)?))
            }
        }
        Codec::Cpuset => match v {
            Value::Null => {
                if insert {
                    Set(Val::Text("{}".into()))
                } else {
                    Enc::Skip
                }
            }
            Value::Object(m) => {
                // A nested Cpuset primitive, or (leniently) the plain dict.
                let data = match m.get(KEY_DATA) {
                    Some(Value::Object(d)) => d,
                    Some(other) => return Err(format!("cpuset {KEY_DATA} is {}", type_name(other))),
                    None => m,
                };
                let mut out = Map::new();
                for key in ["cpuset_cpus", "cpuset_mems"] {
                    let item = data.get(key).cloned().unwrap_or(Value::Null);
                    match &item {
                        Value::Null => {}
                        Value::Array(a) if a.iter().all(Value::is_i64) => {}
                        other => return Err(format!("cpuset.{key} is {}, expected a set of integers", type_name(other))),
                    }
                    out.insert(key.to_string(), item);
                }
                Set(Val::Text(pyjson::dumps(&Value::Object(out))))
            }
            _ => return expected("a Cpuset object"),
        },
    })
}

fn check_text(s: String, max: usize) -> Result<String, String> {
    if s.len() > max {
        Err(format!("{} bytes of JSON, the column holds at most {max}", s.len()))
    } else {
        Ok(s)
    }
}

/// Column value -> wire value (what zun's `_from_db_object` + `obj_to_primitive` produce).
pub fn decode(codec: Codec, v: Val) -> Result<Value, String> {
    Ok(match (codec, v) {
        (Codec::Cpuset, v) => {
            let d = match v {
                Val::Text(s) if !s.is_empty() => parse_json_text(&s)?,
                _ => Value::Null,
            };
            let get = |k: &str| d.get(k).cloned().unwrap_or(Value::Null);
            let mut data = Map::new();
            data.insert("cpuset_cpus".into(), get("cpuset_cpus"));
            data.insert("cpuset_mems".into(), get("cpuset_mems"));
            let mut p = Map::new();
            p.insert(KEY_NAME.into(), Value::String("Cpuset".into()));
            p.insert(KEY_NAMESPACE.into(), Value::String(ZUN_NAMESPACE.into()));
            p.insert(KEY_VERSION.into(), Value::String("1.0".into()));
            p.insert(KEY_DATA.into(), Value::Object(data));
            Value::Object(p)
        }
        (_, Val::Null) => Value::Null,
        (Codec::Id | Codec::Int, Val::Int(i)) => Value::from(i),
        (Codec::Bool, v) => Value::Bool(v.as_bool().ok_or("not an integer")?),
        (Codec::Float, v) => py_float(v.as_f64().ok_or("not a number")?),
        (Codec::Time, Val::Time(t)) => Value::String(time_to_wire(t)),
        (Codec::Uuid | Codec::Str(_) | Codec::Enum(..) | Codec::Text(_), Val::Text(s)) => Value::String(s),
        (Codec::DictOfStr | Codec::ListOfStr | Codec::ListOfInt, Val::Text(s)) => parse_json_text(&s)?,
        (Codec::JsonDict | Codec::JsonText, Val::Text(s)) => Value::String(pyjson::dumps(&parse_json_text(&s)?)),
        (c, v) => return Err(format!("unexpected stored value {v:?} for {c:?}")),
    })
}

/// Builds the object from a row read with [`select_list`] over `fields` (container_type last).
pub fn row_to_container(fields: &[(&str, Codec)], row: Vec<Val>) -> Result<Container, StoreError> {
    let mut row = row;
    let ctype = row.pop().and_then(|v| v.as_i64()).unwrap_or(0);
    let (name, version) = object_for_type(ctype);
    let uuid =
        row.iter().zip(fields).find(|(_, (n, _))| *n == "uuid").and_then(|(v, _)| v.as_str().map(str::to_string)).unwrap_or_default();
    let mut data = Map::new();
    for ((field, codec), v) in fields.iter().zip(row) {
        if *field == "capsule_id" && !(ctype == 2 || ctype == 3) {
            continue;
        }
        let value = decode(*codec, v).map_err(|reason| StoreError::CorruptRow {
            table: "container",
            column: field.to_string(),
            key: uuid.clone(),
            reason,
        })?;
        data.insert(field.to_string(), value);
    }
    let p = ObjectPrimitive { name: name.into(), namespace: ZUN_NAMESPACE.into(), version: version.into(), data, changes: Vec::new() };
    Container::from_primitive(p).map_err(|e| StoreError::CorruptRow {
        table: "container",
        column: "*".into(),
        key: uuid,
        reason: e.to_string(),
    })
}

/// Validates and encodes the pending changes of `c` for an UPDATE: (column, value) pairs.
/// Fields that are not columns (`pci_devices`, `exec_instances`, `registry`, ...), the key
/// (`uuid`), `id` and `updated_at` (always set by the store) are left out.
pub fn update_columns(c: &Container, uuid: &str) -> Result<Vec<(&'static str, Val)>, StoreError> {
    let ctype = container_type(&c.name).unwrap_or(0);
    let fields = fields_for_type(ctype);
    let mut out = Vec::new();
    for (field, codec) in &fields {
        if !c.changes.contains(*field) || matches!(codec, Codec::Id | Codec::Uuid) || *field == "updated_at" {
            continue;
        }
        let v = c.data.get(*field).unwrap_or(&Value::Null);
        match encode(*codec, v, false) {
            Ok(Enc::Set(val)) => out.push((*field, val)),
            Ok(Enc::Skip) => {}
            Err(reason) => return Err(StoreError::InvalidField { uuid: uuid.into(), field: field.to_string(), reason }),
        }
    }
    for ch in &c.changes {
        if !fields.iter().any(|(f, _)| f == ch) {
            tracing::debug!(uuid, field = ch.as_str(), "change on a field without a column; not stored");
        }
    }
    Ok(out)
}

/// Validates and encodes the whole object for an INSERT, with zun's ORM defaults for the
/// columns the object leaves unset.
pub fn insert_columns(c: &Container, uuid: &str) -> Result<Vec<(&'static str, Val)>, StoreError> {
    let ctype = container_type(&c.name).unwrap_or(0);
    let mut out = Vec::new();
    for (field, codec) in fields_for_type(ctype) {
        if matches!(codec, Codec::Id) || field == "created_at" || field == "updated_at" {
            continue;
        }
        let v = c.data.get(field).unwrap_or(&Value::Null);
        let enc =
            encode(codec, v, true).map_err(|reason| StoreError::InvalidField { uuid: uuid.into(), field: field.to_string(), reason })?;
        let Enc::Set(mut val) = enc else { continue };
        if val == Val::Null {
            // Python-side column defaults of zun's model.
            val = match field {
                "cpu_policy" => Val::Text("shared".into()),
                "disk" => Val::Int(0),
                "interactive" | "tty" | "auto_remove" | "auto_heal" | "privileged" => Val::Int(0),
                _ => Val::Null,
            };
        }
        out.push((field, val));
    }
    out.push(("container_type", Val::Int(ctype)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_fields_are_read_columns() {
        let all: Vec<&str> = all_read_fields().into_iter().map(|(n, _)| n).collect();
        for f in STATE_FIELDS {
            assert!(all.contains(f), "{f} is not a container column");
        }
    }
    use serde_json::json;

    fn set(c: Codec, v: Value) -> Val {
        match encode(c, &v, false).unwrap() {
            Enc::Set(v) => v,
            Enc::Skip => panic!("skipped"),
        }
    }

    #[test]
    fn json_columns_like_zun() {
        assert_eq!(set(Codec::DictOfStr, json!(null)), Val::Text("{}".into()));
        assert_eq!(set(Codec::ListOfStr, json!(null)), Val::Text("[]".into()));
        assert_eq!(set(Codec::DictOfStr, json!({"K": "V"})), Val::Text(r#"{"K": "V"}"#.into()));
        assert_eq!(set(Codec::ListOfStr, json!(["sleep", "300"])), Val::Text(r#"["sleep", "300"]"#.into()));
        assert_eq!(set(Codec::JsonDict, json!("{}")), Val::Text("{}".into()));
        assert_eq!(set(Codec::JsonDict, json!("{\"80/tcp\":{}}")), Val::Text(r#"{"80/tcp": {}}"#.into()));
        assert!(matches!(encode(Codec::JsonText, &json!(null), false), Ok(Enc::Skip)));
        assert!(matches!(encode(Codec::Cpuset, &json!(null), false), Ok(Enc::Skip)));
        let cpuset = json!({"zun_object.name": "Cpuset", "zun_object.namespace": "zun", "zun_object.version": "1.0",
            "zun_object.data": {"cpuset_cpus": [0, 1], "cpuset_mems": null}});
        assert_eq!(set(Codec::Cpuset, cpuset), Val::Text(r#"{"cpuset_cpus": [0, 1], "cpuset_mems": null}"#.into()));
    }

    #[test]
    fn validation() {
        assert!(encode(Codec::Enum(20, STATUSES), &json!("Running"), false).is_ok());
        assert!(encode(Codec::Enum(20, STATUSES), &json!("Sleeping"), false).is_err());
        assert!(encode(Codec::Str(50), &json!("x".repeat(51)), false).is_err());
        assert!(encode(Codec::Str(50), &json!("é".repeat(50)), false).is_ok());
        assert!(encode(Codec::Int, &json!("10"), false).is_err());
        assert!(encode(Codec::Int, &json!(1.5), false).is_err());
        assert!(encode(Codec::Bool, &json!(1), false).is_err());
        assert!(encode(Codec::DictOfStr, &json!({"a": 1}), false).is_err());
        assert!(encode(Codec::ListOfInt, &json!(["80"]), false).is_err());
        assert!(encode(Codec::JsonDict, &json!("[1]"), false).is_err());
        assert!(encode(Codec::JsonDict, &json!("{not json"), false).is_err());
        assert_eq!(set(Codec::Text(100), json!("boom 😀")), Val::Text("boom \u{FFFD}".into()));
    }

    #[test]
    fn decode_like_zun() {
        assert_eq!(decode(Codec::JsonDict, Val::Text(r#"{"a": [1]}"#.into())).unwrap(), json!(r#"{"a": [1]}"#));
        assert_eq!(decode(Codec::Float, Val::Float(1.0)).unwrap().to_string(), "1.0");
        assert_eq!(decode(Codec::Float, Val::Float(0.5)).unwrap().to_string(), "0.5");
        assert_eq!(py_float(1e20).to_string(), "1e+20");
        assert_eq!(py_float(1e-5).to_string(), "1e-05");
        let cs = decode(Codec::Cpuset, Val::Text("{}".into())).unwrap();
        assert_eq!(cs["zun_object.data"], json!({"cpuset_cpus": null, "cpuset_mems": null}));
        assert_eq!(decode(Codec::Bool, Val::Int(1)).unwrap(), json!(true));
    }
}
