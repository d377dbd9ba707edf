//! Glance's image API v2, the calls zun's Glance image driver makes: find images (by
//! id, or by name among `container_format=docker` images, with a tag), download one
//! to a file with its checksum verified, create / update / upload / delete an image
//! (for `container_commit`).
//!
//! Hostile input: an image id reaches a URL or a file name only when [`check_id`]
//! accepts it (ids Glance gives back are checked too); names are bounded and free of
//! control characters before they reach a query; sizes are bounded by `max_bytes`,
//! from Glance's `size` before the download and from the bytes while they arrive.
use super::error::{OpenStackError, Service};
use super::session::{path_segment, Auth, Method, Request, ServiceClient};
use md5::Digest;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How many pages of an image list are read at most (200 images each).
const MAX_PAGES: usize = 50;
const PAGE: &str = "200";

#[derive(Debug, thiserror::Error)]
pub enum GlanceError {
    /// zun's `ImageNotFound`.
    #[error("Image {0} could not be found.")]
    NotFound(String),
    /// zun's `Conflict` (several images with the name).
    #[error("Multiple images exist with same name {0}. Please use the image id instead.")]
    Ambiguous(String),
    /// A name or id that cannot be an image's.
    #[error("invalid image reference {0:?}: {1}")]
    Invalid(String, &'static str),
    #[error("Glance image {id}: {algo} checksum mismatch (Glance says {expected}, the download has {actual})")]
    Checksum { id: String, algo: String, expected: String, actual: String },
    #[error("Glance image {id} is larger than the limit of {limit} bytes ([glance] max_image_size_mb)")]
    TooLarge { id: String, limit: u64 },
    #[error("Glance image {id} has no data (status {status})")]
    NoData { id: String, status: String },
    #[error("{what} {path}: {detail}")]
    Io { what: &'static str, path: String, detail: String },
    #[error(transparent)]
    Api(#[from] OpenStackError),
}

/// An image id as it may appear in a URL or a file name: 1 to 64 characters of
/// `[0-9A-Za-z-]` (Glance's are UUIDs).
pub fn check_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// oslo's `is_uuid_like`: a UUID in any of its usual spellings.
pub fn is_uuid_like(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok()
}

/// An image name from the wire: at most 255 characters (Glance's limit), no control
/// characters.
pub fn check_name(name: &str) -> Result<(), GlanceError> {
    if name.is_empty() {
        return Err(GlanceError::Invalid(name.into(), "empty"));
    }
    if name.chars().count() > 255 {
        return Err(GlanceError::Invalid(name.chars().take(40).collect::<String>() + "...", "longer than 255 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(GlanceError::Invalid(name.escape_default().to_string(), "control characters"));
    }
    Ok(())
}

/// An image, with the fields zun reads; `raw` keeps Glance's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub status: String,
    pub container_format: Option<String>,
    pub disk_format: Option<String>,
    pub size: Option<u64>,
    /// md5 of the data.
    pub checksum: Option<String>,
    /// `sha512` (Glance's default), `sha256`, ... with `os_hash_value`.
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub tags: Vec<String>,
    pub raw: Value,
}

impl Image {
    fn from_json(v: &Value, call: &str) -> Result<Image, OpenStackError> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let id = s("id").filter(|i| check_id(i)).ok_or_else(|| decode(call, "an image without a valid id"))?;
        Ok(Image {
            id,
            name: s("name").unwrap_or_default(),
            status: s("status").unwrap_or_default(),
            container_format: s("container_format"),
            disk_format: s("disk_format"),
            size: v.get("size").and_then(Value::as_u64),
            checksum: s("checksum").map(|c| c.to_ascii_lowercase()),
            os_hash_algo: s("os_hash_algo").map(|c| c.to_ascii_lowercase()),
            os_hash_value: s("os_hash_value").map(|c| c.to_ascii_lowercase()),
            tags: v
                .get("tags")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            raw: v.clone(),
        })
    }

    pub fn is_docker(&self) -> bool {
        self.container_format.as_deref() == Some("docker")
    }

    /// zun's `find_images` result dict for `image_search`.
    pub fn to_search_result(&self) -> Value {
        self.raw.clone()
    }
}

fn decode(call: &str, detail: &str) -> OpenStackError {
    OpenStackError::Decode { service: Service::Glance, call: call.to_string(), detail: detail.to_string() }
}

/// The Glance client of the domain.
#[derive(Debug, Clone)]
pub struct Glance {
    client: ServiceClient,
    /// The largest image downloaded or uploaded.
    pub max_bytes: u64,
    /// How long one download or upload may take.
    pub transfer_timeout: Duration,
}

impl Glance {
    pub fn new(client: ServiceClient, max_bytes: u64, transfer_timeout: Duration) -> Self {
        Glance { client, max_bytes, transfer_timeout }
    }

    /// `GET /v2/images/{id}`; `None` for a 404.
    pub async fn get(&self, auth: Auth<'_>, id: &str) -> Result<Option<Image>, GlanceError> {
        if !check_id(id) {
            return Err(GlanceError::Invalid(id.escape_default().to_string(), "not an image id"));
        }
        let req = Request::get(format!("/v2/images/{}", path_segment(id)));
        let resp = self.client.send(auth, &req).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        let resp = resp.check()?;
        Ok(Some(Image::from_json(&resp.json::<Value>()?, &resp.call)?))
    }

    /// `GET /v2/images?container_format=docker[&name=]`, every page (bounded).
    pub async fn list_docker(&self, auth: Auth<'_>, name: Option<&str>) -> Result<Vec<Image>, GlanceError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut req = Request::get("/v2/images").query("container_format", "docker").query("limit", PAGE);
            if let Some(n) = name {
                req = req.query("name", n);
            }
            if let Some(m) = &marker {
                req = req.query("marker", m.clone());
            }
            let resp = self.client.call(auth, &req).await?;
            let body: Value = resp.json()?;
            let page = body.get("images").and_then(Value::as_array).ok_or_else(|| decode(&resp.call, "no images list"))?;
            for v in page {
                out.push(Image::from_json(v, &resp.call)?);
            }
            if body.get("next").and_then(Value::as_str).is_none() || page.is_empty() {
                return Ok(out);
            }
            marker = out.last().map(|i| i.id.clone());
        }
        tracing::warn!(pages = MAX_PAGES, "Glance image list cut at the page limit");
        Ok(out)
    }

    /// zun's `find_images(image_ident, tag, exact_match)`: by id when `ident` is
    /// uuid-like (a docker image only), else among the docker images by name (equal, or
    /// containing it when not `exact`), then by tag: a single match keeps only when it
    /// has no tags or has the tag, several keep those with the tag.
    pub async fn find_images(&self, auth: Auth<'_>, ident: &str, tag: &str, exact: bool) -> Result<Vec<Image>, GlanceError> {
        check_name(ident)?;
        if is_uuid_like(ident) {
            return Ok(self.get(auth, ident).await?.into_iter().filter(Image::is_docker).collect());
        }
        let listed = self.list_docker(auth, exact.then_some(ident)).await?;
        Ok(select(listed, ident, tag, exact))
    }

    /// zun's `find_image`: exactly one match, else `NotFound` / `Ambiguous`.
    pub async fn find_image(&self, auth: Auth<'_>, ident: &str, tag: &str) -> Result<Image, GlanceError> {
        let mut found = self.find_images(auth, ident, tag, true).await?;
        match found.len() {
            0 => Err(GlanceError::NotFound(ident.to_string())),
            1 => Ok(found.remove(0)),
            _ => Err(GlanceError::Ambiguous(ident.to_string())),
        }
    }

    /// Downloads the image's data to `dir/<id>-<random>.tar` (through `.tar.part`, renamed
    /// once complete and verified): md5 against `checksum` and `os_hash_value` with its
    /// algorithm when Glance gives them, the size against `size` and `max_bytes`. On any
    /// failure nothing is left in `dir`.
    pub async fn download(&self, auth: Auth<'_>, image: &Image, dir: &Path) -> Result<PathBuf, GlanceError> {
        if !check_id(&image.id) {
            return Err(GlanceError::Invalid(image.id.escape_default().to_string(), "not an image id"));
        }
        if image.status != "active" {
            return Err(GlanceError::NoData { id: image.id.clone(), status: image.status.clone() });
        }
        if image.size.is_some_and(|s| s > self.max_bytes) {
            return Err(GlanceError::TooLarge { id: image.id.clone(), limit: self.max_bytes });
        }
        tokio::fs::create_dir_all(dir).await.map_err(|e| io("cannot create", dir, &e))?;
        // zun's `<id>.tar`, made unique: two creates may download the same image at once.
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let part = dir.join(format!("{}-{}.tar.part", image.id, &unique[..12]));
        let done = dir.join(format!("{}-{}.tar", image.id, &unique[..12]));
        let res = self.download_to(auth, image, &part).await;
        if let Err(e) = res {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        if let Err(e) = tokio::fs::rename(&part, &done).await {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(io("cannot rename", &part, &e));
        }
        Ok(done)
    }

    async fn download_to(&self, auth: Auth<'_>, image: &Image, part: &Path) -> Result<(), GlanceError> {
        let req = Request::new(Method::GET, format!("/v2/images/{}/file", path_segment(&image.id)));
        let mut resp = self.client.send_raw(auth, &req, None, self.transfer_timeout).await?;
        if resp.status().as_u16() == 204 {
            return Err(GlanceError::NoData { id: image.id.clone(), status: image.status.clone() });
        }
        let mut file = tokio::fs::File::create(part).await.map_err(|e| io("cannot create", part, &e))?;
        let mut md5 = md5::Md5::new();
        let mut hasher = Hasher::for_algo(image.os_hash_algo.as_deref());
        let mut total: u64 = 0;
        let call = req.call();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    return Err(GlanceError::Api(OpenStackError::Unreachable {
                        service: Service::Glance,
                        call: call.clone(),
                        detail: format!("download interrupted after {total} bytes: {e}"),
                    }))
                }
            };
            total = total.saturating_add(chunk.len() as u64);
            if total > self.max_bytes {
                return Err(GlanceError::TooLarge { id: image.id.clone(), limit: self.max_bytes });
            }
            md5.update(&chunk);
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
            file.write_all(&chunk).await.map_err(|e| io("cannot write", part, &e))?;
        }
        file.flush().await.map_err(|e| io("cannot write", part, &e))?;
        file.sync_all().await.map_err(|e| io("cannot sync", part, &e))?;
        if let Some(size) = image.size {
            if size != total {
                return Err(GlanceError::Checksum {
                    id: image.id.clone(),
                    algo: "size".into(),
                    expected: size.to_string(),
                    actual: total.to_string(),
                });
            }
        }
        let actual = hex::encode(md5.finalize());
        if let Some(expected) = image.checksum.as_deref().filter(|c| !c.is_empty()) {
            if expected != actual {
                return Err(GlanceError::Checksum { id: image.id.clone(), algo: "md5".into(), expected: expected.into(), actual });
            }
        }
        if let (Some(h), Some(expected)) = (hasher, image.os_hash_value.as_deref().filter(|c| !c.is_empty())) {
            let (algo, actual) = h.finish();
            if expected != actual {
                return Err(GlanceError::Checksum { id: image.id.clone(), algo: algo.into(), expected: expected.into(), actual });
            }
        }
        tracing::info!(image = %image.id, bytes = total, "Glance image downloaded and verified");
        Ok(())
    }

