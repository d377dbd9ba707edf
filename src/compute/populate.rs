//! Container status from Docker (pure): zun's `_populate_container`.
//!
//! - [`populate_from_inspect`]: from `GET /containers/{id}/json` (State is a dict): status,
//!   `status_detail` (`Up 5 mins`, `Exited(0) 2 hours ago `, ...), `status_reason` in the
//!   unexpected cases, then `hostname` (only when null), `ports` (from
//!   `Config.ExposedPorts`), `runtime` (from `HostConfig.Runtime`) and `container_id`.
//! - [`populate_from_list_state`] / [`status_from_list_state`]: the periodic sync's list form
//!   (State is a lower-case string); `status_detail` becomes null.
//!
//! When `task_state` is set and `force` is false, the state is left alone (a running task
//! owns the container); the other fields are still refreshed, as in zun.
//! Fields are set only when their value changes, so `Container::changes` lists real changes.
//!
//! The `<ago>` text follows zun's `format_status_detail` exactly, quirks included: the
//! largest non-zero unit (`N days`, `N hours`, `N mins`, `N seconds`), `""` for Docker's
//! zero time (year 1), and nothing (status_detail null) when the time cannot be parsed or is
//! less than a second ago. In the "exited" branch an unformattable time prints as `None`
//! (`"Exited(0) None ago "`), as Python's `format` does.

use crate::oslo::object::Container;
use crate::oslo::Status;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

pub const ERROR: &str = Status::Error.as_str();
pub const RUNNING: &str = Status::Running.as_str();
pub const STOPPED: &str = Status::Stopped.as_str();
pub const PAUSED: &str = Status::Paused.as_str();
pub const UNKNOWN: &str = Status::Unknown.as_str();
pub const CREATING: &str = Status::Creating.as_str();
pub const CREATED: &str = Status::Created.as_str();
pub const DELETED: &str = Status::Deleted.as_str();
pub const DELETING: &str = Status::Deleting.as_str();
pub const REBUILDING: &str = Status::Rebuilding.as_str();
pub const DEAD: &str = Status::Dead.as_str();
pub const RESTARTING: &str = Status::Restarting.as_str();

/// zun's `CONTAINER_STATUSES` (master).
pub const CONTAINER_STATUSES: [&str; 12] =
    [ERROR, RUNNING, STOPPED, PAUSED, UNKNOWN, CREATING, CREATED, DELETED, DELETING, REBUILDING, DEAD, RESTARTING];

const REASON_MISSING: &str = "container state is missing";
const REASON_UNEXPECTED: &str = "unexpected container state";

/// Statuses a never-started container keeps.
const KEEP_WHEN_NEVER_STARTED: [&str; 4] = [CREATED, RESTARTING, ERROR, REBUILDING];

fn set_if_changed(c: &mut Container, field: &str, value: Value) {
    if c.get(field) != Some(&value) {
        c.set(field, value);
    }
}

