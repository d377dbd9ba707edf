//! Container → Docker `POST /containers/create` body (pure).
//!
//! Implements zun's `DockerDriver.create` argument building (zun-compute-surface.md §3.2)
//! as docker-py turns it into the Engine API body. Checked field by field against the body
//! the real zun-compute sent (tests/fixtures/docker/zun-compute-docker-api-calls.json):
//!
//! - `Image` `repo:tag` (bare `repo` when the tag is empty: glance); the Docker name is
//!   `zun-<uuid>` ([`docker_name`]).
//! - `Cmd` / `Entrypoint` from `command` / `entrypoint` (omitted when null or empty; the
//!   caller first fills both from the image with [`fill_command_from_image`], as zun does).
//! - `Env` `["K=V"]` and `Labels` (omitted when empty), `WorkingDir`, `Hostname` (omitted
//!   when null), `Tty`, `OpenStdin` (= interactive).
//! - docker-py's attach flags: `AttachStdout`/`AttachStderr` true, `AttachStdin` and
//!   `StdinOnce` = interactive; `NetworkDisabled` false; `Volumes` `{dst: {}}`.
//! - `HostConfig`: `Binds` (`src:dst:rw`, always present), `NetworkMode`, `Memory`
//!   (MB × 2^20), `CpuShares` `int(1024 × cpu)`, `Runtime` (`runtime` or the default, when the
//!   API version is ≥ 1.26), `Privileged`/`AutoRemove` only when true, `RestartPolicy`
//!   (`MaximumRetryCount` as an integer), `StorageOpt {"size": "<disk>G"}` when `disk` is set
//!   (an error when the host has no disk quota support: zun refuses such containers with the
//!   same message), `CpusetCpus`/`CpusetMems` for `cpu_policy == "dedicated"`.
//! - `Healthcheck`: `Test` (a string becomes `["CMD-SHELL", s]`), `Interval`/`Timeout` in
//!   nanoseconds, `Retries`; `ExposedPorts` from `exposed_ports` (no port publishing).
//!
//! **NetworkMode.** zun sets it to the Neutron network (kuryr) or `none` (CNI). Without a
//! network driver the real zun-compute sends docker-py's default, `"default"` (the bridge
//! network on Linux). [`MappingOptions::network_mode`] defaults to `"default"` to match the
//! fixture; give it `[docker] default_network` or a network name to change that. An empty
//! string also means `"default"`.
//!
//! **Cpuset.** zun passes Python sets to docker-py there (a bug on master); this mapping sends
//! Docker's list form (`"0,1"`).
//!
//! Fields are read from the Container's wire form (`Container::get`) and parsed leniently:
//! JSON fields may arrive as JSON strings or as objects, numbers as numbers or strings.

use crate::docker::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig, RestartPolicy,
    RestartPolicyNameEnum,
};
use crate::oslo::object::Container;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Host-level inputs of the mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingOptions {
    /// `[DEFAULT] container_runtime` (`runc`).
    pub default_runtime: String,
    /// Whether the storage driver supports per-container disk quota.
    pub disk_quota_supported: bool,
    /// `HostConfig.NetworkMode`; `"default"` (docker-py's default) unless configured.
    pub network_mode: String,
    /// The Docker API version zun would speak (`[docker] docker_remote_api_version`, or the
    /// negotiated one). `Runtime` is only sent from 1.26 on.
    pub api_version: String,
    /// Volume binds (`<volume_dir>/<volume uuid>` → container path), mode `rw`.
    pub binds: Vec<VolumeBind>,
}

impl Default for MappingOptions {
    fn default() -> Self {
        MappingOptions {
            default_runtime: "runc".into(),
            disk_quota_supported: false,
            network_mode: "default".into(),
            api_version: "1.26".into(),
            binds: Vec::new(),
        }
    }
}

