//! `zun_service`: the heartbeat zun-api's servicegroup reads.
//!
//! zun 18.0.0 (`zun/servicegroup/zun_service_periodic.py`): on the first periodic run the row
//! (host, binary) is looked up and, if missing, INSERTed with `{host, binary,
//! availability_zone}` (report_count 0, disabled/forced_down false); then every run does
//! `report_count += 1`, and the DB layer sets `last_seen_up = utcnow()` whenever report_count
//! grows. zun-api's `ServiceGroup.service_is_up`: not `forced_down` and
//! `|now - (last_seen_up or updated_at or created_at)| <= service_down_time`.
//!
//! On a graceful stop zun-compute does **not** touch its row (`rpc_service.Service.stop` only
//! stops the RPC server; `ZunService.destroy` is used by `zun-manage`/the API's service
//! delete, never by the service itself): the host is reported down once `service_down_time`
//! has passed without a heartbeat. The worker should therefore simply stop calling
//! [`Store::service_heartbeat`].
use super::sql::{Kind, Tx, Val};
use super::{now, Result, Store, StoreError};
use chrono::NaiveDateTime;

/// A `zun_service` row.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    pub id: i64,
    pub host: Option<String>,
    pub binary: Option<String>,
    pub report_count: i64,
    pub last_seen_up: Option<NaiveDateTime>,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    pub availability_zone: Option<String>,
    pub created_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
}

const COLS: &str = "`id`, `host`, `binary`, `report_count`, `last_seen_up`, `disabled`, `disabled_reason`, \
                    `forced_down`, `availability_zone`, `created_at`, `updated_at`";
const KINDS: &[Kind] =
    &[Kind::Int, Kind::Text, Kind::Text, Kind::Int, Kind::Time, Kind::Int, Kind::Text, Kind::Int, Kind::Text, Kind::Time, Kind::Time];

fn decode(r: Vec<Val>) -> ServiceRow {
    let mut it = r.into_iter();
    let mut next = || it.next().unwrap_or(Val::Null);
    ServiceRow {
        id: next().as_i64().unwrap_or(0),
        host: next().into_string(),
        binary: next().into_string(),
        report_count: next().as_i64().unwrap_or(0),
        last_seen_up: next().as_time(),
        disabled: next().as_bool().unwrap_or(false),
        disabled_reason: next().into_string(),
        forced_down: next().as_bool().unwrap_or(false),
        availability_zone: next().into_string(),
        created_at: next().as_time(),
        updated_at: next().as_time(),
    }
}

async fn select(tx: &mut Tx, host: &str, binary: &str, lock: bool) -> Result<Option<ServiceRow>> {
    let sql = format!("SELECT {COLS} FROM `zun_service` WHERE `host` = ? AND `binary` = ?{}", if lock { tx.for_update() } else { "" });
    let rows =
        tx.fetch(&sql, &[Val::Text(host.into()), Val::Text(binary.into())], KINDS).await.map_err(|e| StoreError::db("zun_service", e))?;
    Ok(rows.into_iter().next().map(decode))
}

impl Store {
    /// One heartbeat, as zun's `update_zun_service` periodic task: registers the row when
    /// missing (report_count 0, then immediately 1 with `last_seen_up`), else
    /// `report_count + 1`, `last_seen_up = now`, `updated_at = now` (and the configured
    /// availability zone). Returns the row as written.
    pub async fn service_heartbeat(&self, host: &str, binary: &str, availability_zone: &str) -> Result<ServiceRow> {
        self.retrying(|| async move {
            let err = |e| StoreError::db("zun_service", e);
            let mut tx = self.db.begin().await.map_err(err)?;
            let ts = now();
            let key = [Val::Text(host.into()), Val::Text(binary.into())];
            match select(&mut tx, host, binary, true).await? {
                None => {
                    tx.exec(
                        "INSERT INTO `zun_service` (`created_at`, `host`, `binary`, `availability_zone`, \
                         `report_count`, `disabled`, `forced_down`) VALUES (?, ?, ?, ?, 0, 0, 0)",
                        &[Val::Time(ts), key[0].clone(), key[1].clone(), Val::Text(availability_zone.into())],
                    )
                    .await
                    // (Concurrent registrations serialize on the gap lock / SQLite write lock;
                    // the loser's deadlock is retried and then takes the update path.)
                    .map_err(err)?;
                    tx.exec(
                        "UPDATE `zun_service` SET `report_count` = 1, `last_seen_up` = ?, `updated_at` = ? \
                         WHERE `host` = ? AND `binary` = ?",
                        &[Val::Time(ts), Val::Time(ts), key[0].clone(), key[1].clone()],
                    )
                    .await
                    .map_err(err)?;
                    tracing::info!(host, binary, "registered zun_service row");
                }
                Some(_) => {
                    tx.exec(
                        "UPDATE `zun_service` SET `report_count` = `report_count` + 1, `last_seen_up` = ?, \
                         `updated_at` = ?, `availability_zone` = ? WHERE `host` = ? AND `binary` = ?",
                        &[Val::Time(ts), Val::Time(ts), Val::Text(availability_zone.into()), key[0].clone(), key[1].clone()],
                    )
                    .await
                    .map_err(err)?;
                }
            }
            let row = select(&mut tx, host, binary, false)
                .await?
                .ok_or_else(|| StoreError::ZunServiceNotFound { host: host.into(), binary: binary.into() })?;
            tx.commit().await.map_err(err)?;
            Ok(row)
        })
        .await
    }

    /// On a clean stop: moves `last_seen_up` back by `down_after` (zun-api's
    /// `service_down_time`) plus a second, so zun-api's servicegroup sees the host down at
    /// once instead of after `service_down_time` (zun-compute leaves its row alone and the
    /// host looks up for three more minutes). The next start's heartbeat marks it up again.
    pub async fn service_mark_down(&self, host: &str, binary: &str, down_after: std::time::Duration) -> Result<()> {
        let back = chrono::Duration::seconds(down_after.as_secs() as i64 + 1);
        self.retrying(|| async move {
            let ts = now();
            self.db
                .exec(
                    "UPDATE `zun_service` SET `last_seen_up` = ?, `updated_at` = ? WHERE `host` = ? AND `binary` = ?",
                    &[Val::Time(ts - back), Val::Time(ts), Val::Text(host.into()), Val::Text(binary.into())],
                )
                .await
                .map_err(|e| StoreError::db("zun_service", e))
                .map(|_| ())
        })
        .await
    }

    /// The `zun_service` row of (host, binary), if any.
    pub async fn service_get(&self, host: &str, binary: &str) -> Result<Option<ServiceRow>> {
        let rows = self
            .db
            .fetch(
                &format!("SELECT {COLS} FROM `zun_service` WHERE `host` = ? AND `binary` = ?"),
                &[Val::Text(host.into()), Val::Text(binary.into())],
                KINDS,
            )
            .await
            .map_err(|e| StoreError::db("zun_service", e))?;
        Ok(rows.into_iter().next().map(decode))
    }
}
