//! Versioned objects as zun serializes them: `zun_object.name`, `.namespace`, `.version`,
//! `.data` (set fields only) and `.changes` (pending, unsaved field names).
//!
//! Field values are kept in their *wire form* (exactly what zun's serializer emits:
//! JsonFields as JSON strings, datetimes as `YYYY-MM-DDTHH:MM:SSZ`, `memory` as a string,
//! nested objects as nested primitives). The store converts wire form to columns; the
//! domain reads and writes through typed accessors.
use serde_json::{Map, Value};
use std::collections::BTreeSet;

pub const KEY_NAME: &str = "zun_object.name";
pub const KEY_NAMESPACE: &str = "zun_object.namespace";
pub const KEY_VERSION: &str = "zun_object.version";
pub const KEY_DATA: &str = "zun_object.data";
pub const KEY_CHANGES: &str = "zun_object.changes";
pub const ZUN_NAMESPACE: &str = "zun";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ObjectError {
    #[error("not a zun object primitive: {0}")]
    NotAnObject(String),
    #[error("object primitive is missing key {0}")]
    MissingKey(&'static str),
    #[error("object primitive key {key} has the wrong type: {detail}")]
    BadKey { key: &'static str, detail: String },
    /// oslo.versionedobjects `UnsupportedObjectError`: unknown name or foreign namespace.
    #[error("Unsupported object type {0}")]
    Unsupported(String),
    /// oslo.versionedobjects `IncompatibleObjectVersion`.
    #[error("Version {version} of {name} is not supported, supported version is {supported}")]
    IncompatibleVersion { name: String, version: String, supported: String },
    #[error("field {field} of {object}: {detail}")]
    BadField { object: String, field: String, detail: String },
}

/// A generic `zun_object.*` primitive. Round-trips any object losslessly.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectPrimitive {
    pub name: String,
    pub namespace: String,
    pub version: String,
    pub data: Map<String, Value>,
    /// Field names in `zun_object.changes`, in wire order (omitted from the wire when empty).
    pub changes: Vec<String>,
}

impl ObjectPrimitive {
    /// True when `v` looks like a zun object primitive (has `zun_object.name`).
    pub fn is_primitive(v: &Value) -> bool {
        v.as_object().is_some_and(|m| m.contains_key(KEY_NAME))
    }

    pub fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let m = v
            .as_object()
            .ok_or_else(|| ObjectError::NotAnObject(type_name(v).to_string()))?;
        let s = |key: &'static str| -> Result<String, ObjectError> {
            match m.get(key) {
                None => Err(ObjectError::MissingKey(key)),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(ObjectError::BadKey { key, detail: format!("expected a string, got {}", type_name(other)) }),
            }
        };
        let data = match m.get(KEY_DATA) {
            None => return Err(ObjectError::MissingKey(KEY_DATA)),
            Some(Value::Object(d)) => d.clone(),
            Some(other) => {
                return Err(ObjectError::BadKey { key: KEY_DATA, detail: format!("expected an object, got {}", type_name(other)) })
            }
        };
        let changes = match m.get(KEY_CHANGES) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|c| {
                    c.as_str().map(str::to_string).ok_or_else(|| ObjectError::BadKey {
                        key: KEY_CHANGES,
                        detail: "expected a list of field names".into(),
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(ObjectError::BadKey { key: KEY_CHANGES, detail: format!("expected a list, got {}", type_name(other)) })
            }
        };
        Ok(ObjectPrimitive { name: s(KEY_NAME)?, namespace: s(KEY_NAMESPACE)?, version: s(KEY_VERSION)?, data, changes })
    }

    /// The wire form, keys in zun's order.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert(KEY_NAME.into(), Value::String(self.name.clone()));
        m.insert(KEY_NAMESPACE.into(), Value::String(self.namespace.clone()));
        m.insert(KEY_VERSION.into(), Value::String(self.version.clone()));
        m.insert(KEY_DATA.into(), Value::Object(self.data.clone()));
        if !self.changes.is_empty() {
            m.insert(KEY_CHANGES.into(), Value::Array(self.changes.iter().cloned().map(Value::String).collect()));
        }
        Value::Object(m)
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// zun's `Container` object (v1.24 queens .. v1.44 master), fields in wire form.
///
/// `data` holds only the set fields; `changes` the fields modified since the last save
/// (including those zun-api sent unsaved). The version received is kept so the object
/// goes back at that version.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// `Container`, `Capsule`, `CapsuleContainer` or `CapsuleInitContainer`.
    pub name: String,
    pub version: String,
    pub data: Map<String, Value>,
    pub changes: BTreeSet<String>,
    /// Order of `changes` as received, for a faithful re-encode.
    changes_order: Vec<String>,
}

impl Container {
    pub fn from_primitive(p: ObjectPrimitive) -> Result<Self, ObjectError> {
        let changes: BTreeSet<String> = p.changes.iter().cloned().collect();
        Ok(Container { name: p.name, version: p.version, data: p.data, changes, changes_order: p.changes })
    }

    pub fn to_primitive(&self) -> ObjectPrimitive {
        let mut order: Vec<String> = self.changes_order.iter().filter(|c| self.changes.contains(*c)).cloned().collect();
        for c in &self.changes {
            if !order.contains(c) {
                order.push(c.clone());
            }
        }
        ObjectPrimitive {
            name: self.name.clone(),
            namespace: ZUN_NAMESPACE.into(),
            version: self.version.clone(),
            data: self.data.clone(),
            changes: order,
        }
    }

    /// The raw wire value of a field, `None` when unset.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.data.get(field)
    }

    /// Sets a field (wire form) and records it as changed.
    pub fn set(&mut self, field: &str, value: Value) {
        self.data.insert(field.to_string(), value);
        self.changes.insert(field.to_string());
    }

    /// String field, `None` when unset or null.
    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.data.get(field).and_then(Value::as_str)
    }

    pub fn uuid(&self) -> Option<&str> {
        self.get_str("uuid")
    }

    /// Forget pending changes (after a successful save).
    pub fn clear_changes(&mut self) {
        self.changes.clear();
        self.changes_order.clear();
    }
}
