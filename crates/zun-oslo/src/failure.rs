//! Failure payloads: the third JSON layer of a failed reply.
//!
//! oslo's `serialize_remote_exception` writes
//! `{"class", "module", "message", "tb", "args", "kwargs"}` with `json.dumps`, and the
//! caller rebuilds `module.class(*args, **kwargs)` when the module is `builtins` or in
//! its `allowed_remote_exmods` (`zun.common.exception` for zun-api), else it raises
//! `oslo_messaging.RemoteError`.
//!
//! The constructors here build what zun-compute would send:
//! - zun exceptions (module `zun.common.exception`): `args = [message]`,
//!   `kwargs = {<format kwargs>..., "code": <class code>}`. zun-api re-runs
//!   `ZunException.__init__(message, **kwargs)`, which %-formats the message with the
//!   kwargs; `%` in the message is therefore doubled in `args` so the rebuilt message
//!   equals ours (the real zun sends it undoubled, which breaks the rebuild whenever a
//!   message contains `%`). The HTTP status zun-api answers with is the *class's*
//!   `code` attribute, so pick the right class: the `code` kwarg is informational.
//! - oslo dispatcher errors `NoSuchMethod` / `UnsupportedVersion` (module
//!   `oslo_messaging.rpc.dispatcher`, `kwargs` empty), and oslo.versionedobjects'
//!   `IncompatibleObjectVersion` / `UnsupportedObjectError` (kwargs include `code: 500`),
//!   texts exactly as the real server writes them.
//! - Python builtins (`TypeError`, `AttributeError`, `ValueError`, `KeyError`, ...):
//!   module `builtins`, `kwargs` `{}`.
//!
//! `tb` cannot be Python's traceback; it is a short, honest one in Python's list-of-lines
//! shape naming this Rust implementation.
use crate::error::{CodecError, Layer};
use crate::pyjson::{self, py_repr, py_str};
use serde_json::{Map, Value};

pub const ZUN_EXCEPTION_MODULE: &str = "zun.common.exception";
pub const OSLO_DISPATCHER_MODULE: &str = "oslo_messaging.rpc.dispatcher";
pub const OVO_EXCEPTION_MODULE: &str = "oslo_versionedobjects.exception";
pub const BUILTINS_MODULE: &str = "builtins";
/// The file name our tracebacks point at.
pub const TB_FILE: &str = "zun-compute-rs (Rust)";

/// A remote exception as it travels in a reply's `failure` string.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteFailure {
    pub class: String,
    pub module: String,
    pub message: String,
    pub tb: Vec<String>,
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
}

/// A zun exception class: name, HTTP code (class attribute) and message template
/// (`zun/common/exception.py`, zun 18.0.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZunExceptionClass {
    pub class: &'static str,
    pub code: u16,
    pub template: &'static str,
}

macro_rules! zun_classes {
    ($($name:literal => $code:literal, $tmpl:literal;)*) => {
        /// The zun exception classes zun-compute raises, with their codes and templates.
        pub const ZUN_EXCEPTIONS: &[ZunExceptionClass] = &[
            $(ZunExceptionClass { class: $name, code: $code, template: $tmpl },)*
        ];
    };
}

