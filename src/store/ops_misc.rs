//! `exec_instance` (container_exec with run=False) and `image` (image_pull / image_delete).
use super::container::bmp_only;
use super::sql::{is_duplicate, Val};
use super::{now, Result, Store, StoreError};

impl Store {
    /// Records a Docker exec instance for the websocket proxy (`ExecInstance.create`):
    /// `container_id` is the container row's integer `id` (not the Docker id). Returns the
    /// new row id. [`StoreError::Duplicate`] when (container_id, exec_id) exists.
    pub async fn exec_instance_insert(&self, container_int_id: i64, exec_id: &str, url: Option<&str>, token: Option<&str>) -> Result<i64> {
        let done = self
            .retrying(|| async move {
                self.db
                    .exec(
                        "INSERT INTO `exec_instance` (`created_at`, `container_id`, `exec_id`, `url`, `token`) \
                         VALUES (?, ?, ?, ?, ?)",
                        &[
                            Val::Time(now()),
                            Val::Int(container_int_id),
                            Val::Text(exec_id.into()),
                            Val::opt_text(url),
                            Val::opt_text(token),
                        ],
                    )
                    .await
                    .map_err(|e| {
                        if is_duplicate(&e) {
                            StoreError::Duplicate { table: "exec_instance".into(), detail: format!("exec_id {exec_id}") }
                        } else {
                            StoreError::db("exec_instance", e)
                        }
                    })
            })
            .await?;
        Ok(done.last_insert_id)
    }

    /// After a successful `image_pull`, like zun's `image.save()`: `repo`, `tag`, `image_id`
    /// (Docker `sha256:...`) and `size` (bytes, stored as a string) of the image row `uuid`.
    /// [`StoreError::ImageNotFound`] when there is no such row.
    pub async fn image_update(&self, uuid: &str, repo: &str, tag: &str, image_id: &str, size: i64) -> Result<()> {
        for (field, v) in [("repo", repo), ("tag", tag), ("image_id", image_id)] {
            if v.chars().count() > 255 {
                return Err(StoreError::InvalidField {
                    uuid: uuid.into(),
                    field: format!("image.{field}"),
                    reason: "longer than 255 characters".into(),
                });
            }
        }
        self.retrying(|| async move {
            let ts = now();
            let done = self
                .db
                .exec(
                    "UPDATE `image` SET `repo` = ?, `tag` = ?, `image_id` = ?, `size` = ?, `updated_at` = ? \
                     WHERE `uuid` = ?",
                    &[
                        Val::Text(bmp_only(repo)),
                        Val::Text(bmp_only(tag)),
                        Val::Text(image_id.into()),
                        Val::Text(size.to_string()),
                        Val::Time(ts),
                        Val::Text(uuid.into()),
                    ],
                )
                .await
                .map_err(|e| {
                    if is_duplicate(&e) {
                        StoreError::Duplicate { table: "image".into(), detail: format!("repo {repo} tag {tag}") }
                    } else {
                        StoreError::db("image", e)
                    }
                })?;
            if done.rows_affected == 0 {
                return Err(StoreError::ImageNotFound { image: uuid.into() });
            }
            Ok(())
        })
        .await
    }

    /// `image_delete`: deletes the image row `uuid`; [`StoreError::ImageNotFound`] unless
    /// exactly one row went.
    pub async fn image_delete(&self, uuid: &str) -> Result<()> {
        self.retrying(|| async move {
            let done = self
                .db
                .exec("DELETE FROM `image` WHERE `uuid` = ?", &[Val::Text(uuid.into())])
                .await
                .map_err(|e| StoreError::db("image", e))?;
            if done.rows_affected != 1 {
                return Err(StoreError::ImageNotFound { image: uuid.into() });
            }
            Ok(())
        })
        .await
    }
}