/// One bind mount.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeBind {
    pub source: String,
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    #[error("container field {field}: {detail}")]
    BadField { field: &'static str, detail: String },
    #[error("container has no uuid")]
    MissingUuid,
    /// zun's `ZunException` text for a runtime on API < 1.26.
    #[error("Specifying runtime in Docker API is not supported")]
    RuntimeUnsupported,
    /// zun's `_check_support_disk_quota` text.
    #[error("Your host does not support disk quota feature.")]
    DiskQuotaUnsupported,
}

fn bad(field: &'static str, detail: impl Into<String>) -> MappingError {
    MappingError::BadField { field, detail: detail.into() }
}

/// The Docker container name: `zun-<uuid>`.
pub fn docker_name(container: &Container) -> Result<String, MappingError> {
    container.uuid().map(crate::docker::container_name).ok_or(MappingError::MissingUuid)
}

/// `repo:tag`, or `repo` when the tag is empty (glance images).
pub fn image_reference(repo: &str, tag: &str) -> String {
    if tag.is_empty() {
        repo.to_string()
    } else {
        format!("{repo}:{tag}")
    }
}

/// True when zun would inspect the image to complete `entrypoint`/`command` (either empty).
pub fn needs_image_command(container: &Container) -> Result<bool, MappingError> {
    let e = string_list(container, "entrypoint")?;
    let c = string_list(container, "command")?;
    Ok(e.is_none_or(|v| v.is_empty()) || c.is_none_or(|v| v.is_empty()))
}

/// zun's create step: when `entrypoint` or `command` is empty, set **both** to
/// `entrypoint or Config.Entrypoint` and `command or Config.Cmd` of the image's inspect
/// JSON (`image_inspect` is `GET /images/{name}/json`). Values are persisted by the caller.
/// Only fields whose value changes are set (and so recorded as changed).
pub fn fill_command_from_image(container: &mut Container, image_inspect: &Value) -> Result<(), MappingError> {
    if !needs_image_command(container)? {
        return Ok(());
    }
    let config = image_inspect.get("Config");
    let from_image = |key: &str| config.and_then(|c| c.get(key)).cloned().unwrap_or(Value::Null);
    for (field, key) in [("entrypoint", "Entrypoint"), ("command", "Cmd")] {
        let current = string_list(container, field)?;
        if current.is_none_or(|v| v.is_empty()) {
            let new = from_image(key);
            if container.get(field) != Some(&new) {
                container.set(field, new);
            }
        }
    }
    Ok(())
}