zun_classes! {
    "ZunException" => 500, "An unknown exception occurred.";
    "Invalid" => 400, "Unacceptable parameters.";
    "InvalidValue" => 400, "Received value '%(value)s' is invalid for type %(type)s.";
    "ValidationError" => 400, "%(detail)s";
    "InvalidUUID" => 400, "Expected a uuid but received %(uuid)s.";
    "InvalidParameterValue" => 400, "%(err)s";
    "NotFound" => 404, "Resource could not be found.";
    "ResourceNotFound" => 404, "The %(name)s resource %(id)s could not be found.";
    "HTTPNotFound" => 404, "The %(name)s resource %(id)s could not be found.";
    "Conflict" => 409, "Conflict.";
    "InvalidState" => 409, "Invalid resource state.";
    "InvalidStateException" => 409, "Cannot %(action)s container %(id)s in %(actual_state)s state";
    "NotAuthorized" => 403, "Not authorized.";
    "ContainerNotFound" => 404, "Container %(container)s could not be found.";
    "ContainerHostNotUp" => 500, "Container %(container)s host %(host)s is not up.";
    "ComputeNodeNotFound" => 404, "Compute node %(compute_node)s could not be found.";
    "NetworkNotFound" => 404, "Neutron network %(network)s could not be found.";
    "RegistryNotFound" => 404, "Registry %(registry)s could not be found.";
    "PortNotFound" => 404, "Neutron port %(port)s could not be found.";
    "VolumeMappingNotFound" => 404, "Volume mapping %(volume_mapping)s could not be found.";
    "VolumeNotFound" => 404, "Volume %(volume)s could not be found.";
    "ImageNotFound" => 400, "Image %(image)s could not be found.";
    "OperationNotSupported" => 500, "The operation is not supported.";
    "ContainerAlreadyExists" => 409, "A container with %(field)s %(value)s already exists.";
    "ExecInstanceAlreadyExists" => 409, "An exec instance with exec_id %(exec_id)s already exists in container.";
    "PortNotUsable" => 400, "Port %(port)s not usable for the container.";
    "PortInUse" => 400, "Port %(port)s is still in use.";
    "VolumeNotUsable" => 400, "Volume %(volume)s not usable for the container.";
    "VolumeInUse" => 400, "Volume %(volume)s is still in use.";
    "PortBindingFailed" => 400, "Binding failed for port %(port)s, please check neutron logs for more information.";
    "DockerError" => 500, "Docker internal error: %(error_msg)s.";
    "PollTimeOut" => 500, "Polling request timed out.";
    "EntityNotFound" => 500, "The %(entity)s (%(name)s) could not be found.";
    "CommandError" => 500, "The command: %(cmd)s failed on the system, due to %(error)s";
    "NoValidHost" => 500, "No valid host was found. %(reason)s";
    "NoInteractiveFlag" => 400, "%(msg)s";
    "CPUPinningUnknown" => 500, "CPU set to pin %(requested)s must be a subset of known CPU set %(cpuset)s";
    "CPUPinningInvalid" => 400, "CPU set to pin %(requested)s must be a subset of free CPU set %(free)s";
    "CPUUnpinningInvalid" => 400, "CPU set to unpin %(requested)s must be a subset of pinned CPU set %(pinned)s";
    "ConnectionFailed" => 500, "Failed to connect to remote host";
    "SocketException" => 500, "Socket exceptions";
    "InvalidWebsocketUrl" => 500, "Websocket Url invalid";
    "InvalidWebsocketToken" => 500, "Websocket token is invalid";
    "ResourcesUnavailable" => 500, "Insufficient compute resources: %(reason)s.";
    "PciDeviceNotFound" => 404, "PCI Device %(node_id)s:%(address)s not found.";
    "PciDeviceNotFoundById" => 404, "PCI device %(id)s not found";
    "CapsuleNotFound" => 404, "Capsule %(capsule)s could not be found.";
    "InvalidCapsuleTemplate" => 500, "Invalid capsule template: %(reason)s.";
    "VolumeCreateFailed" => 400, "Volume Creation failed: %(creation_failed)s";
    "VolumeDeleteFailed" => 400, "Volume Deletion failed: %(deletion_failed)s";
    "SecurityGroupCannotBeApplied" => 400, "Security groups cannot apply to the container.";
    "SecurityGroupCannotBeRemoved" => 400, "Security groups cannot be removed from the container.";
    "ExternalNetworkAttachForbidden" => 403, "It is not allowed to create an interface on external network %(network_uuid)s";
    "ContainerActionNotFound" => 500, "Action for request_id %(request_id)s on container %(container_uuid)s not fount";
    "ContainerActionEventNotFound" => 500, "Event %(event)s not found for action id %(action_id)s";
    "Base64Exception" => 400, "Invalid Base 64 file data";
    "ComputeHostNotFound" => 404, "Compute host %(host)s could not be found.";
    "RequestedHostNotFound" => 404, "Requested host %(host)s could not be found.";
    "ResourceProviderNotFound" => 404, "No such resource provider %(name_or_uuid)s.";
    "PlacementAPIConnectFailure" => 500, "Unable to communicate with the Placement API.";
    "ResourceNotReady" => 500, "Resource not ready: %(resource)s";
    "ObjectActionError" => 500, "Object action %(action)s failed because: %(reason)s";
}

/// The class entry for a zun exception name.
pub fn zun_exception_class(class: &str) -> Option<&'static ZunExceptionClass> {
    ZUN_EXCEPTIONS.iter().find(|c| c.class == class)
}

