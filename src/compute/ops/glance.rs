//! Glance images in the domain (zun's `GlanceDriver` and the manager's Glance branches):
//! the image of a create with `image_driver = glance`, `image_search` against Glance,
//! and `container_commit` to a Glance image.
//!
//! A create's image: found in Glance by id or name, downloaded under `[glance]
//! images_directory` with its checksum verified, `docker load`ed, tagged
//! `<glance reference>:latest` (what the container is created from), and the tar
//! removed. Every failure before the load leaves nothing behind (no tar, no image).
use super::{docker_error, Op};
use crate::compute::image_ref::{self, PullPolicy};
use crate::openstack::glance::{Glance, GlanceError};
use crate::openstack::{Auth, UserToken};
use crate::oslo::Container;
use crate::rpc::RpcError;
use serde_json::Value;
use std::sync::Arc;

/// The tag a Glance image is loaded under.
pub const LOCAL_TAG: &str = "latest";

/// The context's token when it has one (zun's Glance client acts as the user), else
/// `None`: the service's own token is used.
fn user_token(op: &Op) -> Option<UserToken> {
    let t = op.ctx.auth_token().filter(|t| !t.is_empty())?;
    Some(UserToken::new(t, op.ctx.get("auth_token_info")))
}

fn auth(user: &Option<UserToken>) -> Auth<'_> {
    match user {
        Some(u) => Auth::User(u),
        None => Auth::Service,
    }
}

/// Glance, or zun's answer when it is not configured.
pub fn client(op: &Op) -> Result<Arc<Glance>, RpcError> {
    op.svc
        .glance
        .clone()
        .ok_or_else(|| RpcError::not_supported("Glance is not configured on this host ([keystone_auth] and [glance_client] are needed)"))
}

/// zun's exception class for a Glance failure.
pub fn rpc_error(e: &GlanceError, prefix: &str) -> RpcError {
    match e {
        GlanceError::NotFound(_) => RpcError::image_not_found(e.to_string()),
        GlanceError::Ambiguous(_) => RpcError::conflict(e.to_string()),
        GlanceError::Invalid(..) => RpcError::invalid(e.to_string()),
        _ => RpcError::internal(format!("{prefix}{e}")),
    }
}

/// The create's image from Glance (`repo` is zun's `parse_image_name` for the glance
/// driver: the reference without a tag). Returns the `(repo, tag)` the container is
/// created from. The container is failed (kept on this host) on every error.
pub(crate) async fn pull(op: &Op, c: &mut Container, repo: &str) -> Result<(String, String), RpcError> {
    let res = pull_inner(op, c, repo).await;
    if let Err(e) = &res {
        op.fail(c, &super::reason(e), false).await;
    }
    res
}

async fn pull_inner(op: &Op, c: &Container, repo: &str) -> Result<(String, String), RpcError> {
    client(op)?;
    let docker = &op.svc.docker;
    let uuid = c.uuid().unwrap_or("-").to_string();
    let reference = format!("{repo}:{LOCAL_TAG}");
    // zun: an empty policy with the glance driver's empty tag is `always`.
    let policy = image_ref::pull_policy(c.get_str("image_pull_policy"), "");
    let present = docker.image_exists(&reference).await.map_err(|e| docker_error(&e))?.is_some();
    if !image_ref::should_pull(&policy, present) {
        if present {
            return Ok((repo.to_string(), LOCAL_TAG.to_string()));
        }
        let msg = match policy {
            PullPolicy::Never => format!("Image {repo} not present with pull policy of Never"),
            _ => format!("Image {repo} not present with pull policy of {}", policy.as_str()),
        };
        return Err(RpcError::image_not_found(msg));
    }
    let (image, source, loaded) = fetch_and_load(op, repo, "", &uuid).await?;
    if let Err(e) = docker.tag_image(&source, repo, LOCAL_TAG).await {
        // What the tar named may be other containers' image too: it stays.
        tracing::warn!(container = %uuid, loaded = ?loaded, error = %e, "tagging the loaded Glance image failed");
        return Err(docker_error(&e));
    }
    tracing::info!(container = %uuid, image = %image.id, loaded = %source, reference = %reference, "Glance image loaded and tagged");
    Ok((repo.to_string(), LOCAL_TAG.to_string()))
}