/// Builds the create body for `container`, whose image was pulled as `repo`/`tag`.
pub fn container_create_config(
    container: &Container,
    repo: &str,
    tag: &str,
    opts: &MappingOptions,
) -> Result<ContainerCreateBody, MappingError> {
    let interactive = opt_bool(container, "interactive")?;
    let mut body = ContainerCreateBody {
        image: Some(image_reference(repo, tag)),
        cmd: string_list(container, "command")?.filter(|v| !v.is_empty()),
        entrypoint: string_list(container, "entrypoint")?.filter(|v| !v.is_empty()),
        env: string_map(container, "environment")?
            .filter(|m| !m.is_empty())
            .map(|m| m.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: container.get_str("workdir").map(str::to_string),
        labels: string_map(container, "labels")?.filter(|m| !m.is_empty()).map(|m| m.into_iter().collect()),
        hostname: container.get_str("hostname").map(str::to_string),
        tty: opt_bool(container, "tty")?,
        open_stdin: interactive,
        attach_stdin: Some(interactive.unwrap_or(false)),
        stdin_once: Some(interactive.unwrap_or(false)),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        network_disabled: Some(false),
        volumes: Some(opts.binds.iter().map(|b| b.destination.clone()).collect()),
        ..Default::default()
    };

    // Healthcheck (zun: `if container.healthcheck:`).
    if let Some(hc) = json_field(container, "healthcheck")?.filter(truthy) {
        body.healthcheck = Some(healthcheck(&hc)?);
    }

    // Exposed ports: `{"80/tcp": {}}` → ExposedPorts.
    if let Some(ports) = json_field(container, "exposed_ports")?.filter(truthy) {
        let m = ports.as_object().ok_or_else(|| bad("exposed_ports", "expected a dict"))?;
        body.exposed_ports = Some(m.keys().map(|k| if k.contains('/') { k.clone() } else { format!("{k}/tcp") }).collect());
    }

    body.host_config = Some(host_config(container, opts)?);
    Ok(body)
}

fn host_config(container: &Container, opts: &MappingOptions) -> Result<HostConfig, MappingError> {
    let runtime = if api_at_least(&opts.api_version, 1, 26) {
        Some(container.get_str("runtime").filter(|r| !r.is_empty()).unwrap_or(&opts.default_runtime).to_string())
    } else if container.get_str("runtime").is_some_and(|r| !r.is_empty()) {
        return Err(MappingError::RuntimeUnsupported);
    } else {
        None
    };
    let network_mode = if opts.network_mode.is_empty() { "default".to_string() } else { opts.network_mode.clone() };
    let mut hc = HostConfig {
        binds: Some(opts.binds.iter().map(|b| format!("{}:{}:rw", b.source, b.destination)).collect()),
        network_mode: Some(network_mode),
        runtime,
        ..Default::default()
    };
    if opt_bool(container, "privileged")? == Some(true) {
        hc.privileged = Some(true);
    }
    if opt_bool(container, "auto_remove")? == Some(true) {
        hc.auto_remove = Some(true);
    }
    // A capsule's sandbox lends its IPC namespace to the capsule's containers.
    if container.name == "Capsule" {
        hc.ipc_mode = Some("shareable".into());
    }
    if let Some(mb) = memory_mb(container)? {
        hc.memory =
            Some(mb.checked_mul(1024 * 1024).filter(|b| *b >= 0).ok_or_else(|| bad("memory", format!("memory {mb} MB out of range")))?);
    }
    if let Some(cpu) = opt_f64(container, "cpu")? {
        hc.cpu_shares = Some((1024.0 * cpu) as i64);
    }
    if let Some(rp) = json_field(container, "restart_policy")?.filter(truthy) {
        hc.restart_policy = Some(restart_policy(&rp)?);
    }
    if let Some(disk) = opt_i64(container, "disk")?.filter(|d| *d != 0) {
        if !opts.disk_quota_supported {
            return Err(MappingError::DiskQuotaUnsupported);
        }
        hc.storage_opt = Some(HashMap::from([("size".to_string(), format!("{disk}G"))]));
    }
    if container.get_str("cpu_policy") == Some("dedicated") {
        let cpuset = cpuset_data(container)?;
        hc.cpuset_cpus = cpuset.as_ref().and_then(|c| cpu_list(c.get("cpuset_cpus")));
        hc.cpuset_mems = cpuset.as_ref().and_then(|c| cpu_list(c.get("cpuset_mems")));
    }
    Ok(hc)
}

fn healthcheck(hc: &Value) -> Result<HealthConfig, MappingError> {
    let m = hc.as_object().ok_or_else(|| bad("healthcheck", "expected a dict"))?;
    let test = match m.get("test") {
        None | Some(Value::Null) => vec!["CMD-SHELL".to_string(), String::new()],
        Some(Value::String(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect(),
        Some(other) => return Err(bad("healthcheck", format!("bad test {other}"))),
    };
    let secs = |key: &str| -> Result<i64, MappingError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => number(v).map(|n| (n * 1e9) as i64).ok_or_else(|| bad("healthcheck", format!("bad {key} {v}"))),
        }
    };
    let retries = match m.get("retries") {
        None | Some(Value::Null) => 0,
        Some(v) => number(v).map(|n| n as i64).ok_or_else(|| bad("healthcheck", format!("bad retries {v}")))?,
    };
    Ok(HealthConfig {
        test: Some(test),
        interval: Some(secs("interval")?),
        timeout: Some(secs("timeout")?),
        retries: Some(retries),
        ..Default::default()
    })
}

fn restart_policy(rp: &Value) -> Result<RestartPolicy, MappingError> {
    let m = rp.as_object().ok_or_else(|| bad("restart_policy", "expected a dict"))?;
    let name = m.get("Name").and_then(Value::as_str).unwrap_or("");
    let name: RestartPolicyNameEnum = name.parse().map_err(|_| bad("restart_policy", format!("unknown restart policy name {name:?}")))?;
    let count = match m.get("MaximumRetryCount") {
        None | Some(Value::Null) => return Err(bad("restart_policy", "MaximumRetryCount is missing")),
        Some(v) => number(v)
            .filter(|n| n.fract() == 0.0)
            .map(|n| n as i64)
            .ok_or_else(|| bad("restart_policy", format!("bad MaximumRetryCount {v}")))?,
    };
    Ok(RestartPolicy { name: Some(name), maximum_retry_count: Some(count) })
}

// ---------------------------------------------------------------- wire-form readers

/// Python truthiness for JSON values (`{}`/`[]`/`""`/`0`/null are false).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn opt_bool(c: &Container, field: &'static str) -> Result<Option<bool>, MappingError> {
    match c.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(bad(field, format!("expected a boolean, got {other}"))),
    }
}

