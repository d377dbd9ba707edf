//! The calls zun-compute runs inline, without the container lock: show, logs, exec,
//! exec_resize, top, stats, get/put archive, update, resize (TTY), attach. They answer
//! the caller directly and never wait behind a long create.
use super::{docker_error, Op};
use crate::compute::checks;
use crate::compute::{populate, stats};
use crate::oslo::Container;
use crate::rpc::{MethodResult, RpcError};
use base64::Engine;
use serde_json::{json, Value};

/// The container object as zun returns it: at the version it was received. The
/// object moves into the reply (no copy of its data).
fn object(c: Container) -> Value {
    c.into_value()
}

/// `container_show`: inspect, derive the status (unless a task owns it), save what
/// changed, return the Container. A container gone from Docker is marked Error (or
/// Deleted when auto_remove).
pub async fn container_show(op: Op) -> MethodResult {
    let mut c = op.container()?;
    if let Some(id) = c.get_str("container_id").map(str::to_string) {
        match op.svc.docker.inspect(&id).await {
            Ok(inspect) => {
                op.check_inspect_owned(&c, &id, &inspect)?;
                populate::populate_from_inspect(&mut c, &inspect, false, chrono::Utc::now())
            }
            Err(e) if e.is_not_found() => op.handle_not_found(&mut c, &e).await,
            Err(e) => return Err(docker_error(&e)),
        }
    }
    op.save(&mut c).await?;
    Ok(object(c))
}

/// `container_logs(stdout, stderr, timestamps, tail, since)`: the log text.
pub async fn container_logs(op: Op) -> MethodResult {
    let mut c = op.container()?;
    let id = op.docker_id(&c).await?;
    let tail = match op.arg("tail") {
        None => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if s.parse::<i64>().is_ok() => Some(s.clone()),
        Some(_) => Some("all".to_string()),
    };
    let since = match op.arg("since") {
        None => None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => match s.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => Some(
                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S,%f")
                    .map_err(|_| RpcError::invalid(format!("Invalid since: {s}")))?
                    .and_utc()
                    .timestamp(),
            ),
        },
        Some(_) => None,
    };
    let stdout = op.arg("stdout").map(|_| op.arg_bool("stdout")).unwrap_or(true);
    let stderr = op.arg("stderr").map(|_| op.arg_bool("stderr")).unwrap_or(true);
    match op.svc.docker.logs(&id, stdout, stderr, op.arg_bool("timestamps"), tail, since).await {
        Ok(text) => Ok(Value::String(text)),
        Err(e) => Err(op.docker_failure(&mut c, e).await),
    }
}

/// `container_exec(command, run, interactive)`.
pub async fn container_exec(op: Op) -> MethodResult {
    let mut c = op.container()?;
    let id = op.docker_id(&c).await?;
    let command = op.arg_str("command").unwrap_or_default();
    let argv = crate::oslo::container_types::shlex_split(&command).map_err(|e| RpcError::invalid(e.to_string()))?;
    let interactive = op.arg_bool("interactive");
    let run = op.arg("run").map(|_| op.arg_bool("run")).unwrap_or(true);
    let exec_id = match op.svc.docker.exec_create(&id, &argv, interactive, interactive).await {
        Ok(x) => x,
        Err(e) => return Err(op.docker_failure(&mut c, e).await),
    };
    if run {
        let output = match op.svc.docker.exec_start_collect(&exec_id, op.svc.conf.exec_timeout).await {
            Ok(o) => o,
            Err(e) if e.is_timeout() => return Err(RpcError::conflict(format!("Timeout on executing command: {command}"))),
            Err(e) => return Err(op.docker_failure(&mut c, e).await),
        };
        let state = op.svc.docker.exec_inspect(&exec_id).await.map_err(|e| docker_error(&e))?;
        return Ok(json!({"output": output, "exit_code": state.exit_code, "exec_id": null, "token": null}));
    }
    let token = uuid::Uuid::new_v4().to_string();
    let url = op.svc.conf.remote_api_url.clone();
    let int_id = c.get("id").and_then(Value::as_i64).unwrap_or(0);
    if let Err(e) = op.svc.store.exec_instance_insert(int_id, &exec_id, Some(&url), Some(&token)).await {
        tracing::warn!(error = %e, "could not record the exec instance");
    }
    Ok(json!({"output": null, "exit_code": null, "exec_id": exec_id, "token": token}))
}

/// `container_exec_resize(exec_id, height, width)` (no container argument).
pub async fn container_exec_resize(op: Op) -> MethodResult {
    let exec_id = op.arg_str("exec_id").ok_or_else(|| RpcError::invalid("exec_id is required"))?;
    if !checks::is_docker_id(&exec_id) {
        return Err(RpcError::invalid(format!("Invalid exec_id \"{}\": not a Docker exec id", checks::shown(&exec_id))));
    }
    let h = op.arg_i64("height").unwrap_or(0);
    let w = op.arg_i64("width").unwrap_or(0);
    match op.svc.docker.exec_resize(&exec_id, h, w).await {
        Ok(()) => Ok(Value::Null),
        Err(e) if e.is_not_found() || e.message.contains("process not found") => {
            Err(RpcError::invalid(format!("no such exec instance: {}", e.message)))
        }
        Err(e) => Err(docker_error(&e)),
    }
}

/// `container_top(ps_args)`: Docker's `{Titles, Processes}`.
pub async fn container_top(op: Op) -> MethodResult {
    let mut c = op.container()?;
    let id = op.docker_id(&c).await?;
    let ps_args = op.arg_str("ps_args").filter(|s| s != "None" && !s.is_empty());
    match op.svc.docker.top(&id, ps_args.as_deref()).await {
        Ok(v) => Ok(v),
        Err(e) => Err(op.docker_failure(&mut c, e).await),
    }
}

