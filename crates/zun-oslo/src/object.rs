//! Versioned objects as zun serializes them: `zun_object.name`, `.namespace`, `.version`,
//! `.data` (set fields only) and `.changes` (pending, unsaved field names).
//!
//! Field values are kept in their *wire form* (exactly what zun's serializer emits:
//! JsonFields as JSON strings, datetimes as `YYYY-MM-DDTHH:MM:SSZ`, `memory` as a string,
//! nested objects as nested primitives). The store converts wire form to columns; the
//! domain reads and writes through typed accessors.
use crate::container_fields::{
    self, capsule_minor_to_container_minor, FieldSpec, FieldType, CAPSULE_CONTAINER_EXTRA_FIELDS, CAPSULE_EXTRA_FIELDS, CPUSET_FIELDS,
};
use crate::failure::RemoteFailure;
use crate::version::{object_version_is_compatible, version_tuple};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

pub const KEY_NAME: &str = "zun_object.name";
pub const KEY_NAMESPACE: &str = "zun_object.namespace";
pub const KEY_VERSION: &str = "zun_object.version";
pub const KEY_DATA: &str = "zun_object.data";
pub const KEY_CHANGES: &str = "zun_object.changes";
pub const ZUN_NAMESPACE: &str = "zun";

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
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

/// An [`ObjectPrimitive`] borrowed from the message it came in, for the checks that
/// need no copy of it (the dispatcher's walk over every argument).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrimitiveRef<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub version: &'a str,
    pub data: &'a Map<String, Value>,
    /// `zun_object.changes`, every item a string (checked).
    changes: &'a [Value],
}

impl PrimitiveRef<'_> {
    pub fn to_owned(self) -> ObjectPrimitive {
        ObjectPrimitive {
            name: self.name.to_string(),
            namespace: self.namespace.to_string(),
            version: self.version.to_string(),
            data: self.data.clone(),
            changes: self.changes.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        }
    }

    /// [`check_object_version`] of this primitive.
    pub fn check_version(&self) -> Result<(), ObjectError> {
        check_version(self.name, self.namespace, self.version)
    }
}

impl ObjectPrimitive {
    /// True when `v` looks like a zun object primitive (has `zun_object.name`).
    pub fn is_primitive(v: &Value) -> bool {
        v.as_object().is_some_and(|m| m.contains_key(KEY_NAME))
    }

    /// Reads a primitive in place: the checks of [`ObjectPrimitive::from_value`], in the
    /// same order, with nothing copied.
    pub fn parse(v: &Value) -> Result<PrimitiveRef<'_>, ObjectError> {
        let m = v.as_object().ok_or_else(|| ObjectError::NotAnObject(type_name(v).to_string()))?;
        let s = |key: &'static str| -> Result<&str, ObjectError> {
            match m.get(key) {
                None => Err(ObjectError::MissingKey(key)),
                Some(Value::String(s)) => Ok(s),
                Some(other) => Err(ObjectError::BadKey { key, detail: format!("expected a string, got {}", type_name(other)) }),
            }
        };
        let data = match m.get(KEY_DATA) {
            None => return Err(ObjectError::MissingKey(KEY_DATA)),
            Some(Value::Object(d)) => d,
            Some(other) => {
                return Err(ObjectError::BadKey { key: KEY_DATA, detail: format!("expected an object, got {}", type_name(other)) })
            }
        };
        let changes: &[Value] = match m.get(KEY_CHANGES) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => a,
            Some(Value::Array(_)) => return Err(ObjectError::BadKey { key: KEY_CHANGES, detail: "expected a list of field names".into() }),
            Some(other) => {
                return Err(ObjectError::BadKey { key: KEY_CHANGES, detail: format!("expected a list, got {}", type_name(other)) })
            }
        };
        Ok(PrimitiveRef { name: s(KEY_NAME)?, namespace: s(KEY_NAMESPACE)?, version: s(KEY_VERSION)?, data, changes })
    }

    pub fn from_value(v: &Value) -> Result<Self, ObjectError> {
        Self::parse(v).map(PrimitiveRef::to_owned)
    }

    /// The wire form, keys in zun's order.
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// [`ObjectPrimitive::to_value`] without copying the data.
    pub fn into_value(self) -> Value {
        let mut m = Map::new();
        m.insert(KEY_NAME.into(), Value::String(self.name));
        m.insert(KEY_NAMESPACE.into(), Value::String(self.namespace));
        m.insert(KEY_VERSION.into(), Value::String(self.version));
        m.insert(KEY_DATA.into(), Value::Object(self.data));
        if !self.changes.is_empty() {
            m.insert(KEY_CHANGES.into(), Value::Array(self.changes.into_iter().map(Value::String).collect()));
        }
        Value::Object(m)
    }
}

