//! A minimal oslo RPC client (what zun-api's `rpcapi` does), for `zun-compute-rs cast`
//! and the benchmarks: casts, and calls answered on a `reply_<uuid>` queue.
use super::{connect_any, field_table, oslo_properties, AmqpError, AmqpSettings};
use crate::oslo::{self, RequestContext, RpcMessage};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer, ExchangeKind};
use serde_json::{Map, Value};

use std::sync::Arc;
use std::time::Duration;

pub struct RpcClient {
    settings: Arc<AmqpSettings>,
    _conn: Connection,
    ch: Channel,
    reply_q: String,
    replies: tokio::sync::Mutex<Consumer>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Amqp(#[from] AmqpError),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("remote {class}: {message}")]
    Remote { class: String, module: String, message: String },
    #[error("undecodable reply: {0}")]
    BadReply(String),
}

impl RpcClient {
    pub async fn connect(settings: Arc<AmqpSettings>) -> Result<Self, AmqpError> {
        let (conn, _, _) = connect_any(&settings, "client", None).await?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        ch.exchange_declare(
            ShortString::from(settings.exchange.as_str()),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: settings.rabbit.amqp_durable_queues || settings.rabbit.rabbit_quorum_queue,
                auto_delete: settings.rabbit.amqp_auto_delete,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
        let reply_q = format!("reply_{}", uuid::Uuid::new_v4().simple());
        let spec = oslo::topology::reply_queue(&reply_q, &settings.rabbit);
        ch.queue_declare(
            ShortString::from(reply_q.as_str()),
            QueueDeclareOptions { durable: spec.durable, auto_delete: spec.auto_delete, exclusive: spec.exclusive, ..Default::default() },
            field_table(&spec.arguments),
        )
        .await?;
        let replies = ch
            .basic_consume(
                ShortString::from(reply_q.as_str()),
                ShortString::from("reply"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(RpcClient { settings, _conn: conn, ch, reply_q, replies: tokio::sync::Mutex::new(replies) })
    }

    fn message(&self, ctx: &RequestContext, method: &str, args: Map<String, Value>, msg_id: Option<&str>) -> Vec<u8> {
        let m = match msg_id {
            Some(id) => RpcMessage { msg_id: Some(id.to_string()), ..RpcMessage::call(method, args, ctx.clone(), &self.reply_q) },
            None => RpcMessage::cast(method, args, ctx.clone()),
        };
        oslo::encode_envelope(&m.to_map())
    }

    async fn publish(&self, server: Option<&str>, body: &[u8], expiration_ms: Option<u64>) -> Result<(), AmqpError> {
        let rk = match server {
            Some(s) => format!("{}.{s}", self.settings.topic),
            None => self.settings.topic.clone(),
        };
        self.ch
            .basic_publish(
                ShortString::from(self.settings.exchange.as_str()),
                ShortString::from(rk.as_str()),
                BasicPublishOptions::default(),
                body,
                oslo_properties(expiration_ms),
            )
            .await?
            .await?;
        Ok(())
    }

    /// A cast to `<topic>.<server>` (or the shared topic queue).
    pub async fn cast(&self, ctx: &RequestContext, server: Option<&str>, method: &str, args: Map<String, Value>) -> Result<(), AmqpError> {
        let body = self.message(ctx, method, args, None);
        self.publish(server, &body, None).await
    }

    /// A fanout cast (oslo `prepare(fanout=True).cast`): published to the exchange
    /// `<topic>_fanout`, which every server of the topic has declared and bound its own
    /// fanout queue to; each server gets a copy.
    pub async fn fanout_cast(&self, ctx: &RequestContext, method: &str, args: Map<String, Value>) -> Result<(), AmqpError> {
        let body = self.message(ctx, method, args, None);
        let exchange = format!("{}_fanout", self.settings.topic);
        self.ch
            .basic_publish(
                ShortString::from(exchange.as_str()),
                ShortString::from(""),
                BasicPublishOptions::default(),
                &body,
                oslo_properties(None),
            )
            .await?
            .await?;
        Ok(())
    }

    /// A call: waits for the reply with `ending: true` (heartbeats are skipped).
    pub async fn call(
        &self,
        ctx: &RequestContext,
        server: Option<&str>,
        method: &str,
        args: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let body = self.message(ctx, method, args, Some(&msg_id));
        self.publish(server, &body, Some(timeout.as_millis() as u64)).await?;
        let mut replies = self.replies.lock().await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let d = match tokio::time::timeout_at(deadline, replies.next()).await {
                Err(_) => return Err(CallError::Timeout(timeout)),
                Ok(None) => return Err(CallError::BadReply("reply consumer closed".into())),
                Ok(Some(Err(e))) => return Err(CallError::Amqp(e.into())),
                Ok(Some(Ok(d))) => d,
            };
            let _ = d.ack(BasicAckOptions::default()).await;
            let map = oslo::decode_body(&oslo::BodyMeta::oslo_default(), &d.data).map_err(|e| CallError::BadReply(e.to_string()))?;
            let reply = oslo::Reply::from_map(&map).map_err(|e| CallError::BadReply(e.to_string()))?;
            if reply.msg_id != msg_id || !reply.ending {
                continue;
            }
            if let Some(f) = reply.failure {
                let f = oslo::RemoteFailure::from_json_str(&f).map_err(|e| CallError::BadReply(e.to_string()))?;
                return Err(CallError::Remote { class: f.class, module: f.module, message: f.message });
            }
            return Ok(reply.result);
        }
    }
}