    /// `POST /v2/images {name}`: zun's `create_image` (a queued image, no data).
    pub async fn create_image(&self, auth: Auth<'_>, name: &str) -> Result<Image, GlanceError> {
        check_name(name)?;
        let resp = self.client.call(auth, &Request::post("/v2/images", json!({"name": name}))).await?;
        Ok(Image::from_json(&resp.json::<Value>()?, &resp.call)?)
    }

    /// `PATCH /v2/images/{id}`: zun's `update_image` (formats and tags).
    pub async fn update_image(
        &self,
        auth: Auth<'_>,
        id: &str,
        disk_format: &str,
        container_format: &str,
        tags: &[String],
    ) -> Result<Image, GlanceError> {
        if !check_id(id) {
            return Err(GlanceError::Invalid(id.escape_default().to_string(), "not an image id"));
        }
        let patch = json!([
            {"op": "replace", "path": "/disk_format", "value": disk_format},
            {"op": "replace", "path": "/container_format", "value": container_format},
            {"op": "replace", "path": "/tags", "value": tags},
        ]);
        let req = Request::new(Method::PATCH, format!("/v2/images/{}", path_segment(id)))
            .json(patch)
            .header("Content-Type", "application/openstack-images-v2.1-json-patch");
        let resp = self.client.call(auth, &req).await?;
        Ok(Image::from_json(&resp.json::<Value>()?, &resp.call)?)
    }