fn opt_f64(c: &Container, field: &'static str) -> Result<Option<f64>, MappingError> {
    match c.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => number(v).map(Some).ok_or_else(|| bad(field, format!("expected a number, got {v}"))),
    }
}

fn opt_i64(c: &Container, field: &'static str) -> Result<Option<i64>, MappingError> {
    match opt_f64(c, field)? {
        None => Ok(None),
        Some(f) if f.fract() == 0.0 => Ok(Some(f as i64)),
        Some(f) => Err(bad(field, format!("expected an integer, got {f}"))),
    }
}

/// `memory` is a string of MB (`"512"`); queens sent `"512M"` (the one parser: oslo's).
fn memory_mb(c: &Container) -> Result<Option<i64>, MappingError> {
    c.memory_mb().map_err(|e| bad("memory", e.to_string()))
}

/// A JsonField: a JSON string on the wire (`"{}"`), or already a dict/list.
fn json_field(c: &Container, field: &'static str) -> Result<Option<Value>, MappingError> {
    match c.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|e| bad(field, format!("bad JSON: {e}"))),
        Some(v) => Ok(Some(v.clone())),
    }
}

/// A list of strings (`command`, `entrypoint`); a plain string (queens) is split like a shell.
fn string_list(c: &Container, field: &'static str) -> Result<Option<Vec<String>>, MappingError> {
    match c.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad(field, "expected a list of strings")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(Value::String(s)) => match serde_json::from_str::<Vec<String>>(s) {
            Ok(v) => Ok(Some(v)),
            Err(_) => crate::oslo::container_types::shlex_split(s).map(Some).map_err(|e| bad(field, e.to_string())),
        },
        Some(other) => Err(bad(field, format!("expected a list, got {other}"))),
    }
}

/// A dict of strings (`environment`, `labels`), in wire order.
fn string_map(c: &Container, field: &'static str) -> Result<Option<Vec<(String, String)>>, MappingError> {
    let v = match json_field(c, field)? {
        None => return Ok(None),
        Some(v) => v,
    };
    let m = v.as_object().ok_or_else(|| bad(field, "expected a dict"))?;
    Ok(Some(m.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect()))
}

/// The `cpuset` field: a nested `Cpuset` primitive, a plain dict, or a JSON string.
fn cpuset_data(c: &Container) -> Result<Option<Map<String, Value>>, MappingError> {
    let v = match json_field(c, "cpuset")? {
        None => return Ok(None),
        Some(v) => v,
    };
    let v = v.get("zun_object.data").cloned().unwrap_or(v);
    match v {
        Value::Object(m) => Ok(Some(m)),
        other => Err(bad("cpuset", format!("expected a dict, got {other}"))),
    }
}