/// Newest version of every object zun 18.0.0 registers (`ZunObjectRegistry`).
pub const OBJECT_VERSIONS: &[(&str, &str)] = &[
    ("Container", "1.44"),
    ("Capsule", "1.4"),
    ("CapsuleContainer", "1.4"),
    ("CapsuleInitContainer", "1.4"),
    ("Cpuset", "1.0"),
    ("VolumeMapping", "1.5"),
    ("Volume", "1.0"),
    ("Image", "1.2"),
    ("Registry", "1.0"),
    ("ContainerPCIRequests", "1.0"),
    ("ContainerPCIRequest", "1.0"),
    ("ComputeNode", "1.14"),
    ("ZunService", "1.2"),
    ("ExecInstance", "1.0"),
    ("ZunNetwork", "1.2"),
    ("ContainerAction", "1.2"),
    ("ContainerActionEvent", "1.0"),
    ("PciDevice", "1.1"),
    ("PciDevicePool", "1.0"),
    ("PciDevicePoolList", "1.0"),
    ("NUMANode", "1.0"),
    ("NUMATopology", "1.0"),
    ("Quota", "1.3"),
    ("QuotaClass", "1.2"),
    ("RequestGroup", "1.0"),
    ("ResourceClass", "1.1"),
    ("ResourceProvider", "1.0"),
    ("VIFState", "1.0"),
];

/// Names a `Container` value may carry.
pub const CONTAINER_OBJECT_NAMES: [&str; 4] = ["Container", "Capsule", "CapsuleContainer", "CapsuleInitContainer"];

/// The newest version we implement of a registered object, `None` when unknown.
pub fn object_max_version(name: &str) -> Option<&'static str> {
    OBJECT_VERSIONS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// oslo.versionedobjects' checks on receipt (`obj_from_primitive`), in its order:
/// namespace (`UnsupportedObjectError("<ns>.<name>")`), registered name
/// (`UnsupportedObjectError("<name>")`), then version: same major and minor not above
/// ours (`IncompatibleObjectVersion`, supported = our newest). An unparsable version is
/// `BadKey` (Python's `ValueError`).
pub fn check_object_version(p: &ObjectPrimitive) -> Result<(), ObjectError> {
    check_version(&p.name, &p.namespace, &p.version)
}

fn check_version(name: &str, namespace: &str, version: &str) -> Result<(), ObjectError> {
    if namespace != ZUN_NAMESPACE {
        return Err(ObjectError::Unsupported(format!("{namespace}.{name}")));
    }
    let max = object_max_version(name).ok_or_else(|| ObjectError::Unsupported(name.to_string()))?;
    if version == max {
        return Ok(());
    }
    match object_version_is_compatible(version, max) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ObjectError::IncompatibleVersion { name: name.to_string(), version: version.to_string(), supported: max.into() }),
        Err(e) => Err(ObjectError::BadKey { key: KEY_VERSION, detail: e.to_string() }),
    }
}