    /// `PUT /v2/images/{id}/file`, streamed from `path` (at most `max_bytes`).
    pub async fn upload(&self, auth: Auth<'_>, id: &str, path: &Path) -> Result<(), GlanceError> {
        if !check_id(id) {
            return Err(GlanceError::Invalid(id.escape_default().to_string(), "not an image id"));
        }
        let len = tokio::fs::metadata(path).await.map_err(|e| io("cannot read", path, &e))?.len();
        if len > self.max_bytes {
            return Err(GlanceError::TooLarge { id: id.to_string(), limit: self.max_bytes });
        }
        let std_path = path.to_path_buf();
        let make = move || -> Result<reqwest::Body, OpenStackError> {
            let f =
                std::fs::File::open(&std_path).map_err(|e| OpenStackError::Config(format!("cannot open {}: {e}", std_path.display())))?;
            Ok(reqwest::Body::wrap(FileBody { file: tokio::fs::File::from_std(f), buf: vec![0; 256 * 1024], len }))
        };
        let req =
            Request::new(Method::PUT, format!("/v2/images/{}/file", path_segment(id))).header("Content-Type", "application/octet-stream");
        self.client.send_raw(auth, &req, Some(&make), self.transfer_timeout).await?;
        tracing::info!(image = %id, bytes = len, "image uploaded to Glance");
        Ok(())
    }

