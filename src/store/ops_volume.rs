//! `volume` and `volume_mapping` as zun 18.0.0's objects write them.
//!
//! zun-api creates the `volume` row (provider, Cinder id, `auto_remove`, local contents)
//! and sends an unsaved `VolumeMapping` naming it by `volume_id`; zun-compute then
//! creates the `volume_mapping` row (`VolumeMapping.create`: uuid, project, user,
//! container uuid and path, volume id; the volume attributes, `host` among them, go to
//! the volume row only through `save`, so `volume.host` stays NULL as zun leaves it),
//! records `connection_info` on the volume row after a Cinder connect, and on detach
//! deletes the mapping and then the volume row once no mapping names it.
use super::sql::{Kind, Val};
use super::{now, Result, Store, StoreError};

/// A `volume` row.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeRow {
    pub id: i64,
    pub uuid: String,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub cinder_volume_id: Option<String>,
    pub volume_provider: String,
    pub connection_info: Option<String>,
    pub host: Option<String>,
    pub auto_remove: Option<bool>,
    pub contents: Option<String>,
}

/// A `volume_mapping` row with its volume.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeMappingRow {
    pub id: i64,
    pub uuid: String,
    pub container_uuid: Option<String>,
    pub container_path: Option<String>,
    pub volume: VolumeRow,
}

/// What `VolumeMapping.create` writes.
#[derive(Debug, Clone)]
pub struct NewVolumeMapping<'a> {
    pub uuid: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub container_uuid: &'a str,
    pub container_path: &'a str,
    pub volume_id: i64,
}

const VOLUME_COLS: &str = "v.`id`, v.`uuid`, v.`project_id`, v.`user_id`, v.`cinder_volume_id`, v.`volume_provider`, \
                           v.`connection_info`, v.`host`, v.`auto_remove`, v.`contents`";
const VOLUME_KINDS: [Kind; 10] =
    [Kind::Int, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Int, Kind::Text];

fn volume_from(r: &[Val]) -> Result<VolumeRow> {
    let id = r[0].as_i64().ok_or_else(|| corrupt("id", "-", "NULL"))?;
    let text = |i: usize| r[i].as_str().map(str::to_string);
    Ok(VolumeRow {
        id,
        uuid: text(1).ok_or_else(|| corrupt("uuid", &id.to_string(), "NULL"))?,
        project_id: text(2),
        user_id: text(3),
        cinder_volume_id: text(4),
        volume_provider: text(5).unwrap_or_default(),
        connection_info: text(6),
        host: text(7),
        auto_remove: r[8].as_bool(),
        contents: text(9),
    })
}

fn corrupt(column: &str, key: &str, reason: &str) -> StoreError {
    StoreError::CorruptRow { table: "volume", column: column.into(), key: key.into(), reason: reason.into() }
}

impl Store {
    /// `Volume.get_by_id`.
    pub async fn volume_get(&self, id: i64) -> Result<Option<VolumeRow>> {
        self.retrying(|| async move {
            let sql = format!("SELECT {VOLUME_COLS} FROM `volume` v WHERE v.`id` = ?");
            let rows = self.db.fetch(&sql, &[Val::Int(id)], &VOLUME_KINDS).await.map_err(|e| StoreError::db("volume", e))?;
            rows.first().map(|r| volume_from(r)).transpose()
        })
        .await
    }