/// A set of CPU/node numbers as Docker's list string `0,1`; strings pass through.
fn cpu_list(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a) if !a.is_empty() => {
            let mut nums: Vec<i64> = a.iter().filter_map(Value::as_i64).collect();
            nums.sort_unstable();
            nums.dedup();
            Some(nums.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
        }
        _ => None,
    }
}

/// `major.minor >= want` for Docker API version strings.
fn api_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut it = version.trim().trim_start_matches('v').split('.');
    let maj = it.next().and_then(|x| x.parse::<u32>().ok());
    let min = it.next().and_then(|x| x.parse::<u32>().ok()).unwrap_or(0);
    match maj {
        Some(m) => (m, min) >= (major, minor),
        None => true,
    }
}

/// kuryr's `process_networking_config`: the container's endpoint on `network` pins the
/// port's IPv4/IPv6 (`IPAMConfig`) and MAC. (Engines before API 1.44 read the MAC from
/// the top-level `MacAddress`, which [`crate::docker::DockerClient::create_with_mac`] adds.)
pub fn pin_endpoint(body: &mut ContainerCreateBody, network: &str, ipv4: Option<&str>, ipv6: Option<&str>, mac: &str) {
    let endpoint = EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: ipv4.map(str::to_string),
            ipv6_address: ipv6.map(str::to_string),
            ..Default::default()
        }),
        mac_address: Some(mac.to_string()),
        ..Default::default()
    };
    body.networking_config = Some(NetworkingConfig { endpoints_config: Some(HashMap::from([(network.to_string(), endpoint)])) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oslo::object::ObjectPrimitive;
    use serde_json::json;

    const API_CALLS: &str = include_str!("../../tests/fixtures/docker/zun-compute-docker-api-calls.json");
    const CREATE_CAST: &str = include_str!("../../tests/fixtures/oslo/container_create_cast.json");

    fn container(data: Value) -> Container {
        Container::with_data(data.as_object().cloned().unwrap_or_default())
    }

    /// The container as the real zun-compute had it when creating the fixture's container
    /// (row of zun-compute-db-rows.json in wire form; disk defaulted to 10 on btrfs).
    fn fixture_container() -> Container {
        container(json!({
            "uuid": "1283fedc-0322-455e-9c36-6d7e677b3aac",
            "name": "fixture-1",
            "image": "busybox",
            "command": ["sleep", "300"],
            "entrypoint": null,
            "memory": "64",
            "cpu": 0.5,
            "cpu_policy": "shared",
            "environment": {"K": "V"},
            "labels": {"app": "acc"},
            "workdir": null,
            "hostname": null,
            "tty": false,
            "interactive": false,
            "privileged": false,
            "auto_remove": false,
            "runtime": null,
            "disk": 10,
            "restart_policy": {},
            "healthcheck": "{}",
            "exposed_ports": "{}",
            "image_pull_policy": "ifnotpresent",
            "image_driver": "docker",
            "status": "Creating"
        }))
    }

    fn btrfs_opts() -> MappingOptions {
        MappingOptions { disk_quota_supported: true, api_version: "1.40".into(), ..Default::default() }
    }

    fn fixture_body(step: &str) -> Value {
        let d: Value = serde_json::from_str(API_CALLS).unwrap();
        let steps = d["steps"].as_array().unwrap();
        let s = steps.iter().find(|s| s["step"] == step).unwrap();
        let call = s["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["req"].as_str().unwrap().starts_with("POST /v1.40/containers/create"))
            .unwrap();
        call["body"].clone()
    }

    fn fixture_image_inspect() -> Value {
        let d: Value = serde_json::from_str(API_CALLS).unwrap();
        d["steps"][0]["calls"][0]["resp_body"].clone()
    }

    fn body_json(c: &Container, repo: &str, tag: &str, opts: &MappingOptions) -> Value {
        serde_json::to_value(container_create_config(c, repo, tag, opts).unwrap()).unwrap()
    }

    fn assert_same_fields(ours: &Value, theirs: &Value) {
        let (o, t) = (ours.as_object().unwrap(), theirs.as_object().unwrap());
        for (k, v) in t {
            assert_eq!(o.get(k), Some(v), "field {k}");
        }
        for k in o.keys() {
            assert!(t.contains_key(k), "extra field {k} = {}", o[k]);
        }
    }

    #[test]
    fn fixture_create_body_matches_real_zun_compute() {
        let ours = body_json(&fixture_container(), "busybox", "latest", &btrfs_opts());
        let theirs = fixture_body("create");
        assert_same_fields(&ours, &theirs);
        assert_same_fields(&ours["HostConfig"], &theirs["HostConfig"]);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn fixture_pull_create_body_matches() {
        let mut c = fixture_container();
        c.data.insert("image".into(), json!("127.0.0.1:5000/busybox:latest"));
        c.data.insert("memory".into(), json!("512"));
        c.data.insert("cpu".into(), json!(1.0));
        c.data.insert("environment".into(), json!({}));
        c.data.insert("labels".into(), json!({}));
        let ours = body_json(&c, "127.0.0.1:5000/busybox", "latest", &btrfs_opts());
        assert_eq!(ours, fixture_body("pull_create"));
    }

    #[test]
    fn fixture_create_norun_fills_command_from_image() {
        let mut c = fixture_container();
        c.data.insert("command".into(), Value::Null);
        c.data.insert("memory".into(), json!("512"));
        c.data.insert("cpu".into(), json!(1.0));
        c.data.remove("environment");
        c.data.insert("labels".into(), Value::Null);
        assert!(needs_image_command(&c).unwrap());
        fill_command_from_image(&mut c, &fixture_image_inspect()).unwrap();
        assert_eq!(c.get("command"), Some(&json!(["/bin/sh"])));
        assert_eq!(c.get("entrypoint"), Some(&Value::Null));
        assert!(c.changes.contains("command"));
        assert!(!c.changes.contains("entrypoint"), "unchanged null entrypoint is not recorded");
        let ours = body_json(&c, "busybox", "latest", &btrfs_opts());
        assert_eq!(ours, fixture_body("create_norun"));
    }

    #[test]
    fn cast_fixture_container_maps_every_field() {
        let d: Value = serde_json::from_str(CREATE_CAST).unwrap();
        // Find the Container primitive inside the oslo message.
        fn find(v: &Value) -> Option<Value> {
            match v {
                Value::Object(m) if m.get("zun_object.name") == Some(&json!("Container")) => Some(v.clone()),
                Value::Object(m) => m.values().find_map(find),
                Value::Array(a) => a.iter().find_map(find),
                Value::String(s) if s.contains("zun_object") => serde_json::from_str::<Value>(s).ok().and_then(|v| find(&v)),
                _ => None,
            }
        }
        let prim = ObjectPrimitive::from_value(&find(&d).unwrap()).unwrap();
        let c = Container::from_primitive(prim).unwrap();
        let b = body_json(&c, "busybox", "latest", &MappingOptions::default());
        assert_eq!(b["Image"], "busybox:latest");
        assert_eq!(b["Cmd"], json!(["sh", "-c", "echo hello && sleep 3600"]));
        assert_eq!(b["Env"], json!(["FOO=bar", "LOG_LEVEL=debug"]));
        assert_eq!(b["WorkingDir"], "/srv");
        assert_eq!(b["Hostname"], "web-1");
        assert_eq!(b["Labels"], json!({"app": "web", "tier": "frontend"}));
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}}));
        assert!(b.get("Healthcheck").is_none());
        assert!(b.get("Entrypoint").is_none());
        let hc = &b["HostConfig"];
        assert_eq!(hc["RestartPolicy"], json!({"Name": "on-failure", "MaximumRetryCount": 3}));
        assert_eq!(hc["Memory"], json!(512u64 * 1024 * 1024));
        assert_eq!(hc["CpuShares"], json!(512));
        assert_eq!(hc["Runtime"], "runc");
        assert_eq!(hc["NetworkMode"], "default");
        assert!(hc.get("StorageOpt").is_none(), "disk 0 sends no StorageOpt");
        assert!(hc.get("Privileged").is_none() && hc.get("AutoRemove").is_none());
    }

    #[test]
    fn individual_fields() {
        let base = || fixture_container();
        let opts = btrfs_opts();

        // interactive → OpenStdin/AttachStdin/StdinOnce; tty.
        let mut c = base();
        c.data.insert("interactive".into(), json!(true));
        c.data.insert("tty".into(), json!(true));
        let b = body_json(&c, "busybox", "latest", &opts);
        for k in ["OpenStdin", "AttachStdin", "StdinOnce", "Tty", "AttachStdout", "AttachStderr"] {
            assert_eq!(b[k], json!(true), "{k}");
        }

        // privileged, auto_remove, runtime.
        let mut c = base();
        c.data.insert("privileged".into(), json!(true));
        c.data.insert("auto_remove".into(), json!(true));
        c.data.insert("runtime".into(), json!("io.containerd.runc.v2"));
        let hc = body_json(&c, "busybox", "latest", &opts)["HostConfig"].clone();
        assert_eq!(hc["Privileged"], json!(true));
        assert_eq!(hc["AutoRemove"], json!(true));
        assert_eq!(hc["Runtime"], "io.containerd.runc.v2");

        // Runtime is not sent before API 1.26; a set runtime is then an error.
        let old = MappingOptions { api_version: "1.25".into(), ..btrfs_opts() };
        assert!(body_json(&base(), "busybox", "latest", &old)["HostConfig"].get("Runtime").is_none());
        assert_eq!(container_create_config(&c, "busybox", "latest", &old).unwrap_err(), MappingError::RuntimeUnsupported);

        // cpu truncation, memory forms.
        let mut c = base();
        c.data.insert("cpu".into(), json!(0.3));
        c.data.insert("memory".into(), json!("512M"));
        let hc = body_json(&c, "busybox", "latest", &opts)["HostConfig"].clone();
        assert_eq!(hc["CpuShares"], json!(307));
        assert_eq!(hc["Memory"], json!(536870912));
        let mut c = base();
        c.data.insert("cpu".into(), Value::Null);
        c.data.insert("memory".into(), Value::Null);
        let hc = body_json(&c, "busybox", "latest", &opts)["HostConfig"].clone();
        assert!(hc.get("CpuShares").is_none() && hc.get("Memory").is_none());
        let mut c = base();
        c.data.insert("memory".into(), json!("lots"));
        assert!(matches!(container_create_config(&c, "b", "l", &opts), Err(MappingError::BadField { field: "memory", .. })));

        // Disk: only with quota support; unsupported is zun's error.
        let no_quota = MappingOptions { disk_quota_supported: false, ..btrfs_opts() };
        assert_eq!(container_create_config(&base(), "b", "l", &no_quota).unwrap_err(), MappingError::DiskQuotaUnsupported);
        let mut c = base();
        c.data.insert("disk".into(), Value::Null);
        assert!(body_json(&c, "b", "l", &no_quota)["HostConfig"].get("StorageOpt").is_none());

        // Restart policy as strings.
        let mut c = base();
        c.data.insert("restart_policy".into(), json!({"Name": "always", "MaximumRetryCount": "0"}));
        let hc = body_json(&c, "b", "l", &opts)["HostConfig"].clone();
        assert_eq!(hc["RestartPolicy"], json!({"Name": "always", "MaximumRetryCount": 0}));
        c.data.insert("restart_policy".into(), json!({"Name": "sometimes", "MaximumRetryCount": "0"}));
        assert!(container_create_config(&c, "b", "l", &opts).is_err());

        // Healthcheck: JSON string form, string test → CMD-SHELL, seconds → ns.
        let mut c = base();
        c.data
            .insert("healthcheck".into(), json!("{\"test\": \"curl -f localhost\", \"interval\": 5, \"timeout\": 2, \"retries\": \"3\"}"));
        let b = body_json(&c, "b", "l", &opts);
        assert_eq!(
            b["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 5_000_000_000u64, "Timeout": 2_000_000_000u64, "Retries": 3})
        );
        c.data.insert("healthcheck".into(), json!({"test": ["CMD", "true"]}));
        let b = body_json(&c, "b", "l", &opts);
        assert_eq!(b["Healthcheck"], json!({"Test": ["CMD", "true"], "Interval": 0, "Timeout": 0, "Retries": 0}));

        // Exposed ports as dict form too.
        let mut c = base();
        c.data.insert("exposed_ports".into(), json!({"53/udp": {}, "8080": {}}));
        assert_eq!(body_json(&c, "b", "l", &opts)["ExposedPorts"], json!({"53/udp": {}, "8080/tcp": {}}));

        // A capsule's sandbox shares its IPC namespace (zun: ipc_mode 'shareable'); others don't.
        assert!(body_json(&base(), "b", "l", &opts)["HostConfig"].get("IpcMode").is_none_or(Value::is_null));
        let mut c = base();
        c.name = "Capsule".into();
        assert_eq!(body_json(&c, "b", "l", &opts)["HostConfig"]["IpcMode"], "shareable");

        // Dedicated cpuset from the nested Cpuset primitive.
        let mut c = base();
        c.data.insert("cpu_policy".into(), json!("dedicated"));
        c.data.insert(
            "cpuset".into(),
            json!({"zun_object.name": "Cpuset", "zun_object.namespace": "zun", "zun_object.version": "1.0",
                   "zun_object.data": {"cpuset_cpus": [3, 1], "cpuset_mems": [0]}}),
        );
        let hc = body_json(&c, "b", "l", &opts)["HostConfig"].clone();
        assert_eq!(hc["CpusetCpus"], "1,3");
        assert_eq!(hc["CpusetMems"], "0");

        // Entrypoint, workdir, hostname, binds, network mode, glance image.
        let mut c = base();
        c.data.insert("entrypoint".into(), json!(["/bin/sh", "-c"]));
        c.data.insert("workdir".into(), json!("/tmp"));
        c.data.insert("hostname".into(), json!("h1"));
        let o = MappingOptions {
            network_mode: "none".into(),
            binds: vec![VolumeBind { source: "/var/lib/zun/mnt/v1".into(), destination: "/data".into() }],
            ..btrfs_opts()
        };
        let b = body_json(&c, "cirros", "", &o);
        assert_eq!(b["Image"], "cirros");
        assert_eq!(b["Entrypoint"], json!(["/bin/sh", "-c"]));
        assert_eq!(b["WorkingDir"], "/tmp");
        assert_eq!(b["Hostname"], "h1");
        assert_eq!(b["Volumes"], json!({"/data": {}}));
        assert_eq!(b["HostConfig"]["Binds"], json!(["/var/lib/zun/mnt/v1:/data:rw"]));
        assert_eq!(b["HostConfig"]["NetworkMode"], "none");

        // Queens-style string command is split like a shell.
        let mut c = base();
        c.data.insert("command".into(), json!("sh -c 'echo a b'"));
        assert_eq!(body_json(&c, "b", "l", &opts)["Cmd"], json!(["sh", "-c", "echo a b"]));

        assert_eq!(docker_name(&base()).unwrap(), "zun-1283fedc-0322-455e-9c36-6d7e677b3aac");
    }

    #[test]
    fn fill_command_keeps_given_values() {
        let mut c = fixture_container();
        c.data.insert("entrypoint".into(), json!([]));
        fill_command_from_image(&mut c, &json!({"Config": {"Entrypoint": ["/init"], "Cmd": ["/bin/sh"]}})).unwrap();
        assert_eq!(c.get("entrypoint"), Some(&json!(["/init"])));
        assert_eq!(c.get("command"), Some(&json!(["sleep", "300"])));
        assert!(!c.changes.contains("command"));
    }
}
