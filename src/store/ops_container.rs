//! Container rows: read, save (changed fields only), insert when missing, destroy.
use super::container::{self as codec, container_type};
use super::sql::{Kind, Val};
use super::{now, time_to_wire, Result, Store, StoreError};
use crate::oslo::Container;
use serde_json::Value;

/// What a save did.
enum Saved {
    Nothing,
    Updated,
    Inserted {
        id: i64,
    },
    /// The row is gone and inserting was not allowed.
    Missing,
}

impl Store {
    /// The container row with this uuid (any container type), as an object in wire form at
    /// zun's current version (`Container` 1.44; capsule types 1.4) with every column field
    /// set and no pending changes. `None` when there is no such row.
    pub async fn container_get(&self, uuid: &str) -> Result<Option<Container>> {
        let fields = codec::all_read_fields();
        let (cols, kinds) = codec::select_list(&fields);
        let rows = self
            .db
            .fetch(&format!("SELECT {cols} FROM `container` WHERE `uuid` = ?"), &[Val::Text(uuid.into())], &kinds)
            .await
            .map_err(|e| StoreError::db("container", e))?;
        rows.into_iter().next().map(|r| codec::row_to_container(&fields, r)).transpose()
    }

    /// Every container row (all container types) whose `host` is `host`.
    pub async fn containers_by_host(&self, host: &str) -> Result<Vec<Container>> {
        self.containers_on_host(host, codec::all_read_fields()).await
    }

    /// [`Store::containers_by_host`] with only the columns of [`codec::STATE_FIELDS`]
    /// (identity, Docker id, status, task state, auto_remove): what the periodic state
    /// sync and the reaper read of every row, once a minute. A dense host's pass then
    /// builds a few fields per row instead of every column (JSON ones included), and a
    /// corrupt value in a column it does not read no longer stops the pass.
    pub async fn container_states_by_host(&self, host: &str) -> Result<Vec<Container>> {
        let fields = codec::all_read_fields().into_iter().filter(|(name, _)| codec::STATE_FIELDS.contains(name)).collect();
        self.containers_on_host(host, fields).await
    }