/// `container_stats`: one sample in zun's dict form.
pub async fn container_stats(op: Op) -> MethodResult {
    let mut c = op.container()?;
    let id = op.docker_id(&c).await?;
    match op.svc.docker.stats_once(&id).await {
        Ok(raw) => stats::zun_stats(Some(&id), &raw).map(Value::Object).map_err(|e| RpcError::internal(e.to_string())),
        Err(e) => Err(op.docker_failure(&mut c, e).await),
    }
}

/// `container_get_archive(path, encode_data)`: `[data, stat]`.
pub async fn container_get_archive(op: Op) -> MethodResult {
    let c = op.container()?;
    let id = op.docker_id(&c).await?;
    let path = op.arg_str("path").unwrap_or_default();
    match op.svc.docker.get_archive(&id, &path).await {
        Ok((tar, stat)) => {
            let data = if op.arg("encode_data").is_none() || op.arg_bool("encode_data") {
                base64::engine::general_purpose::STANDARD.encode(&tar)
            } else {
                String::from_utf8_lossy(&tar).into_owned()
            };
            Ok(json!([data, stat]))
        }
        Err(e) if e.is_not_found() => Err(RpcError::invalid(e.zun_message())),
        Err(e) => Err(docker_error(&e)),
    }
}

/// `container_put_archive(path, data, decode_data)`.
pub async fn container_put_archive(op: Op) -> MethodResult {
    let c = op.container()?;
    let id = op.docker_id(&c).await?;
    let path = op.arg_str("path").unwrap_or_default();
    let data = op.arg_str("data").unwrap_or_default();
    let tar = if op.arg("decode_data").is_none() || op.arg_bool("decode_data") {
        base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .map_err(|e| RpcError::base64(format!("Failed to decode data: {e}")))?
    } else {
        data.into_bytes()
    };
    match op.svc.docker.put_archive(&id, &path, tar).await {
        Ok(()) => Ok(Value::Bool(true)),
        Err(e) if e.is_not_found() => Err(RpcError::invalid(e.zun_message())),
        Err(e) => Err(docker_error(&e)),
    }
}

/// `container_update(patch)` (call) and `resize_container(patch)` (cast): apply the
/// patch; memory/cpu changes update the Docker limits and the compute-node usage.
pub async fn container_update(op: Op, is_cast: bool) -> MethodResult {
    let mut c = op.container()?;
    let patch = op.arg("patch").and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(m) = patch.get("memory") {
        if !m.is_string() && !m.is_null() {
            return Err(RpcError::builtin("TypeError", &format!("memory must be a string, got {m}")));
        }
    }
    if let Some(id) = c.get_str("container_id").map(str::to_string) {
        op.check_owned(&c, &id).await?;
    }
    // Every figure is checked before any arithmetic: a patch out of range is refused
    // and changes nothing (not the row, not Docker, not the compute node's usage).
    let old = checks::resources(&c).unwrap_or_default();
    let new_mem = match patch.get("memory") {
        Some(m) => checks::memory_mb(Some(m)).map_err(RpcError::invalid)?,
        None => old.memory_mb,
    };
    let new_cpu = match patch.get("cpu") {
        Some(v) => checks::cpu(Some(v)).map_err(RpcError::invalid)?,
        None => old.cpu,
    };
    for (k, v) in &patch {
        if c.get(k) != Some(v) {
            c.set(k, v.clone());
        }
    }
    let mem_changed = patch.contains_key("memory") && new_mem != old.memory_mb;
    let cpu_changed = patch.contains_key("cpu") && (new_cpu - old.cpu).abs() > f64::EPSILON;
    if mem_changed || cpu_changed {
        if let Some(id) = c.get_str("container_id").map(str::to_string) {
            // Checked above: memory ≤ 2^31-1 MB and cpu ≤ 256, so neither overflows.
            let memory = mem_changed.then_some(new_mem * 1024 * 1024);
            let memswap = mem_changed.then_some(op.svc.conf.default_memory_swap);
            let shares = cpu_changed.then_some((1024.0 * new_cpu) as i64);
            if let Err(e) = op.svc.docker.update_resources(&id, memory, memswap, shares).await {
                return Err(op.docker_failure(&mut c, e).await);
            }
        }
        let _lock = op.svc.claims.lock().await;
        let dcpu = if cpu_changed { new_cpu - old.cpu } else { 0.0 };
        let dmem = if mem_changed { new_mem - old.memory_mb } else { 0 };
        if let Err(e) = op.svc.store.compute_node_add_usage(&op.svc.host, dcpu, dmem, 0, 0).await {
            tracing::warn!(error = %e, "could not update compute_node usage");
        }
    }
    op.save(&mut c).await?;
    Ok(if is_cast { Value::Null } else { object(c) })
}

/// `container_resize(height, width)`: the TTY size; returns the container.
pub async fn container_resize(op: Op) -> MethodResult {
    let mut c = op.container()?;
    let id = op.docker_id(&c).await?;
    let h = op.arg_i64("height").unwrap_or(0);
    let w = op.arg_i64("width").unwrap_or(0);
    if let Err(e) = op.svc.docker.resize_tty(&id, h, w).await {
        return Err(op.docker_failure(&mut c, e).await);
    }
    Ok(object(c))
}

/// `container_attach`: store the websocket URL and a fresh token; return the token.
pub async fn container_attach(op: Op) -> MethodResult {
    let mut c = op.container()?;
    let id = op.docker_id(&c).await?;
    let url = op.svc.conf.attach_url(&id);
    let token = uuid::Uuid::new_v4().to_string();
    c.set("websocket_url", json!(url));
    c.set("websocket_token", json!(token));
    op.save(&mut c).await?;
    Ok(Value::String(token))
}
