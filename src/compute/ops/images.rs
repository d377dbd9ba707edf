//! Image operations: `container_commit` (to Glance when configured, else a local image),
//! `image_pull`, `image_delete` and `image_search`.
use super::{docker_error, reason, Op};
use crate::compute::image_ref;
use crate::oslo::{ObjectPrimitive, Status};
use crate::rpc::{MethodResult, RpcError};
use serde_json::{json, Value};

/// `container_commit(repository, tag)`: pause a running container, commit it to a
/// local image `repository:tag`, unpause (always, also when the commit failed); event
/// and action `commit`. Runs in the container's executor, as zun holds its lock. Returns
/// `{"uuid": <image id>}` (zun returns the Glance image id).
pub async fn container_commit(op: Op) -> MethodResult {
    let mut c = op.container_or_finish("commit").await?;
    let uuid = c.uuid().unwrap_or_default().to_string();
    let id = op.docker_id(&c).await?;
    let repo = op.arg_str("repository").ok_or_else(|| RpcError::invalid("repository is required"))?;
    let tag = op.arg_str("tag").filter(|t| !t.is_empty() && t != "None").unwrap_or_else(|| "latest".into());
    op.announce_start(&c, "commit");
    op.event_start(&uuid, "compute__do_container_commit").await;
    let was_running = c.status_is(Status::Running);
    let local = local_commit(&op, &mut c, &id, &repo, &tag, was_running);
    let res = if op.svc.glance.is_some() {
        // zun: the image goes to Glance (created first; its id is the answer).
        super::glance::commit(&op, &repo, &tag, local).await
    } else {
        local.await
    };
    let unit = res.as_ref().map(|_| ()).map_err(Clone::clone);
    op.event_finish(&uuid, "compute__do_container_commit", &unit).await;
    op.finish_action(&c, "commit", res.is_err()).await;
    res.map(|image_id| json!({"uuid": image_id}))
}

/// Pause (when running), `docker commit` to `repo:tag`, unpause: the local image id.
async fn local_commit(
    op: &Op,
    c: &mut crate::oslo::Container,
    id: &str,
    repo: &str,
    tag: &str,
    was_running: bool,
) -> Result<String, RpcError> {
    let uuid = c.uuid().unwrap_or_default().to_string();
    let res: Result<String, RpcError> = async {
        if was_running {
            if let Err(e) = op.svc.docker.pause(id).await {
                return Err(op.docker_failure(c, e).await);
            }
        }
        // Whatever happens between the pause and the unpause, the unpause runs.
        let committed: Result<String, RpcError> = async {
            if was_running {
                c.set_status(Status::Paused, None);
                op.save(c).await?;
            }
            op.svc.docker.commit(id, repo, Some(tag)).await.map_err(|e| docker_error(&e))
        }
        .await;
        if was_running {
            if let Err(e) = op.svc.docker.unpause(id).await {
                // The row says Paused, which is true; the caller learns why.
                tracing::warn!(container = %uuid, error = %e, "unpause after commit failed; the container stays paused");
                c.set_status(Status::Paused, None);
                let _ = op.save(c).await;
                return Err(docker_error(&e));
            }
            c.set_status(Status::Running, None);
            op.save(c).await?;
        }
        committed
    }
    .await;
    res
}

/// The `image` argument (an Image object primitive).
fn image_arg(op: &Op) -> Result<ObjectPrimitive, RpcError> {
    let v = op.arg("image").ok_or_else(|| RpcError::builtin("TypeError", "missing required argument: 'image'"))?;
    ObjectPrimitive::from_value(v).map_err(RpcError::Object)
}

/// `image_pull(image)`: pull `repo:tag`, then record id, size, repo and tag in the
/// image row. A missing image is only logged, as zun does.
pub async fn image_pull(op: Op) -> MethodResult {
    let image = image_arg(&op)?;
    let uuid = image.data.get("uuid").and_then(Value::as_str).unwrap_or_default().to_string();
    let repo = image.data.get("repo").and_then(Value::as_str).unwrap_or_default().to_string();
    let tag = image.data.get("tag").and_then(Value::as_str).filter(|t| !t.is_empty()).unwrap_or("latest").to_string();
    if crate::openstack::glance::is_uuid_like(&repo) || op.svc.settings.default.default_image_driver == "glance" {
        let res = super::glance::image_pull(&op, &uuid, &repo, &tag).await;
        if let Err(e) = &res {
            tracing::warn!(image = %uuid, error = %e, "image pull from Glance failed");
        }
        return res;
    }
    if let Err(e) = op.svc.docker.pull(&repo, &tag, None).await {
        tracing::warn!(image = %repo, tag = %tag, error = %e, "image pull failed");
        return if e.is_not_found() { Ok(Value::Null) } else { Err(docker_error(&e)) };
    }
    let reference = format!("{repo}:{tag}");
    let inspect = op.svc.docker.image_exists(&reference).await.map_err(|e| docker_error(&e))?;
    if let Some(inspect) = inspect {
        let image_id = inspect.get("Id").and_then(Value::as_str).unwrap_or_default();
        let size = inspect.get("Size").and_then(Value::as_i64).unwrap_or(0);
        if let Err(e) = op.svc.store.image_update(&uuid, &repo, &tag, image_id, size).await {
            tracing::warn!(image = %uuid, error = %e, "could not record the pulled image");
        }
    }
    Ok(Value::Null)
}

/// `image_delete(image)`: remove it from Docker, then delete the row.
pub async fn image_delete(op: Op) -> MethodResult {
    let image = image_arg(&op)?;
    let uuid = image.data.get("uuid").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Some(id) = image.data.get("image_id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        if let Err(e) = op.svc.docker.remove_image(id).await {
            if !e.is_not_found() {
                return Err(RpcError::internal(e.to_string()));
            }
        }
    }
    op.svc.store.image_delete(&uuid).await.map_err(|e| RpcError::internal(e.to_string()))?;
    Ok(Value::Null)
}

/// `image_search(image, image_driver_name, exact_match, registry)`: Glance with the
/// glance driver (`[DEFAULT] default_image_driver` when none is given), else Docker Hub.
pub async fn image_search(op: Op) -> MethodResult {
    let image = op.arg_str("image").unwrap_or_default();
    let exact = op.arg_bool("exact_match");
    let driver = op.arg_str("image_driver_name").filter(|d| !d.is_empty() && d != "None");
    let driver = driver.unwrap_or_else(|| op.svc.settings.default.default_image_driver.clone());
    if driver == "glance" {
        return super::glance::search(&op, &image, exact).await;
    }
    let reference = image_ref::parse_reference(&image).map_err(|e| RpcError::invalid(e.to_string()))?;
    let (registry, name) = reference.split_hostname();
    if let Some(r) = registry.filter(|r| *r != "docker.io") {
        return Err(RpcError::not_supported(format!("Image searching is not supported in registry: {r}")));
    }
    let name = name.to_string();
    let found = op.svc.docker.search_images(&name).await.map_err(|e| RpcError::internal(reason(&docker_error(&e))))?;
    let out: Vec<Value> = found
        .into_iter()
        .filter(|r| !exact || r.get("name").and_then(Value::as_str) == Some(name.as_str()))
        .map(|mut r| {
            let mut meta = serde_json::Map::new();
            if let Some(o) = r.as_object_mut() {
                for k in ["is_official", "star_count"] {
                    if let Some(v) = o.remove(k) {
                        meta.insert(k.to_string(), v);
                    }
                }
                o.insert("metadata".into(), Value::Object(meta));
            }
            r
        })
        .collect();
    Ok(Value::Array(out))
}