    /// `DELETE /v2/images/{id}`; a 404 is success.
    pub async fn delete(&self, auth: Auth<'_>, id: &str) -> Result<(), GlanceError> {
        if !check_id(id) {
            return Err(GlanceError::Invalid(id.escape_default().to_string(), "not an image id"));
        }
        let resp = self.client.send(auth, &Request::delete(format!("/v2/images/{}", path_segment(id)))).await?;
        if resp.status == 404 {
            return Ok(());
        }
        resp.check()?;
        Ok(())
    }
}

/// zun's name and tag filter of `find_images` (pure).
pub fn select(listed: Vec<Image>, ident: &str, tag: &str, exact: bool) -> Vec<Image> {
    let mut images: Vec<Image> = listed.into_iter().filter(|i| if exact { i.name == ident } else { i.name.contains(ident) }).collect();
    if !tag.is_empty() && !images.is_empty() {
        if images.len() == 1 {
            if !images[0].tags.is_empty() && !images[0].tags.iter().any(|t| t == tag) {
                images.clear();
            }
        } else {
            images.retain(|i| i.tags.iter().any(|t| t == tag));
        }
    }
    images
}

fn io(what: &'static str, path: &Path, e: &std::io::Error) -> GlanceError {
    GlanceError::Io { what, path: path.display().to_string(), detail: e.to_string() }
}