/// Finds the image in Glance (by id, or by name and tag), downloads it (checksum verified),
/// `docker load`s it and removes the tar. Returns the Glance image, the reference the tar
/// named (else the id Docker gave) and everything the load reported.
async fn fetch_and_load(
    op: &Op,
    ident: &str,
    tag: &str,
    for_what: &str,
) -> Result<(crate::openstack::glance::Image, String, Vec<String>), RpcError> {
    let glance = client(op)?;
    let docker = &op.svc.docker;
    let user = user_token(op);
    let prefix = "Cannot download image from glance: ";
    let image = glance.find_image(auth(&user), ident, tag).await.map_err(|e| rpc_error(&e, prefix))?;
    tracing::info!(target_of = %for_what, image = %image.id, name = %image.name, "downloading the image from Glance");
    let dir = op.svc.settings.glance_images_directory();
    let tar = glance.download(auth(&user), &image, &dir).await.map_err(|e| rpc_error(&e, prefix))?;
    let loaded = docker.load_image(&tar).await;
    if let Err(e) = tokio::fs::remove_file(&tar).await {
        tracing::warn!(path = %tar.display(), error = %e, "could not remove the image tar");
    }
    let loaded = loaded.map_err(|e| docker_error(&e))?;
    let Some(source) = loaded.iter().find(|r| !r.starts_with("sha256:")).or(loaded.first()).cloned() else {
        return Err(RpcError::internal(format!("{prefix}docker load of Glance image {} reported no image", image.id)));
    };
    Ok((image, source, loaded))
}

/// `image_pull` with the glance driver (zun's `_do_image_pull` when the repo is a Glance
/// image id, or `[DEFAULT] default_image_driver = glance`): the image downloaded and
/// loaded, and the image row given what Docker holds: repo and tag the tar names (split at
/// the tag's colon, not at a registry's port as zun splits), Docker's id and size.
pub(crate) async fn image_pull(op: &Op, uuid: &str, repo: &str, tag: &str) -> Result<Value, RpcError> {
    // A Glance id has no tag (zun clears it).
    let tag = if crate::openstack::glance::is_uuid_like(repo) { "" } else { tag };
    let (image, source, _) = fetch_and_load(op, repo, tag, uuid).await?;
    let inspect = op.svc.docker.image_exists(&source).await.map_err(|e| docker_error(&e))?;
    let Some(inspect) = inspect else {
        return Err(RpcError::internal(format!("the image loaded from Glance image {} is not in Docker", image.id)));
    };
    // The tar's own reference; an image loaded without one by its first tag.
    let named = if source.starts_with("sha256:") { inspect.pointer("/RepoTags/0").and_then(Value::as_str) } else { Some(source.as_str()) };
    let (repo, tag) = split_repo_tag(named.unwrap_or(source.as_str()));
    let image_id = inspect.get("Id").and_then(Value::as_str).unwrap_or_default();
    let size = inspect.get("Size").and_then(Value::as_i64).unwrap_or(0);
    op.svc.store.image_update(uuid, repo, tag, image_id, size).await.map_err(|e| RpcError::internal(e.to_string()))?;
    tracing::info!(image = %uuid, glance_image = %image.id, repo, tag, "Glance image pulled");
    Ok(Value::Null)
}

/// `repo[:tag]` → (repo, tag): the tag is after the last colon that follows the last slash
/// (`127.0.0.1:5000/busybox:1` is `127.0.0.1:5000/busybox` and `1`); none is `latest`.
pub fn split_repo_tag(reference: &str) -> (&str, &str) {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].rfind(':') {
        Some(i) => (&reference[..name_start + i], &reference[name_start + i + 1..]),
        None => (reference, "latest"),
    }
}

