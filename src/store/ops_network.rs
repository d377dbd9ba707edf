//! `network` as zun 18.0.0's kuryr driver writes it (`ZunNetwork`): one row per Neutron
//! network and host (`uniq_network0neutron_net_id_host`), made when this host makes the
//! Docker network for it, `network_id` the Docker network's id; destroyed with it.
use super::sql::{is_duplicate, Kind, Val};
use super::{now, Result, Store, StoreError};

/// A `network` row.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRow {
    pub id: i64,
    pub uuid: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub network_id: Option<String>,
    pub neutron_net_id: Option<String>,
    pub host: Option<String>,
}

const COLS: &str = "`id`, `uuid`, `project_id`, `user_id`, `name`, `network_id`, `neutron_net_id`, `host`";
const KINDS: [Kind; 8] = [Kind::Int, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text];

impl Store {
    /// The row of `neutron_net_id` on `host`, if any.
    pub async fn network_on_host(&self, neutron_net_id: &str, host: &str) -> Result<Option<NetworkRow>> {
        self.retrying(|| async move {
            let rows = self
                .db
                .fetch(
                    &format!("SELECT {COLS} FROM `network` WHERE `neutron_net_id` = ? AND `host` = ?"),
                    &[Val::Text(neutron_net_id.into()), Val::Text(host.into())],
                    &KINDS,
                )
                .await
                .map_err(|e| StoreError::db("network", e))?;
            Ok(rows.first().map(|r| {
                let text = |i: usize| r[i].as_str().map(str::to_string);
                NetworkRow {
                    id: r[0].as_i64().unwrap_or_default(),
                    uuid: text(1),
                    project_id: text(2),
                    user_id: text(3),
                    name: text(4),
                    network_id: text(5),
                    neutron_net_id: text(6),
                    host: text(7),
                }
            }))
        })
        .await
    }

    /// `ZunNetwork.create` then `save` of its Docker id, as one idempotent write: the row of
    /// (`neutron_net_id`, `host`) made or, when another request made it first, its
    /// `network_id` brought up to date. Returns the row.
    pub async fn network_record(
        &self,
        neutron_net_id: &str,
        host: &str,
        network_id: &str,
        project_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<NetworkRow> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let inserted = self
            .retrying(|| async {
                self.db
                    .exec(
                        "INSERT INTO `network` (`created_at`, `uuid`, `project_id`, `user_id`, `name`, `network_id`, \
                         `neutron_net_id`, `host`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        &[
                            Val::Time(now()),
                            Val::Text(uuid.clone()),
                            Val::opt_text(project_id),
                            Val::opt_text(user_id),
                            Val::Text(neutron_net_id.into()),
                            Val::Text(network_id.into()),
                            Val::Text(neutron_net_id.into()),
                            Val::Text(host.into()),
                        ],
                    )
                    .await
                    .map(|_| true)
                    .or_else(|e| if is_duplicate(&e) { Ok(false) } else { Err(StoreError::db("network", e)) })
            })
            .await?;
        if !inserted {
            self.retrying(|| async {
                self.db
                    .exec(
                        "UPDATE `network` SET `network_id` = ?, `updated_at` = ? WHERE `neutron_net_id` = ? AND `host` = ?",
                        &[Val::Text(network_id.into()), Val::Time(now()), Val::Text(neutron_net_id.into()), Val::Text(host.into())],
                    )
                    .await
                    .map_err(|e| StoreError::db("network", e))
            })
            .await?;
        }
        self.network_on_host(neutron_net_id, host)
            .await?
            .ok_or_else(|| StoreError::Duplicate { table: "network".into(), detail: format!("{neutron_net_id} on {host} vanished") })
    }

    /// `ZunNetwork.destroy` (by its uuid).
    pub async fn network_destroy_by_uuid(&self, uuid: &str) -> Result<()> {
        self.retrying(|| async move {
            self.db
                .exec("DELETE FROM `network` WHERE `uuid` = ?", &[Val::Text(uuid.into())])
                .await
                .map_err(|e| StoreError::db("network", e))
        })
        .await?;
        Ok(())
    }
}