/// The `os_hash_algo` hashes Glance uses.
enum Hasher {
    Sha512(sha2::Sha512),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
}

impl Hasher {
    /// `None` for an algorithm we cannot compute (then md5 alone is checked).
    fn for_algo(algo: Option<&str>) -> Option<Hasher> {
        match algo? {
            "sha512" => Some(Hasher::Sha512(sha2::Sha512::new())),
            "sha256" => Some(Hasher::Sha256(sha2::Sha256::new())),
            "sha384" => Some(Hasher::Sha384(sha2::Sha384::new())),
            other => {
                tracing::info!(algo = %other, "os_hash_algo not computed here; md5 checked alone");
                None
            }
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha512(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
        }
    }
    fn finish(self) -> (&'static str, String) {
        match self {
            Hasher::Sha512(h) => ("sha512", hex::encode(h.finalize())),
            Hasher::Sha256(h) => ("sha256", hex::encode(h.finalize())),
            Hasher::Sha384(h) => ("sha384", hex::encode(h.finalize())),
        }
    }
}

/// A file as a streamed HTTP body of known length.
struct FileBody {
    file: tokio::fs::File,
    buf: Vec<u8>,
    len: u64,
}

impl hyper::body::Body for FileBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        use tokio::io::AsyncRead;
        let this = self.get_mut();
        let mut rb = tokio::io::ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(rb.filled()))))),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_checked_before_urls_and_paths() {
        assert!(check_id("0b6b7ab3-5a3c-4b4e-9d2b-1c3c6b7f1e2a"));
        for bad in ["", "../etc", "a/b", "a.tar", "x y", &"a".repeat(65)] {
            assert!(!check_id(bad), "{bad}");
        }
        assert!(check_name("busybox").is_ok());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"n".repeat(256)).is_err());
        assert!(is_uuid_like("0b6b7ab3-5a3c-4b4e-9d2b-1c3c6b7f1e2a"));
        assert!(!is_uuid_like("busybox"));
    }

    #[test]
    fn an_image_without_a_valid_id_is_refused() {
        assert!(Image::from_json(&json!({"id": "../x", "name": "n"}), "GET /v2/images").is_err());
        let i = Image::from_json(
            &json!({"id": "abc-1", "name": "n", "tags": ["t"], "checksum": "ABC", "container_format": "docker", "size": 3}),
            "GET",
        )
        .unwrap();
        assert_eq!(i.checksum.as_deref(), Some("abc"));
        assert!(i.is_docker());
        assert_eq!(i.size, Some(3));
    }

    fn img(id: &str, name: &str, tags: &[&str]) -> Image {
        Image::from_json(&json!({"id": id, "name": name, "tags": tags, "container_format": "docker"}), "GET").unwrap()
    }

    #[test]
    fn names_and_tags_select_as_zun_does() {
        let all = || vec![img("a", "busybox", &[]), img("b", "busybox-2", &["v1"]), img("c", "cirros", &["v1", "v2"])];
        let ids = |v: Vec<Image>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(select(all(), "busybox", "", true)), ["a"]);
        assert_eq!(ids(select(all(), "busybox", "", false)), ["a", "b"]);
        // one match without tags keeps whatever the tag; with tags, only when it has it
        assert_eq!(ids(select(all(), "busybox", "v9", true)), ["a"]);
        assert!(select(all(), "cirros", "v9", true).is_empty());
        assert_eq!(ids(select(all(), "cirros", "v2", true)), ["c"]);
        // several matches keep those with the tag
        assert_eq!(ids(select(all(), "busybox", "v1", false)), ["b"]);
    }

    #[test]
    fn hashes_are_glances() {
        let mut h = Hasher::for_algo(Some("sha512")).unwrap();
        h.update(b"abc");
        let (algo, v) = h.finish();
        assert_eq!(algo, "sha512");
        assert!(v.starts_with("ddaf35a193617aba"));
        assert!(Hasher::for_algo(Some("blake3")).is_none());
    }
}