/// Python truthiness of a JSON value.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// Python's `str.capitalize()`.
fn capitalize(s: &str) -> String {
    let mut it = s.chars();
    match it.next() {
        Some(f) => f.to_uppercase().chain(it.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

/// How a value prints through Python's `"{}".format(v)` for the ExitCode.
fn py_str(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "None".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "True".into(),
        Some(Value::Bool(false)) => "False".into(),
        Some(other) => other.to_string(),
    }
}

/// zun's `format_status_detail(status_time)`:
/// `None` when unparsable or zero, `Some("")` for year 1, else the largest non-zero unit.
pub fn format_status_detail(status_time: Option<&str>, now: DateTime<Utc>) -> Option<String> {
    let head: String = status_time?.chars().take(19).collect();
    let st = NaiveDateTime::parse_from_str(&head, "%Y-%m-%dT%H:%M:%S").ok()?;
    let year_one = chrono::NaiveDate::from_ymd_opt(1, 1, 1)?.and_hms_opt(0, 0, 0)?;
    if st == year_one {
        return Some(String::new());
    }
    let micros = (now.naive_utc() - st).num_microseconds()?;
    // Python timedelta normalization: days may be negative, seconds in [0, 86400).
    const DAY_US: i64 = 86_400 * 1_000_000;
    let days = micros.div_euclid(DAY_US);
    let seconds = micros.rem_euclid(DAY_US) / 1_000_000;
    let hours = seconds / 3600;
    let minutes = (seconds % 3600) / 60;
    if days != 0 {
        Some(format!("{days} days"))
    } else if hours != 0 {
        Some(format!("{hours} hours"))
    } else if minutes != 0 {
        Some(format!("{minutes} mins"))
    } else if seconds != 0 {
        Some(format!("{seconds} seconds"))
    } else {
        None
    }
}

/// Applies an inspect answer to `container` (zun's `_populate_container`).
pub fn populate_from_inspect(container: &mut Container, inspect: &Value, force: bool, now: DateTime<Utc>) {
    let state = inspect.get("State");
    match state {
        Some(Value::String(s)) if !s.is_empty() => populate_from_list_state(container, s, force),
        _ => populate_state_dict(container, state, force, now),
    }

    if let Some(id) = inspect.get("Id").and_then(Value::as_str) {
        set_if_changed(container, "container_id", Value::String(id.to_string()));
    }

    let config = inspect.get("Config");
    if truthy(config) {
        if let Some(config) = config {
            if matches!(container.get("hostname"), None | Some(Value::Null)) {
                let h = config.get("Hostname").cloned().unwrap_or(Value::Null);
                set_if_changed(container, "hostname", h);
            }
            let ports: Vec<Value> = config
                .get("ExposedPorts")
                .and_then(Value::as_object)
                .map(|m| m.keys().filter_map(|k| k.split('/').next().and_then(|p| p.parse::<i64>().ok())).map(Value::from).collect())
                .unwrap_or_default();
            set_if_changed(container, "ports", Value::Array(ports));
        }
    }

    let host_config = inspect.get("HostConfig");
    if truthy(host_config) {
        let runtime = host_config.and_then(|h| h.get("Runtime")).cloned().unwrap_or(Value::Null);
        set_if_changed(container, "runtime", runtime);
    }
}

fn task_owns(container: &Container, force: bool) -> bool {
    !force && truthy(container.get("task_state"))
}

fn populate_state_dict(c: &mut Container, state: Option<&Value>, force: bool, now: DateTime<Utc>) {
    if task_owns(c, force) {
        return;
    }
    let st = match state {
        Some(s) if truthy(Some(s)) => s,
        _ => {
            tracing::warn!(uuid = c.uuid().unwrap_or(""), "unexpected state from docker: missing");
            set_if_changed(c, "status", Value::from(UNKNOWN));
            set_if_changed(c, "status_reason", Value::from(REASON_MISSING));
            set_if_changed(c, "status_detail", Value::Null);
            return;
        }
    };
    let get = |k: &str| st.get(k);
    let get_str = |k: &str| st.get(k).and_then(Value::as_str);
    let current = c.get_str("status").unwrap_or("").to_string();
    let exit_code = py_str(get("ExitCode"));

    // `status_detail` local of zun: the formatted time of the branch taken ('' otherwise).
    let mut detail_time: Option<String> = Some(String::new());
    if truthy(get("Error")) {
        match get_str("Status") {
            Some("exited") | Some("removing") => set_if_changed(c, "status", Value::from(STOPPED)),
            Some(s) => {
                let cap = capitalize(s);
                if CONTAINER_STATUSES.contains(&cap.as_str()) {
                    set_if_changed(c, "status", Value::String(cap));
                }
            }
            None => {}
        }
        detail_time = format_status_detail(get_str("FinishedAt"), now);
        let t = detail_time.clone().unwrap_or_else(|| "None".into());
        set_if_changed(c, "status_detail", Value::String(format!("Exited({exit_code}) {t} ago (error)")));
    } else if truthy(get("Paused")) {
        set_if_changed(c, "status", Value::from(PAUSED));
        detail_time = format_status_detail(get_str("StartedAt"), now);
        let t = detail_time.clone().unwrap_or_else(|| "None".into());
        set_if_changed(c, "status_detail", Value::String(format!("Up {t} (paused)")));
    } else if truthy(get("Restarting")) {
        set_if_changed(c, "status", Value::from(RESTARTING));
        set_if_changed(c, "status_detail", Value::from("Restarting"));
    } else if truthy(get("Running")) {
        set_if_changed(c, "status", Value::from(RUNNING));
        detail_time = format_status_detail(get_str("StartedAt"), now);
        let t = detail_time.clone().unwrap_or_else(|| "None".into());
        set_if_changed(c, "status_detail", Value::String(format!("Up {t}")));
    } else if truthy(get("Dead")) {
        set_if_changed(c, "status", Value::from(DEAD));
        set_if_changed(c, "status_detail", Value::from("Dead"));
    } else {
        let started = format_status_detail(get_str("StartedAt"), now);
        let finished = format_status_detail(get_str("FinishedAt"), now);
        let never_started = started.as_deref() == Some("");
        if never_started && current == CREATING {
            set_if_changed(c, "status", Value::from(CREATED));
            set_if_changed(c, "status_detail", Value::from("Created"));
        } else if never_started && KEEP_WHEN_NEVER_STARTED.contains(&current.as_str()) {
            // unchanged
        } else if !never_started && finished.as_deref() == Some("") {
            tracing::warn!(uuid = c.uuid().unwrap_or(""), state = %st, "unexpected state from docker");
            set_if_changed(c, "status", Value::from(UNKNOWN));
            set_if_changed(c, "status_reason", Value::from(REASON_UNEXPECTED));
            set_if_changed(c, "status_detail", Value::from(""));
        } else if !never_started {
            set_if_changed(c, "status", Value::from(STOPPED));
            let t = finished.unwrap_or_else(|| "None".into());
            set_if_changed(c, "status_detail", Value::String(format!("Exited({exit_code}) {t} ago ")));
        }
    }
    if detail_time.is_none() {
        set_if_changed(c, "status_detail", Value::Null);
    }
}

/// The outcome of the list-form derivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListStatus {
    pub status: String,
    /// Set (to "unexpected container state") only for unknown states.
    pub status_reason: Option<&'static str>,
}

/// zun's list-form derivation: `current` is the container's status, `state` Docker's
/// lower-case state from `GET /containers/json`. (`status_detail` always becomes null.)
pub fn status_from_list_state(current: &str, state: &str) -> ListStatus {
    let keep = |s: &str| ListStatus { status: s.to_string(), status_reason: None };
    match state.to_lowercase().as_str() {
        "created" if current == CREATING => keep(CREATED),
        "created" if KEEP_WHEN_NEVER_STARTED.contains(&current) => keep(current),
        "paused" => keep(PAUSED),
        "running" => keep(RUNNING),
        "dead" => keep(DEAD),
        "restarting" => keep(RESTARTING),
        "exited" | "removing" => keep(STOPPED),
        _ => ListStatus { status: UNKNOWN.to_string(), status_reason: Some(REASON_UNEXPECTED) },
    }
}

/// Applies a list-form state to `container` (status, reason when unexpected, detail null),
/// unless a task owns the container and `force` is false.
pub fn populate_from_list_state(container: &mut Container, state: &str, force: bool) {
    if task_owns(container, force) {
        return;
    }
    let current = container.get_str("status").unwrap_or("").to_string();
    let r = status_from_list_state(&current, state);
    if r.status == UNKNOWN {
        tracing::warn!(uuid = container.uuid().unwrap_or(""), state, "unexpected state from docker");
    }
    set_if_changed(container, "status", Value::String(r.status));
    if let Some(reason) = r.status_reason {
        set_if_changed(container, "status_reason", Value::from(reason));
    }
    set_if_changed(container, "status_detail", Value::Null);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    const INSPECT: &str = include_str!("../../tests/fixtures/docker/zun-compute-created-inspect.json");

    fn container(data: Value) -> Container {
        Container::with_data(data.as_object().cloned().unwrap_or_default())
    }

    fn base(status: &str) -> Container {
        container(json!({
            "uuid": "6cf4446a-7324-40a3-969e-06104fa71e1e",
            "status": status,
            "status_reason": null,
            "status_detail": null,
            "task_state": null,
            "hostname": null,
            "ports": [],
            "runtime": null,
            "container_id": "892f1466edb074116c5bd21dc10cb41a3ec027594d9199e4932c4715c2aea6de"
        }))
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn inspect_with_state(state: Value) -> Value {
        let mut v: Value = serde_json::from_str(INSPECT).unwrap();
        v["State"] = state;
        v
    }

    #[test]
    fn fixture_inspect_running() {
        let mut c = base("Created");
        let v: Value = serde_json::from_str(INSPECT).unwrap();
        populate_from_inspect(&mut c, &v, false, at("2026-11-28T14:02:25.9Z"));
        assert_eq!(c.get_str("status"), Some("Running"));
        assert_eq!(c.get_str("status_detail"), Some("Up 5 seconds"));
        assert_eq!(c.get_str("hostname"), Some("892f1466edb0"));
        assert_eq!(c.get("ports"), Some(&json!([])));
        assert_eq!(c.get_str("runtime"), Some("runc"));
        let changed: Vec<&str> = c.changes.iter().map(String::as_str).collect();
        assert_eq!(changed, vec!["hostname", "runtime", "status", "status_detail"]);

        // Later: larger units.
        let mut c = base("Running");
        populate_from_inspect(&mut c, &v, false, at("2026-11-28T14:09:20Z"));
        assert_eq!(c.get_str("status_detail"), Some("Up 7 mins"));
        populate_from_inspect(&mut c, &v, false, at("2026-11-28T17:02:19Z"));
        assert_eq!(c.get_str("status_detail"), Some("Up 2 hours"));
        populate_from_inspect(&mut c, &v, false, at("2026-12-01T14:02:19Z"));
        assert_eq!(c.get_str("status_detail"), Some("Up 2 days"));
        // Same second: no unit, so status_detail is null.
        populate_from_inspect(&mut c, &v, false, at("2026-11-28T14:02:20.9Z"));
        assert_eq!(c.get("status_detail"), Some(&Value::Null));
    }

    #[test]
    fn hostname_kept_when_set_and_no_spurious_changes() {
        let mut c = base("Running");
        c.data.insert("hostname".into(), json!("myhost"));
        c.data.insert("runtime".into(), json!("runc"));
        c.data.insert("status_detail".into(), json!("Up 5 seconds"));
        let v: Value = serde_json::from_str(INSPECT).unwrap();
        populate_from_inspect(&mut c, &v, false, at("2026-11-28T14:02:25Z"));
        assert_eq!(c.get_str("hostname"), Some("myhost"));
        assert!(c.changes.is_empty(), "{:?}", c.changes);
    }

    #[test]
    fn created_never_started() {
        let created = json!({"Status": "created", "Running": false, "Paused": false, "Restarting": false,
            "OOMKilled": false, "Dead": false, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"});
        let v = inspect_with_state(created);
        let now = at("2026-11-28T14:02:21Z");
        let mut c = base("Creating");
        c.data.insert("task_state".into(), json!("container_creating"));
        // A task owns the container: without force, state untouched.
        populate_from_inspect(&mut c, &v, false, now);
        assert_eq!(c.get_str("status"), Some("Creating"));
        // Forced (as create does).
        populate_from_inspect(&mut c, &v, true, now);
        assert_eq!(c.get_str("status"), Some("Created"));
        assert_eq!(c.get_str("status_detail"), Some("Created"));
        for keep in ["Created", "Restarting", "Error", "Rebuilding"] {
            let mut c = base(keep);
            populate_from_inspect(&mut c, &v, false, now);
            assert_eq!(c.get_str("status"), Some(keep));
            assert_eq!(c.get("status_detail"), Some(&Value::Null));
        }
    }

    #[test]
    fn exited_paused_restarting_dead_error() {
        let now = at("2026-11-28T16:00:00Z");
        let st = |extra: Value| {
            let mut s = json!({"Status": "exited", "Running": false, "Paused": false, "Restarting": false,
                "Dead": false, "ExitCode": 0, "Error": "",
                "StartedAt": "2026-11-28T14:02:20.3Z", "FinishedAt": "2026-11-28T15:00:00.1Z"});
            for (k, v) in extra.as_object().unwrap() {
                s[k] = v.clone();
            }
            inspect_with_state(s)
        };

        let mut c = base("Running");
        populate_from_inspect(&mut c, &st(json!({"ExitCode": 137})), false, now);
        assert_eq!(c.get_str("status"), Some("Stopped"));
        assert_eq!(c.get_str("status_detail"), Some("Exited(137) 1 hours ago "));

        let mut c = base("Running");
        populate_from_inspect(&mut c, &st(json!({"Status": "paused", "Running": true, "Paused": true})), false, now);
        assert_eq!(c.get_str("status"), Some("Paused"));
        assert_eq!(c.get_str("status_detail"), Some("Up 1 hours (paused)"));

        let mut c = base("Running");
        populate_from_inspect(&mut c, &st(json!({"Status": "restarting", "Restarting": true, "Running": true})), false, now);
        assert_eq!(c.get_str("status"), Some("Restarting"));
        assert_eq!(c.get_str("status_detail"), Some("Restarting"));

        let mut c = base("Running");
        populate_from_inspect(&mut c, &st(json!({"Status": "dead", "Dead": true})), false, now);
        assert_eq!(c.get_str("status"), Some("Dead"));
        assert_eq!(c.get_str("status_detail"), Some("Dead"));

        // Error set: exited → Stopped; other statuses capitalized when valid.
        let mut c = base("Running");
        populate_from_inspect(&mut c, &st(json!({"Error": "oci runtime error", "ExitCode": 127})), false, now);
        assert_eq!(c.get_str("status"), Some("Stopped"));
        assert_eq!(c.get_str("status_detail"), Some("Exited(127) 1 hours ago (error)"));
        let mut c = base("Creating");
        let v = st(json!({"Error": "boom", "Status": "created", "FinishedAt": "0001-01-01T00:00:00Z"}));
        populate_from_inspect(&mut c, &v, false, now);
        assert_eq!(c.get_str("status"), Some("Created"));
        assert_eq!(c.get_str("status_detail"), Some("Exited(0)  ago (error)"));

        // Started, not finished, not running: Unknown with reason and empty detail.
        let mut c = base("Running");
        populate_from_inspect(&mut c, &st(json!({"FinishedAt": "0001-01-01T00:00:00Z"})), false, now);
        assert_eq!(c.get_str("status"), Some("Unknown"));
        assert_eq!(c.get_str("status_reason"), Some("unexpected container state"));
        assert_eq!(c.get_str("status_detail"), Some(""));

        // State missing.
        let mut c = base("Running");
        let mut v = st(json!({}));
        v.as_object_mut().unwrap().remove("State");
        populate_from_inspect(&mut c, &v, false, now);
        assert_eq!(c.get_str("status"), Some("Unknown"));
        assert_eq!(c.get_str("status_reason"), Some("container state is missing"));
        assert_eq!(c.get("status_detail"), Some(&Value::Null));
    }

    #[test]
    fn ago_formatting() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        assert_eq!(format_status_detail(Some("0001-01-01T00:00:00Z"), now).as_deref(), Some(""));
        assert_eq!(format_status_detail(Some("garbage"), now), None);
        assert_eq!(format_status_detail(None, now), None);
        assert_eq!(format_status_detail(Some("2026-11-28T11:59:01.999Z"), now).as_deref(), Some("59 seconds"));
        assert_eq!(format_status_detail(Some("2026-11-28T11:00:00Z"), now).as_deref(), Some("1 hours"));
        assert_eq!(format_status_detail(Some("2026-11-27T12:00:00Z"), now).as_deref(), Some("1 days"));
        // Clock skew (a time in the future): Python's timedelta gives -1 days.
        assert_eq!(format_status_detail(Some("2026-11-28T12:00:05Z"), now).as_deref(), Some("-1 days"));
    }

    #[test]
    fn list_form() {
        let cases = [
            ("Creating", "created", "Created"),
            ("Created", "created", "Created"),
            ("Error", "created", "Error"),
            ("Rebuilding", "created", "Rebuilding"),
            ("Running", "paused", "Paused"),
            ("Stopped", "running", "Running"),
            ("Running", "dead", "Dead"),
            ("Running", "restarting", "Restarting"),
            ("Running", "exited", "Stopped"),
            ("Running", "removing", "Stopped"),
            ("Running", "RUNNING", "Running"),
        ];
        for (cur, state, want) in cases {
            assert_eq!(status_from_list_state(cur, state), ListStatus { status: want.into(), status_reason: None }, "{cur} {state}");
        }
        assert_eq!(
            status_from_list_state("Running", "created"),
            ListStatus { status: "Unknown".into(), status_reason: Some("unexpected container state") }
        );
        let mut c = base("Running");
        c.data.insert("status_detail".into(), json!("Up 5 seconds"));
        populate_from_list_state(&mut c, "exited", false);
        assert_eq!(c.get_str("status"), Some("Stopped"));
        assert_eq!(c.get("status_detail"), Some(&Value::Null));
        let mut c = base("Running");
        c.data.insert("task_state".into(), json!("container_stopping"));
        populate_from_list_state(&mut c, "exited", false);
        assert_eq!(c.get_str("status"), Some("Running"));
        assert!(c.changes.is_empty());
    }
}