/// `image_search` with the glance driver: zun's `find_images(repo, tag, exact_match)`,
/// each image as Glance describes it.
pub(crate) async fn search(op: &Op, image: &str, exact: bool) -> Result<Value, RpcError> {
    let glance = client(op)?;
    let r = image_ref::parse_reference(image).map_err(|e| RpcError::invalid(e.to_string()))?;
    let user = user_token(op);
    let found = glance.find_images(auth(&user), &r.name, "", exact).await.map_err(|e| rpc_error(&e, ""))?;
    Ok(Value::Array(found.iter().map(|i| i.to_search_result()).collect()))
}

/// The Glance half of `container_commit`: the image is created first (its id is the
/// answer); `commit` makes the local `repo:tag` image (pause, commit, unpause); then
/// formats and tag are set, the image is saved under `[glance] images_directory`,
/// uploaded, and the tar removed. A failed commit deletes the Glance image; a failed
/// upload deletes it and the local image, as zun does.
pub(crate) async fn commit(
    op: &Op,
    repo: &str,
    tag: &str,
    commit: impl std::future::Future<Output = Result<String, RpcError>>,
) -> Result<String, RpcError> {
    let glance = client(op)?;
    let user = user_token(op);
    let snapshot = glance.create_image(auth(&user), repo).await.map_err(|e| rpc_error(&e, ""))?;
    let local_id = match commit.await {
        Ok(id) => id,
        Err(e) => {
            if let Err(d) = glance.delete(auth(&user), &snapshot.id).await {
                tracing::warn!(image = %snapshot.id, error = %d, "could not delete the Glance image of a failed commit");
            }
            return Err(e);
        }
    };
    let uploaded = upload(op, &glance, &user, &snapshot.id, &format!("{repo}:{tag}"), tag).await;
    if let Err(e) = uploaded {
        if let Err(d) = glance.delete(auth(&user), &snapshot.id).await {
            tracing::warn!(image = %snapshot.id, error = %d, "could not delete the Glance image of a failed upload");
        }
        if let Err(d) = op.svc.docker.remove_image(&local_id).await {
            tracing::warn!(image = %local_id, error = %d, "could not remove the committed image after a failed upload");
        }
        return Err(e);
    }
    Ok(snapshot.id)
}

async fn upload(op: &Op, glance: &Glance, user: &Option<UserToken>, id: &str, reference: &str, tag: &str) -> Result<(), RpcError> {
    // Docker's tar is what Glance holds for a docker image; zun says qcow2, which a
    // Glance that inspects uploads (29+) refuses for a tar.
    glance.update_image(auth(user), id, "raw", "docker", &[tag.to_string()]).await.map_err(|e| rpc_error(&e, ""))?;
    let dir = op.svc.settings.glance_images_directory();
    tokio::fs::create_dir_all(&dir).await.map_err(|e| RpcError::internal(format!("cannot create {}: {e}", dir.display())))?;
    let tar = dir.join(format!("{id}.commit.tar"));
    let res: Result<(), RpcError> = async {
        let bytes = op.svc.docker.save_image(reference, &tar, glance.max_bytes).await.map_err(|e| docker_error(&e))?;
        tracing::info!(image = %id, reference, bytes, "committed image saved; uploading it to Glance");
        glance.upload(auth(user), id, &tar).await.map_err(|e| rpc_error(&e, ""))
    }
    .await;
    let _ = tokio::fs::remove_file(&tar).await;
    res
}

#[cfg(test)]
mod tests {
    use super::split_repo_tag;

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(split_repo_tag("127.0.0.1:5000/busybox:latest"), ("127.0.0.1:5000/busybox", "latest"));
        assert_eq!(split_repo_tag("127.0.0.1:5000/busybox"), ("127.0.0.1:5000/busybox", "latest"));
        assert_eq!(split_repo_tag("busybox:1.36"), ("busybox", "1.36"));
        assert_eq!(split_repo_tag("busybox"), ("busybox", "latest"));
    }
}