impl ObjectError {
    /// The failure the real server replies with for this error: oslo.versionedobjects'
    /// exceptions, or the Python builtin a bad field or primitive raises.
    pub fn to_failure(&self) -> RemoteFailure {
        match self {
            ObjectError::Unsupported(t) => RemoteFailure::unsupported_object(t),
            ObjectError::IncompatibleVersion { name, version, supported } => {
                RemoteFailure::incompatible_object_version(name, version, supported)
            }
            ObjectError::MissingKey(k) => RemoteFailure::key_error(&Value::String((*k).into())),
            ObjectError::BadField { detail, .. } => match detail.split_once(": ") {
                Some((cls @ ("TypeError" | "ValueError" | "AttributeError"), msg)) => RemoteFailure::builtin(cls, msg),
                _ => RemoteFailure::value_error(detail.clone()),
            },
            ObjectError::BadKey { detail, .. } => match detail.split_once(": ") {
                Some((cls @ ("TypeError" | "ValueError" | "AttributeError" | "IndexError"), msg)) => RemoteFailure::builtin(cls, msg),
                _ => RemoteFailure::type_error(detail.clone()),
            },
            ObjectError::NotAnObject(t) => RemoteFailure::attribute_error(format!("'{t}' object has no attribute 'get'")),
        }
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
    /// A `Container` at the newest version (1.44) holding `data`, with no pending changes.
    pub fn with_data(data: Map<String, Value>) -> Self {
        Container { name: "Container".into(), version: "1.44".into(), data, changes: BTreeSet::new(), changes_order: Vec::new() }
    }

    pub fn from_primitive(p: ObjectPrimitive) -> Result<Self, ObjectError> {
        let changes: BTreeSet<String> = p.changes.iter().cloned().collect();
        Ok(Container { name: p.name, version: p.version, data: p.data, changes, changes_order: p.changes })
    }

    pub fn to_primitive(&self) -> ObjectPrimitive {
        ObjectPrimitive {
            name: self.name.clone(),
            namespace: ZUN_NAMESPACE.into(),
            version: self.version.clone(),
            data: self.data.clone(),
            changes: self.changes_in_wire_order(),
        }
    }

    /// `changes` in the order they were received, then the ones set since.
    fn changes_in_wire_order(&self) -> Vec<String> {
        let mut order: Vec<String> = self.changes_order.iter().filter(|c| self.changes.contains(*c)).cloned().collect();
        for c in &self.changes {
            if !order.contains(c) {
                order.push(c.clone());
            }
        }
        order
    }

    /// The raw wire value of a field, `None` when unset.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.data.get(field)
    }

    /// Sets a field (wire form) and records it as changed.
    pub fn set(&mut self, field: &str, value: Value) {
        self.data.insert(field.to_string(), value);
        if self.changes.insert(field.to_string()) && !self.changes_order.iter().any(|c| c == field) {
            self.changes_order.push(field.to_string());
        }
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

impl Container {
    /// Decodes a Container-family primitive with oslo's receipt checks (see
    /// [`check_object_version`]); the name must be one of [`CONTAINER_OBJECT_NAMES`].
    /// Field values are not checked here, see [`Container::validate`].
    pub fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let p = ObjectPrimitive::from_value(v)?;
        check_object_version(&p)?;
        if !CONTAINER_OBJECT_NAMES.contains(&p.name.as_str()) {
            return Err(ObjectError::BadKey { key: KEY_NAME, detail: format!("expected a Container, got a {}", p.name) });
        }
        Self::from_primitive(p)
    }

    /// The wire value (at the version received).
    pub fn to_value(&self) -> Value {
        // One copy of the data (into the primitive), not two.
        self.to_primitive().into_value()
    }

    /// [`Container::to_value`] of an object that is not needed afterwards: the data
    /// moves into the primitive, nothing is copied.
    pub fn into_value(self) -> Value {
        let changes = self.changes_in_wire_order();
        ObjectPrimitive { name: self.name, namespace: ZUN_NAMESPACE.into(), version: self.version, data: self.data, changes }.into_value()
    }

    /// The minor version number (`1.44` -> 44); 0 when unparsable.
    pub fn minor(&self) -> u32 {
        version_tuple(&self.version).ok().and_then(|t| t.get(1).copied()).and_then(|m| u32::try_from(m).ok()).unwrap_or(0)
    }

    /// The Container-table minor version whose fields this object carries.
    pub fn container_minor(&self) -> u32 {
        if self.name == "Container" {
            self.minor()
        } else {
            capsule_minor_to_container_minor(self.minor())
        }
    }

    /// zun's `container_type` column for this class (0 container, 1 capsule, 2 capsule
    /// container, 3 capsule init container).
    pub fn container_type(&self) -> i32 {
        match self.name.as_str() {
            "Capsule" => 1,
            "CapsuleContainer" => 2,
            "CapsuleInitContainer" => 3,
            _ => 0,
        }
    }

    /// The spec of a field at this object's version (`None`: not a field here).
    pub fn field_spec(&self, field: &str) -> Option<&'static FieldSpec> {
        self.field_spec_at(field, self.container_minor())
    }