/// Python's `template % kwargs` for `%(name)s`, `%(name)d`, `%(name)r` and `%%`.
/// `None` when a name is missing (Python's `KeyError`; zun then keeps the template).
pub fn py_percent_format(template: &str, kwargs: &Map<String, Value>) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('%') {
            out.push('%');
            rest = r;
            continue;
        }
        let Some(body) = after.strip_prefix('(') else {
            // Not a mapping specifier; Python would raise, keep it literally.
            out.push('%');
            rest = after;
            continue;
        };
        let close = body.find(')')?;
        let name = &body[..close];
        let spec_rest = &body[close + 1..];
        let conv = spec_rest.chars().next()?;
        let v = kwargs.get(name)?;
        match conv {
            'r' => out.push_str(&py_repr(v)),
            'd' => out.push_str(&match v {
                Value::Number(n) => n.as_i64().map_or_else(|| py_str(v), |i| i.to_string()),
                Value::Bool(b) => (*b as i64).to_string(),
                other => py_str(other),
            }),
            _ => out.push_str(&py_str(v)),
        }
        rest = &spec_rest[conv.len_utf8()..];
    }
    out.push_str(rest);
    Some(out)
}

fn kwargs_of(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

impl RemoteFailure {
    /// A failure with a generated traceback.
    pub fn new(module: &str, class: &str, message: impl Into<String>, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        let message = message.into();
        let qual = if module == BUILTINS_MODULE { class.to_string() } else { format!("{module}.{class}") };
        let last = if message.is_empty() { format!("{qual}\n") } else { format!("{qual}: {message}\n") };
        RemoteFailure {
            class: class.into(),
            module: module.into(),
            message,
            tb: vec!["Traceback (most recent call last):\n".into(), format!("  File \"{TB_FILE}\", line 0, in <rpc>\n"), last],
            args,
            kwargs,
        }
    }

    /// Adds a frame (`  File "<file>", in <function>`) before the exception line.
    pub fn with_frame(mut self, file: &str, function: &str) -> Self {
        let at = self.tb.len().saturating_sub(1);
        self.tb.insert(at, format!("  File \"{file}\", line 0, in {function}\n"));
        self
    }

    /// `kwargs["code"]`, when an integer.
    pub fn code(&self) -> Option<i64> {
        self.kwargs.get("code").and_then(Value::as_i64)
    }

    /// The failure as a JSON value, keys in oslo's order.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("class".into(), Value::String(self.class.clone()));
        m.insert("module".into(), Value::String(self.module.clone()));
        m.insert("message".into(), Value::String(self.message.clone()));
        m.insert("tb".into(), Value::Array(self.tb.iter().cloned().map(Value::String).collect()));
        m.insert("args".into(), Value::Array(self.args.clone()));
        m.insert("kwargs".into(), Value::Object(self.kwargs.clone()));
        Value::Object(m)
    }

    /// The `failure` string of a reply (Python `json.dumps` formatting).
    pub fn to_json_string(&self) -> String {
        pyjson::to_python_json(&self.to_value())
    }

    /// Reads a failure string. `class` and `module` are required; the rest defaults
    /// like oslo's `deserialize_remote_exception` (`message` "", `tb`/`args` [],
    /// `kwargs` {}).
    pub fn from_json_str(s: &str) -> Result<Self, CodecError> {
        let v = pyjson::parse(s).map_err(|source| CodecError::Json { layer: Layer::Failure, source })?;
        Self::from_value(&v)
    }

    pub fn from_value(v: &Value) -> Result<Self, CodecError> {
        let m = v.as_object().ok_or(CodecError::NotAnObject { layer: Layer::Failure, got: pyjson::py_type_name(v) })?;
        let bad = |key: &str, want: &str| CodecError::BadKey { key: key.into(), detail: format!("failure {key} must be {want}") };
        let s = |key: &str| -> Result<String, CodecError> {
            match m.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(bad(key, "a string")),
            }
        };
        let message = match m.get("message") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad("message", "a string")),
        };
        let tb = match m.get("tb") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => {
                a.iter().map(|l| l.as_str().map(str::to_string).ok_or_else(|| bad("tb", "a list of strings"))).collect::<Result<_, _>>()?
            }
            Some(_) => return Err(bad("tb", "a list of strings")),
        };
        let args = match m.get("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(bad("args", "a list")),
        };
        let kwargs = match m.get("kwargs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(_) => return Err(bad("kwargs", "a dict")),
        };
        Ok(RemoteFailure { class: s("class")?, module: s("module")?, message, tb, args, kwargs })
    }

    // ---- zun.common.exception ----

    /// A zun exception whose message comes from its class template formatted with
    /// `kwargs` (like `raise exception.ContainerNotFound(container=uuid)`). Unknown
    /// class names get `ZunException`'s code and template.
    pub fn zun(class: &str, kwargs: &[(&str, Value)]) -> Self {
        let entry = zun_exception_class(class).copied().unwrap_or(ZUN_EXCEPTIONS[0]);
        let kw = kwargs_of(kwargs);
        let message = py_percent_format(entry.template, &kw).unwrap_or_else(|| entry.template.to_string());
        Self::zun_coded(class, entry.code, message, kw)
    }

    /// A zun exception raised with an explicit message (`raise Invalid(msg)`).
    pub fn zun_with_message(class: &str, message: impl Into<String>, kwargs: &[(&str, Value)]) -> Self {
        let code = zun_exception_class(class).map_or(500, |c| c.code);
        Self::zun_coded(class, code, message.into(), kwargs_of(kwargs))
    }

    fn zun_coded(class: &str, code: u16, message: String, mut kwargs: Map<String, Value>) -> Self {
        if !kwargs.contains_key("code") {
            kwargs.insert("code".into(), Value::from(code));
        }
        // zun-api re-applies `message % kwargs`: protect literal percent signs.
        let arg = Value::String(message.replace('%', "%%"));
        Self::new(ZUN_EXCEPTION_MODULE, class, message, vec![arg], kwargs)
    }

    /// `ZunException(message)`: HTTP 500.
    pub fn zun_exception(message: impl Into<String>) -> Self {
        Self::zun_with_message("ZunException", message, &[])
    }

    /// What zun's `translate_exception` makes of a non-zun error.
    pub fn unexpected(detail: impl std::fmt::Display) -> Self {
        Self::zun_exception(format!("Unexpected error: {detail}"))
    }

    /// `Invalid(message)`: HTTP 400.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::zun_with_message("Invalid", message, &[])
    }

    /// `NotFound(message)`: HTTP 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::zun_with_message("NotFound", message, &[])
    }

    /// `Conflict(message)`: HTTP 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::zun_with_message("Conflict", message, &[])
    }

    pub fn container_not_found(container: &str) -> Self {
        Self::zun("ContainerNotFound", &[("container", Value::from(container))])
    }

    pub fn resources_unavailable(reason: &str) -> Self {
        Self::zun("ResourcesUnavailable", &[("reason", Value::from(reason))])
    }

    pub fn image_not_found(image: &str) -> Self {
        Self::zun("ImageNotFound", &[("image", Value::from(image))])
    }

    /// zun's docker driver also raises `ImageNotFound(message)` with a free text.
    pub fn image_not_found_msg(message: impl Into<String>) -> Self {
        Self::zun_with_message("ImageNotFound", message, &[])
    }

    pub fn docker_error(error_msg: &str) -> Self {
        Self::zun("DockerError", &[("error_msg", Value::from(error_msg))])
    }

    /// `OperationNotSupported()` or with an explicit message.
    pub fn operation_not_supported(message: Option<&str>) -> Self {
        match message {
            Some(m) => Self::zun_with_message("OperationNotSupported", m, &[]),
            None => Self::zun("OperationNotSupported", &[]),
        }
    }

    pub fn container_action_not_found(request_id: &str, container_uuid: &str) -> Self {
        Self::zun("ContainerActionNotFound", &[("request_id", Value::from(request_id)), ("container_uuid", Value::from(container_uuid))])
    }

    pub fn base64_exception() -> Self {
        Self::zun("Base64Exception", &[])
    }

    pub fn invalid_state(action: &str, id: &str, actual_state: &str) -> Self {
        Self::zun(
            "InvalidStateException",
            &[("action", Value::from(action)), ("id", Value::from(id)), ("actual_state", Value::from(actual_state))],
        )
    }

    pub fn volume_not_found(volume: &str) -> Self {
        Self::zun("VolumeNotFound", &[("volume", Value::from(volume))])
    }

    pub fn network_not_found(network: &str) -> Self {
        Self::zun("NetworkNotFound", &[("network", Value::from(network))])
    }

    pub fn port_not_found(port: &str) -> Self {
        Self::zun("PortNotFound", &[("port", Value::from(port))])
    }

    pub fn port_not_usable(port: &str) -> Self {
        Self::zun("PortNotUsable", &[("port", Value::from(port))])
    }

    pub fn command_error(cmd: &str, error: &str) -> Self {
        Self::zun("CommandError", &[("cmd", Value::from(cmd)), ("error", Value::from(error))])
    }

    // ---- oslo.messaging dispatcher ----

    /// `NoSuchMethod(method)`: unknown method or one starting with `_`.
    pub fn no_such_method(method: &str) -> Self {
        let msg = format!("Endpoint does not support RPC method {method}");
        Self::new(OSLO_DISPATCHER_MODULE, "NoSuchMethod", msg.clone(), vec![Value::String(msg)], Map::new())
    }

    /// `UnsupportedVersion(version, method=method)`. `version` is the request's raw
    /// value (`"1.0"` when absent), printed with Python's `str()`.
    pub fn unsupported_version(version: &Value, method: Option<&Value>) -> Self {
        let mut msg = format!("Endpoint does not support RPC version {}", py_str(version));
        if let Some(m) = method.filter(|m| py_truthy(m)) {
            msg = format!("{msg}. Attempted method: {}", py_str(m));
        }
        Self::new(OSLO_DISPATCHER_MODULE, "UnsupportedVersion", msg.clone(), vec![Value::String(msg)], Map::new())
    }

    // ---- oslo.versionedobjects ----

    pub fn incompatible_object_version(objname: &str, objver: &str, supported: &str) -> Self {
        let msg = format!("Version {objver} of {objname} is not supported, supported version is {supported}");
        let kw = kwargs_of(&[
            ("objname", Value::from(objname)),
            ("objver", Value::from(objver)),
            ("supported", Value::from(supported)),
            ("code", Value::from(500)),
        ]);
        Self::new(OVO_EXCEPTION_MODULE, "IncompatibleObjectVersion", msg.clone(), vec![Value::String(msg)], kw)
    }

    /// `UnsupportedObjectError(objtype=...)`: `objtype` is `Name` for an unknown name or
    /// `namespace.Name` for a foreign namespace.
    pub fn unsupported_object(objtype: &str) -> Self {
        let msg = format!("Unsupported object type {objtype}");
        let kw = kwargs_of(&[("objtype", Value::from(objtype)), ("code", Value::from(500))]);
        Self::new(OVO_EXCEPTION_MODULE, "UnsupportedObjectError", msg.clone(), vec![Value::String(msg)], kw)
    }

    // ---- builtins ----

    /// A builtin exception raised with one message argument.
    pub fn builtin(class: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(BUILTINS_MODULE, class, message.clone(), vec![Value::String(message)], Map::new())
    }

    pub fn type_error(message: impl Into<String>) -> Self {
        Self::builtin("TypeError", message)
    }

    pub fn attribute_error(message: impl Into<String>) -> Self {
        Self::builtin("AttributeError", message)
    }

    pub fn value_error(message: impl Into<String>) -> Self {
        Self::builtin("ValueError", message)
    }

    /// `KeyError(key)`: the message is the key's `repr()`.
    pub fn key_error(key: &Value) -> Self {
        Self::new(BUILTINS_MODULE, "KeyError", py_repr(key), vec![key.clone()], Map::new())
    }
}