    /// `VolumeMapping.create` for a volume row zun-api made; returns the new row.
    pub async fn volume_mapping_create(&self, m: &NewVolumeMapping<'_>) -> Result<VolumeMappingRow> {
        let volume = self
            .volume_get(m.volume_id)
            .await?
            .ok_or_else(|| StoreError::InvalidObject(format!("Volume {} could not be found.", m.volume_id)))?;
        let uuid = m.uuid.map(str::to_string).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let done = self
            .retrying(|| {
                let uuid = uuid.clone();
                async move {
                    self.db
                        .exec(
                            "INSERT INTO `volume_mapping` (`created_at`, `uuid`, `project_id`, `user_id`, `container_uuid`, \
                             `container_path`, `volume_id`) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            &[
                                Val::Time(now()),
                                Val::Text(uuid),
                                Val::opt_text(m.project_id),
                                Val::opt_text(m.user_id),
                                Val::Text(m.container_uuid.into()),
                                Val::Text(m.container_path.into()),
                                Val::Int(m.volume_id),
                            ],
                        )
                        .await
                        .map_err(|e| {
                            if super::sql::is_duplicate(&e) {
                                StoreError::Duplicate { table: "volume_mapping".into(), detail: "this uuid".into() }
                            } else {
                                StoreError::db("volume_mapping", e)
                            }
                        })
                }
            })
            .await?;
        Ok(VolumeMappingRow {
            id: done.last_insert_id,
            uuid,
            container_uuid: Some(m.container_uuid.into()),
            container_path: Some(m.container_path.into()),
            volume,
        })
    }

    /// `VolumeMapping.list_by_container`, each with its volume, in creation order.
    pub async fn volume_mappings_of_container(&self, container_uuid: &str) -> Result<Vec<VolumeMappingRow>> {
        self.mappings_where("m.`container_uuid` = ?", Val::Text(container_uuid.into())).await
    }

    /// The mappings of every container on `host` (one query for the start-up remount).
    pub async fn volume_mappings_on_host(&self, host: &str) -> Result<Vec<VolumeMappingRow>> {
        self.mappings_where("m.`container_uuid` IN (SELECT `uuid` FROM `container` WHERE `host` = ?)", Val::Text(host.into())).await
    }

    /// `VolumeMapping.list_by_cinder_volume`.
    pub async fn volume_mappings_of_cinder_volume(&self, cinder_volume_id: &str) -> Result<Vec<VolumeMappingRow>> {
        self.mappings_where("v.`cinder_volume_id` = ?", Val::Text(cinder_volume_id.into())).await
    }

    /// `VolumeMapping.count(volume_id=...)`.
    pub async fn volume_mapping_count(&self, volume_id: i64) -> Result<i64> {
        self.retrying(|| async move {
            let rows = self
                .db
                .fetch("SELECT COUNT(*) FROM `volume_mapping` WHERE `volume_id` = ?", &[Val::Int(volume_id)], &[Kind::Int])
                .await
                .map_err(|e| StoreError::db("volume_mapping", e))?;
            Ok(rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0))
        })
        .await
    }

    async fn mappings_where(&self, cond: &str, param: Val) -> Result<Vec<VolumeMappingRow>> {
        let sql = format!(
            "SELECT m.`id`, m.`uuid`, m.`container_uuid`, m.`container_path`, {VOLUME_COLS} FROM `volume_mapping` m \
             JOIN `volume` v ON v.`id` = m.`volume_id` WHERE {cond} ORDER BY m.`id`"
        );
        let mut kinds = vec![Kind::Int, Kind::Text, Kind::Text, Kind::Text];
        kinds.extend_from_slice(&VOLUME_KINDS);
        let rows = self
            .retrying(|| {
                let (sql, kinds, param) = (&sql, &kinds, param.clone());
                async move { self.db.fetch(sql, &[param], kinds).await.map_err(|e| StoreError::db("volume_mapping", e)) }
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(VolumeMappingRow {
                    id: r[0].as_i64().unwrap_or_default(),
                    uuid: r[1].as_str().unwrap_or_default().to_string(),
                    container_uuid: r[2].as_str().map(str::to_string),
                    container_path: r[3].as_str().map(str::to_string),
                    volume: volume_from(&r[4..])?,
                })
            })
            .collect()
    }

    /// `volmap.connection_info = ...; volmap.save()`: the volume row's `connection_info`.
    pub async fn volume_set_connection_info(&self, volume_id: i64, connection_info: Option<&str>) -> Result<()> {
        self.retrying(|| async move {
            self.db
                .exec(
                    "UPDATE `volume` SET `connection_info` = ?, `updated_at` = ? WHERE `id` = ?",
                    &[Val::opt_text(connection_info), Val::Time(now()), Val::Int(volume_id)],
                )
                .await
                .map_err(|e| StoreError::db("volume", e))?;
            Ok(())
        })
        .await
    }

    /// `VolumeMapping.destroy`: the mapping, then its volume row once no mapping names it.
    /// A mapping already gone is not an error (a redelivered delete).
    pub async fn volume_mapping_destroy(&self, mapping_uuid: &str, volume_id: i64) -> Result<()> {
        self.retrying(|| async move {
            let mut tx = self.db.begin().await.map_err(|e| StoreError::db("volume_mapping", e))?;
            tx.exec("DELETE FROM `volume_mapping` WHERE `uuid` = ?", &[Val::Text(mapping_uuid.into())])
                .await
                .map_err(|e| StoreError::db("volume_mapping", e))?;
            let left = tx
                .fetch("SELECT COUNT(*) FROM `volume_mapping` WHERE `volume_id` = ?", &[Val::Int(volume_id)], &[Kind::Int])
                .await
                .map_err(|e| StoreError::db("volume_mapping", e))?;
            if left.first().and_then(|r| r[0].as_i64()).unwrap_or(0) == 0 {
                tx.exec("DELETE FROM `volume` WHERE `id` = ?", &[Val::Int(volume_id)]).await.map_err(|e| StoreError::db("volume", e))?;
            }
            tx.commit().await.map_err(|e| StoreError::db("volume_mapping", e))
        })
        .await
    }
}