    /// [`Container::field_spec`] with the Container minor version already known.
    fn field_spec_at(&self, field: &str, container_minor: u32) -> Option<&'static FieldSpec> {
        let extra: &[FieldSpec] = match self.name.as_str() {
            "Capsule" => CAPSULE_EXTRA_FIELDS,
            "CapsuleContainer" | "CapsuleInitContainer" => CAPSULE_CONTAINER_EXTRA_FIELDS,
            _ => &[],
        };
        extra.iter().find(|s| s.name == field).or_else(|| container_fields::container_field(field, container_minor))
    }

    /// Checks every set field known at this version against its type, with the real
    /// server's coercion tolerance; nested objects are checked recursively (name,
    /// namespace, version, fields). Unknown fields are left alone.
    pub fn validate(&self) -> Result<(), ObjectError> {
        // The version is parsed once, not once per field.
        let minor = self.container_minor();
        for (field, value) in &self.data {
            let Some(spec) = self.field_spec_at(field, minor) else { continue };
            validate_field(&self.name, spec, value)?;
        }
        Ok(())
    }
}

fn bad_field(object: &str, field: &str, detail: String) -> ObjectError {
    ObjectError::BadField { object: object.into(), field: field.into(), detail }
}

fn validate_field(object: &str, spec: &FieldSpec, value: &Value) -> Result<(), ObjectError> {
    if value.is_null() {
        return if spec.nullable {
            Ok(())
        } else {
            Err(bad_field(object, spec.name, format!("ValueError: Field `{}' cannot be None", spec.name)))
        };
    }
    container_fields::check_value(spec.ty, spec.name, value).map_err(|d| bad_field(object, spec.name, d))?;
    match spec.ty {
        FieldType::Object(expected) => validate_nested(object, spec.name, expected, value),
        FieldType::ListOfObjects(expected) => {
            value.as_array().into_iter().flatten().try_for_each(|item| validate_nested(object, spec.name, expected, item))
        }
        _ => Ok(()),
    }
}

/// A nested object: oslo hydrates it (same receipt checks) and the field requires the
/// expected class.
fn validate_nested(object: &str, field: &str, expected: &str, value: &Value) -> Result<(), ObjectError> {
    if !ObjectPrimitive::is_primitive(value) {
        return Err(bad_field(
            object,
            field,
            format!("An object of type {expected} is required in field {field}, not a {}", crate::pyjson::py_type_name(value)),
        ));
    }
    let p = ObjectPrimitive::parse(value)?;
    p.check_version()?;
    if p.name != expected {
        return Err(bad_field(object, field, format!("An object of type {expected} is required in field {field}, not a {}", p.name)));
    }
    match expected {
        "Cpuset" => {
            for (k, v) in p.data {
                if let Some(spec) = CPUSET_FIELDS.iter().find(|s| s.name == k) {
                    validate_field(p.name, spec, v)?;
                }
            }
            Ok(())
        }
        "CapsuleContainer" | "CapsuleInitContainer" => Container::from_primitive(p.to_owned())?.validate(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_value_is_to_value() {
        let body = serde_json::json!({
            "zun_object.name": "Container", "zun_object.namespace": "zun", "zun_object.version": "1.40",
            "zun_object.data": {"uuid": "u", "name": "n", "memory": "512M"},
            "zun_object.changes": ["name", "uuid"]
        });
        let mut c = Container::from_value(&body).unwrap();
        c.set("status", Value::String("Running".into()));
        c.set("name", Value::String("m".into()));
        assert_eq!(c.clone().into_value(), c.to_value());
    }
}