fn py_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_none_or(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}: {}", self.module, self.class, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_not_found_shape() {
        let f = RemoteFailure::container_not_found("00000000-0000-0000-0000-00000000dead");
        assert_eq!(f.message, "Container 00000000-0000-0000-0000-00000000dead could not be found.");
        assert_eq!(f.args, vec![json!("Container 00000000-0000-0000-0000-00000000dead could not be found.")]);
        assert_eq!(Value::Object(f.kwargs.clone()), json!({"container": "00000000-0000-0000-0000-00000000dead", "code": 404}));
        assert_eq!(
            f.tb.last().unwrap(),
            "zun.common.exception.ContainerNotFound: Container 00000000-0000-0000-0000-00000000dead could not be found.\n"
        );
        let back = RemoteFailure::from_json_str(&f.to_json_string()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn percent_in_messages() {
        let f = RemoteFailure::invalid("disk 100% full");
        assert_eq!(f.message, "disk 100% full");
        assert_eq!(f.args, vec![json!("disk 100%% full")]);
        assert_eq!(f.code(), Some(400));
        assert_eq!(
            py_percent_format("a %(x)s %(y)d %% %(z)r", json!({"x": "s", "y": 3, "z": "q"}).as_object().unwrap()).unwrap(),
            "a s 3 % 'q'"
        );
        assert!(py_percent_format("%(missing)s", &Map::new()).is_none());
    }

    #[test]
    fn dispatcher_texts() {
        assert_eq!(RemoteFailure::no_such_method("container_teleport").message, "Endpoint does not support RPC method container_teleport");
        assert_eq!(
            RemoteFailure::unsupported_version(&json!("1.3"), Some(&json!("echo_args"))).message,
            "Endpoint does not support RPC version 1.3. Attempted method: echo_args"
        );
        assert_eq!(RemoteFailure::unsupported_version(&json!("1.0"), None).message, "Endpoint does not support RPC version 1.0");
        assert_eq!(RemoteFailure::key_error(&json!("x")).message, "'x'");
        let f = RemoteFailure::incompatible_object_version("Container", "1.99", "1.44");
        assert_eq!(f.message, "Version 1.99 of Container is not supported, supported version is 1.44");
    }
}