    async fn containers_on_host(&self, host: &str, fields: Vec<(&'static str, codec::Codec)>) -> Result<Vec<Container>> {
        let (cols, kinds) = codec::select_list(&fields);
        let rows = self
            .db
            .fetch(&format!("SELECT {cols} FROM `container` WHERE `host` = ? ORDER BY `id`"), &[Val::Text(host.into())], &kinds)
            .await
            .map_err(|e| StoreError::db("container", e))?;
        rows.into_iter().map(|r| codec::row_to_container(&fields, r)).collect()
    }

    /// The uuids of the container rows (all types) on `host`.
    pub async fn container_uuids_by_host(&self, host: &str) -> Result<Vec<String>> {
        let rows = self
            .db
            .fetch("SELECT `uuid` FROM `container` WHERE `host` = ? ORDER BY `id`", &[Val::Text(host.into())], &[Kind::Text])
            .await
            .map_err(|e| StoreError::db("container", e))?;
        Ok(rows.into_iter().filter_map(|r| r.into_iter().next().and_then(Val::into_string)).collect())
    }

    /// Saves the object's pending changes (`changes`, including those zun-api sent unsaved,
    /// e.g. `status='Deleting'` on delete) like zun's `Container.save()` (which does
    /// `SELECT ... FOR UPDATE` then UPDATE in a transaction): one UPDATE of the changed
    /// columns plus `updated_at = now` on (uuid, container_type), atomic on its own; no
    /// matched row means the row is missing. Fields without a column are ignored. With no
    /// pending column change nothing is written (the row's existence is still checked).
    ///
    /// When the row does not exist (standalone use, no zun-api in front) the whole object is
    /// INSERTed (`created_at = now`, zun's ORM defaults for unset columns) and `id`/`created_at`
    /// are set on the object.
    ///
    /// Every value is validated before anything is written; on error
    /// ([`StoreError::InvalidField`]) the row is left as it was and the changes are kept.
    /// On success the pending changes are cleared.
    pub async fn container_save(&self, c: &mut Container) -> Result<()> {
        self.save_impl(c, true).await.map(|_| ())
    }

    /// Like [`Store::container_save`] but never inserts: false (and nothing written, the
    /// changes kept) when the row is gone, as zun's `save()` raising ContainerNotFound.
    /// Everything but a standalone create uses this, so a late save cannot bring back a
    /// deleted container.
    pub async fn container_update(&self, c: &mut Container) -> Result<bool> {
        self.save_impl(c, false).await
    }

    async fn save_impl(&self, c: &mut Container, allow_insert: bool) -> Result<bool> {
        let uuid = c.uuid().map(str::to_string).ok_or_else(|| StoreError::InvalidObject("container without a uuid".into()))?;
        let ctype = container_type(&c.name).ok_or_else(|| StoreError::InvalidObject(format!("{} is not a container object", c.name)))?;
        // Validate the changes up front, before touching the database (the whole object is
        // validated only when it has to be inserted, still before the INSERT).
        let updates = codec::update_columns(c, &uuid)?;
        let outcome = {
            let (updates, uuid, obj) = (&updates, &uuid, &*c);
            self.retrying(|| self.save_once(uuid, ctype, updates, obj, allow_insert)).await?
        };
        match outcome.0 {
            Saved::Inserted { id } => {
                c.data.insert("id".into(), Value::from(id));
                c.data.insert("created_at".into(), Value::String(time_to_wire(outcome.1)));
            }
            Saved::Missing => return Ok(false),
            Saved::Updated | Saved::Nothing => {}
        }
        c.clear_changes();
        Ok(true)
    }

    async fn save_once(
        &self,
        uuid: &str,
        ctype: i64,
        updates: &[(&'static str, Val)],
        obj: &Container,
        allow_insert: bool,
    ) -> Result<(Saved, chrono::NaiveDateTime)> {
        let err = |e| StoreError::db("container", e);
        let ts = now();
        if !updates.is_empty() {
            // The usual case, an existing row: one UPDATE on (uuid, container_type), which
            // locks and changes the row in one statement (zun's SELECT ... FOR UPDATE then
            // UPDATE, without the three extra round trips). The affected-row count is the
            // matched rows on both backends (sqlx's MySQL client sets CLIENT_FOUND_ROWS;
            // SQLite counts every row an UPDATE matched), so an update that changes no value
            // still counts its row, and 0 means the row is missing. A retry after a lost
            // connection repeats the same SET: applying it twice is applying it once.
            let done = self
                .db
                .exec(
                    &update_sql(updates, "`uuid` = ? AND `container_type` = ?"),
                    &update_params(updates, ts, [Val::Text(uuid.into()), Val::Int(ctype)]),
                )
                .await
                .map_err(err)?;
            if done.rows_affected > 0 {
                return Ok((Saved::Updated, ts));
            }
            if !allow_insert {
                return Ok((Saved::Missing, ts));
            }
            // Missing and insertable: the transaction below settles it (a row inserted
            // meanwhile is updated there).
        } else if !allow_insert {
            // Nothing to write: only whether the row is there (no lock, nothing changes).
            let found = self
                .db
                .fetch(
                    "SELECT `id` FROM `container` WHERE `uuid` = ? AND `container_type` = ?",
                    &[Val::Text(uuid.into()), Val::Int(ctype)],
                    &[Kind::Int],
                )
                .await
                .map_err(err)?;
            return Ok((if found.is_empty() { Saved::Missing } else { Saved::Nothing }, ts));
        }
        let mut tx = self.db.begin().await.map_err(err)?;
        let found = tx
            .fetch(
                &format!("SELECT `id` FROM `container` WHERE `uuid` = ? AND `container_type` = ?{}", tx.for_update()),
                &[Val::Text(uuid.into()), Val::Int(ctype)],
                &[Kind::Int],
            )
            .await
            .map_err(err)?;
        let saved = match found.first().and_then(|r| r.first()).and_then(Val::as_i64) {
            Some(id) => {
                if updates.is_empty() {
                    Saved::Nothing
                } else {
                    tx.exec(&update_sql(updates, "`id` = ?"), &update_params(updates, ts, [Val::Int(id)])).await.map_err(err)?;
                    Saved::Updated
                }
            }
            None if !allow_insert => Saved::Missing,
            None => {
                let insert = codec::insert_columns(obj, uuid)?;
                let mut cols: Vec<String> = vec!["`created_at`".into()];
                let mut params = vec![Val::Time(ts)];
                for (c, v) in &insert {
                    cols.push(format!("`{c}`"));
                    params.push(v.clone());
                }
                let marks = vec!["?"; cols.len()].join(", ");
                let done =
                    tx.exec(&format!("INSERT INTO `container` ({}) VALUES ({marks})", cols.join(", ")), &params).await.map_err(|e| {
                        if super::sql::is_duplicate(&e) {
                            StoreError::Duplicate { table: "container".into(), detail: format!("uuid {uuid} (of another container type)") }
                        } else {
                            err(e)
                        }
                    })?;
                tracing::info!(uuid, "container row was missing; inserted it from the object");
                Saved::Inserted { id: done.last_insert_id }
            }
        };
        tx.commit().await.map_err(err)?;
        Ok((saved, ts))
    }

    /// Deletes the container row, like zun's `Container.destroy()` after `_detach_volumes`:
    /// its `volume_mapping` rows first (that foreign key has no ON DELETE clause), then the
    /// row; actions, events, exec instances and capsule children go with it by cascade.
    /// [`StoreError::ContainerNotFound`] when there is no such row.
    pub async fn container_destroy(&self, uuid: &str) -> Result<()> {
        self.retrying(|| async move {
            let err = |e| StoreError::db("container", e);
            let mut tx = self.db.begin().await.map_err(err)?;
            tx.exec("DELETE FROM `volume_mapping` WHERE `container_uuid` = ?", &[Val::Text(uuid.into())])
                .await
                .map_err(|e| StoreError::db("volume_mapping", e))?;
            let done = tx.exec("DELETE FROM `container` WHERE `uuid` = ?", &[Val::Text(uuid.into())]).await.map_err(err)?;
            if done.rows_affected != 1 {
                return Err(StoreError::ContainerNotFound { uuid: uuid.into() });
            }
            tx.commit().await.map_err(err)
        })
        .await
    }
}

/// `UPDATE container SET <changed columns>, updated_at = ? WHERE <filter>`.
fn update_sql(updates: &[(&'static str, Val)], filter: &str) -> String {
    let sets: Vec<String> = updates.iter().map(|(c, _)| format!("`{c}` = ?")).collect();
    format!("UPDATE `container` SET {}, `updated_at` = ? WHERE {filter}", sets.join(", "))
}

/// The parameters of [`update_sql`]: the changed values, `updated_at`, the filter's.
fn update_params<const N: usize>(updates: &[(&'static str, Val)], ts: chrono::NaiveDateTime, filter: [Val; N]) -> Vec<Val> {
    let mut params: Vec<Val> = updates.iter().map(|(_, v)| v.clone()).collect();
    params.push(Val::Time(ts));
    params.extend(filter);
    params
}

// ---- capsules -------------------------------------------------------------------------
impl Store {
    /// The members of the capsule whose row id is `capsule_id`: its `CapsuleInitContainer`
    /// and `CapsuleContainer` rows, in zun's list order (`id`, the order zun-api created them
    /// from the template), as objects like [`Store::container_get`] returns.
    pub async fn capsule_members(&self, capsule_id: i64) -> Result<Vec<Container>> {
        let fields = codec::all_read_fields();
        let (cols, kinds) = codec::select_list(&fields);
        let rows = self
            .db
            .fetch(
                &format!("SELECT {cols} FROM `container` WHERE `capsule_id` = ? AND `container_type` IN (2, 3) ORDER BY `id`"),
                &[Val::Int(capsule_id)],
                &kinds,
            )
            .await
            .map_err(|e| StoreError::db("container", e))?;
        rows.into_iter().map(|r| codec::row_to_container(&fields, r)).collect()
    }
}
