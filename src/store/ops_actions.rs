//! `container_actions` and `container_actions_events`: zun's action history.
//!
//! Semantics of zun 18.0.0 (`zun/objects/container_action.py`, `zun/db/sqlalchemy/api.py`):
//! zun-api inserts the action (`action_start`); compute records one event per wrapped
//! function (`compute__do_container_create`, ...) with `EventReporter` (`event_start` /
//! `event_finish`) and finishes the action with `FinishAction` (`action_finish`).
//! The action is found by (container_uuid, request_id); when none matches and the request
//! context has no project_id (admin or periodic context), the container's newest action.
use super::container::bmp_only;
use super::sql::{Kind, Tx, Val};
use super::{now, secs, Result, Store, StoreError};
use chrono::NaiveDateTime;

/// `traceback` is TEXT: at most 65535 bytes.
const TRACEBACK_MAX_BYTES: usize = 65_535;

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate_bytes(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl Store {
    /// Records the start of an action, as zun-api does before a cast (`ContainerAction.action_start`):
    /// INSERT with `start_time` = the request context's timestamp. Returns the action id.
    /// (The worker itself never calls this when zun-api is in front; the standalone CLI and
    /// tests do.)
    pub async fn action_start(
        &self,
        container_uuid: &str,
        request_id: &str,
        user_id: Option<&str>,
        project_id: Option<&str>,
        action: &str,
        start_time: NaiveDateTime,
    ) -> Result<i64> {
        let done = self
            .retrying(|| async move {
                self.db
                    .exec(
                        "INSERT INTO `container_actions` (`created_at`, `action`, `container_uuid`, `request_id`, \
                         `user_id`, `project_id`, `start_time`) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        &[
                            Val::Time(now()),
                            Val::Text(action.into()),
                            Val::Text(container_uuid.into()),
                            Val::Text(request_id.into()),
                            Val::opt_text(user_id),
                            Val::opt_text(project_id),
                            Val::Time(secs(start_time)),
                        ],
                    )
                    .await
                    .map_err(|e| StoreError::db("container_actions", e))
            })
            .await?;
        Ok(done.last_insert_id)
    }

    /// `EventReporter.__enter__`: finds the action and inserts the event row with
    /// `start_time = now`. [`StoreError::ContainerActionNotFound`] when no action matches.
    pub async fn event_start(&self, container_uuid: &str, request_id: &str, ctx_has_project_id: bool, event: &str) -> Result<()> {
        self.retrying(|| async move {
            let mut tx = self.db.begin().await.map_err(|e| StoreError::db("container_actions", e))?;
            let action_id = find_action(&mut tx, container_uuid, request_id, ctx_has_project_id).await?;
            let ts = now();
            tx.exec(
                "INSERT INTO `container_actions_events` (`created_at`, `event`, `action_id`, `start_time`) \
                 VALUES (?, ?, ?, ?)",
                &[Val::Time(ts), Val::Text(event.into()), Val::Int(action_id), Val::Time(ts)],
            )
            .await
            .map_err(|e| StoreError::db("container_actions_events", e))?;
            tx.commit().await.map_err(|e| StoreError::db("container_actions_events", e))
        })
        .await
    }

    /// `EventReporter.__exit__`: updates the first event named `event` of the action:
    /// `finish_time = now`, `result` `Success`, or `Error` with `traceback` = the error text
    /// (4-byte characters replaced, cut to the TEXT column's 65535 bytes).
    pub async fn event_finish(
        &self,
        container_uuid: &str,
        request_id: &str,
        ctx_has_project_id: bool,
        event: &str,
        outcome: std::result::Result<(), String>,
    ) -> Result<()> {
        let traceback = match &outcome {
            Ok(()) => None,
            Err(text) => Some(truncate_bytes(bmp_only(text), TRACEBACK_MAX_BYTES)),
        };
        let traceback = &traceback;
        self.retrying(|| async move {
            let err = |e| StoreError::db("container_actions_events", e);
            if self.db.is_mysql() {
                // The usual case in one statement: the first event of that name of the
                // action found by (container_uuid, request_id), updated where it is found
                // (an UPDATE with ORDER BY/LIMIT locks the row it changes; SQLite has no
                // such UPDATE). Nothing matched: the transaction below tells which of the
                // two is missing and applies zun's fallback to the newest action. A retry
                // repeats the same SET.
                let (set, mut params) = finish_set(traceback);
                params.extend([Val::Text(container_uuid.into()), Val::Text(request_id.into()), Val::Text(event.into())]);
                let done = self
                    .db
                    .exec(
                        &format!(
                            "UPDATE `container_actions_events` SET {set} WHERE `action_id` = (SELECT `id` FROM \
                             `container_actions` WHERE `container_uuid` = ? AND `request_id` = ? ORDER BY `id` LIMIT 1) \
                             AND `event` = ? ORDER BY `id` LIMIT 1"
                        ),
                        &params,
                    )
                    .await
                    .map_err(err)?;
                if done.rows_affected > 0 {
                    return Ok(());
                }
            }
            let mut tx = self.db.begin().await.map_err(err)?;
            let action_id = find_action(&mut tx, container_uuid, request_id, ctx_has_project_id).await?;
            let rows = tx
                .fetch(
                    &format!(
                        "SELECT `id` FROM `container_actions_events` WHERE `action_id` = ? AND `event` = ? \
                         ORDER BY `id` LIMIT 1{}",
                        tx.for_update()
                    ),
                    &[Val::Int(action_id), Val::Text(event.into())],
                    &[Kind::Int],
                )
                .await
                .map_err(err)?;
            let Some(event_id) = rows.first().and_then(|r| r.first()).and_then(Val::as_i64) else {
                return Err(StoreError::ContainerActionEventNotFound { action_id, event: event.into() });
            };
            let (set, mut params) = finish_set(traceback);
            params.push(Val::Int(event_id));
            tx.exec(&format!("UPDATE `container_actions_events` SET {set} WHERE `id` = ?"), &params).await.map_err(err)?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    /// The containers whose `action` (e.g. `create`) zun-api started under `request_id`:
    /// how a create whose message lost its `container` argument still finds its row.
    pub async fn action_container_uuids(&self, request_id: &str, action: &str) -> Result<Vec<String>> {
        let rows = self
            .retrying(|| async move {
                self.db
                    .fetch(
                        "SELECT `container_uuid` FROM `container_actions` WHERE `request_id` = ? AND `action` = ? LIMIT 2",
                        &[Val::Text(request_id.into()), Val::Text(action.into())],
                        &[Kind::Text],
                    )
                    .await
                    .map_err(|e| StoreError::db("container_actions", e))
            })
            .await?;
        Ok(rows.iter().filter_map(|r| r[0].as_str().map(str::to_string)).collect())
    }

    /// `FinishAction.__exit__` (zun master/18.0.0): `finish_time = now`, and `message='Error'`
    /// when the operation failed, on the action (container_uuid, request_id, action). Exactly
    /// one row must match, else [`StoreError::ActionNotFound`] and nothing is changed.
    pub async fn action_finish(&self, container_uuid: &str, request_id: &str, action: &str, failed: bool) -> Result<()> {
        self.retrying(|| async move {
            let err = |e| StoreError::db("container_actions", e);
            let mut tx = self.db.begin().await.map_err(err)?;
            let ts = now();
            let set_message = if failed { ", `message` = 'Error'" } else { "" };
            let done = tx
                .exec(
                    &format!(
                        "UPDATE `container_actions` SET `finish_time` = ?, `updated_at` = ?{set_message} \
                         WHERE `container_uuid` = ? AND `request_id` = ? AND `action` = ?"
                    ),
                    &[
                        Val::Time(ts),
                        Val::Time(ts),
                        Val::Text(container_uuid.into()),
                        Val::Text(request_id.into()),
                        Val::Text(action.into()),
                    ],
                )
                .await
                .map_err(err)?;
            if done.rows_affected != 1 {
                // Dropping the transaction rolls the update back.
                return Err(StoreError::ActionNotFound {
                    container_uuid: container_uuid.into(),
                    request_id: request_id.into(),
                    action: action.into(),
                    matched: done.rows_affected,
                });
            }
            tx.commit().await.map_err(err)
        })
        .await
    }
}

/// The SET list of a finished event and its parameters: `finish_time` and `updated_at` now,
/// `result` `Success`, or `Error` with the traceback.
fn finish_set(traceback: &Option<String>) -> (&'static str, Vec<Val>) {
    let ts = now();
    match traceback {
        None => ("`finish_time` = ?, `result` = 'Success', `updated_at` = ?", vec![Val::Time(ts), Val::Time(ts)]),
        Some(tb) => (
            "`finish_time` = ?, `result` = 'Error', `traceback` = ?, `updated_at` = ?",
            vec![Val::Time(ts), Val::Text(tb.clone()), Val::Time(ts)],
        ),
    }
}

/// The action id for (container_uuid, request_id), with zun's fallback to the container's
/// newest action when the context has no project_id.
async fn find_action(tx: &mut Tx, container_uuid: &str, request_id: &str, ctx_has_project_id: bool) -> Result<i64> {
    let err = |e| StoreError::db("container_actions", e);
    let rows = tx
        .fetch(
            "SELECT `id` FROM `container_actions` WHERE `container_uuid` = ? AND `request_id` = ? ORDER BY `id` LIMIT 1",
            &[Val::Text(container_uuid.into()), Val::Text(request_id.into())],
            &[Kind::Int],
        )
        .await
        .map_err(err)?;
    if let Some(id) = rows.first().and_then(|r| r.first()).and_then(Val::as_i64) {
        return Ok(id);
    }
    if !ctx_has_project_id {
        let rows = tx
            .fetch(
                "SELECT `id` FROM `container_actions` WHERE `container_uuid` = ? \
                 ORDER BY `created_at` DESC, `id` DESC LIMIT 1",
                &[Val::Text(container_uuid.into())],
                &[Kind::Int],
            )
            .await
            .map_err(err)?;
        if let Some(id) = rows.first().and_then(|r| r.first()).and_then(Val::as_i64) {
            return Ok(id);
        }
    }
    Err(StoreError::ContainerActionNotFound { container_uuid: container_uuid.into(), request_id: request_id.into() })
}
