//! The sending side: one connection of its own (as oslo keeps listening and sending
//! apart), its channel in publisher-confirm mode. Replies go to the default exchange,
//! mandatory, and are retried while the broker returns them NO_ROUTE.
use super::{connect_any, AmqpError, AmqpSettings};
use crate::oslo;
use crate::rpc::ReplyTo;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How the broker settled one publish.
#[derive(Debug, PartialEq)]
pub enum Settled {
    Acked,
    /// Basic.Return, e.g. 312 NO_ROUTE when the reply queue is gone.
    Returned {
        code: u16,
        text: String,
    },
    Nacked,
}

pub struct Publisher {
    settings: Arc<AmqpSettings>,
    conn: Mutex<Option<(Connection, Channel)>>,
    /// The broker of the last connection, avoided first when it is lost.
    last_broker: std::sync::atomic::AtomicUsize,
    /// Set when an error dropped the connection (the next connect avoids its broker).
    lost: std::sync::atomic::AtomicBool,
    /// Bumped by every new connection: what `declared` was recorded on.
    generation: std::sync::atomic::AtomicU64,
    /// The notification exchanges/queues/bindings already declared on the current
    /// connection (generation, keys): oslo's `_declared_queues`, which it clears when its
    /// channel changes. Each notification used to declare all three again (three broker
    /// round trips before every publish).
    declared: std::sync::Mutex<(u64, std::collections::HashSet<String>)>,
}

/// oslo's message properties: application/json, utf-8, empty headers, persistent, priority 0.
pub fn oslo_properties(expiration_ms: Option<u64>) -> BasicProperties {
    let p = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_content_encoding(ShortString::from("utf-8"))
        .with_headers(FieldTable::default())
        .with_delivery_mode(2)
        .with_priority(0);
    match expiration_ms {
        Some(ms) => p.with_expiration(ShortString::from(ms.to_string())),
        None => p,
    }
}

impl Publisher {
    pub fn new(settings: Arc<AmqpSettings>) -> Self {
        Publisher {
            settings,
            conn: Mutex::new(None),
            last_broker: std::sync::atomic::AtomicUsize::new(usize::MAX),
            lost: Default::default(),
            generation: Default::default(),
            declared: Default::default(),
        }
    }

    /// The confirm-mode channel, (re)connecting when needed.
    async fn channel(&self) -> Result<Channel, AmqpError> {
        self.channel_gen().await.map(|(ch, _)| ch)
    }

    /// The channel and the generation of its connection.
    async fn channel_gen(&self) -> Result<(Channel, u64), AmqpError> {
        use std::sync::atomic::Ordering;
        let mut guard = self.conn.lock().await;
        if let Some((conn, ch)) = guard.as_ref() {
            if conn.status().connected() && ch.status().connected() {
                return Ok((ch.clone(), self.generation.load(Ordering::Relaxed)));
            }
        }
        // A lost connection fails over at once to another broker (the lost one last).
        let lost = guard.take().is_some() || self.lost.swap(false, Ordering::Relaxed);
        let prev = self.last_broker.load(Ordering::Relaxed);
        let avoid = (lost && prev != usize::MAX).then_some(prev);
        let (conn, addr, idx) = connect_any(&self.settings, "send", avoid).await?;
        self.last_broker.store(idx, Ordering::Relaxed);
        if avoid.is_some() {
            tracing::warn!(broker = %addr.display(), "publisher failed over to another broker");
        }
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *guard = Some((conn, ch.clone()));
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        Ok((ch, generation))
    }

    async fn reset(&self) {
        if self.conn.lock().await.take().is_some() {
            self.lost.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Publishes once and waits for the broker's confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
        mandatory: bool,
    ) -> Result<Settled, AmqpError> {
        // AMQP short strings: a longer name cannot be encoded (and must not reach lapin).
        for name in [exchange, routing_key] {
            if name.len() > 255 {
                return Err(AmqpError::NameTooLong(name.len()));
            }
        }
        let ch = self.channel().await?;
        let res = async {
            let confirm = ch
                .basic_publish(
                    ShortString::from(exchange),
                    ShortString::from(routing_key),
                    BasicPublishOptions { mandatory, immediate: false },
                    body,
                    props,
                )
                .await?
                .await?;
            Ok::<_, lapin::Error>(confirm)
        }
        .await;
        match res {
            Ok(confirm) => {
                if confirm.is_nack() {
                    return Ok(Settled::Nacked);
                }
                match confirm.take_message() {
                    Some(ret) => Ok(Settled::Returned { code: ret.reply_code, text: ret.reply_text.to_string() }),
                    None => Ok(Settled::Acked),
                }
            }
            Err(e) => {
                self.reset().await;
                Err(e.into())
            }
        }
    }

    /// Sends one reply to a caller's `_reply_q`, retrying every 0.25 s while the
    /// queue is missing (NO_ROUTE) or the broker is unreachable, until `deadline`.
    pub async fn send_reply(&self, to: &ReplyTo, reply: &oslo::Reply, deadline: Instant) -> Result<(), AmqpError> {
        use backon::Retryable;
        let body = reply.encode();
        // (why not delivered, whether another attempt can help)
        let attempt = || async {
            match self.publish("", &to.reply_q, &body, oslo_properties(None), true).await {
                Ok(Settled::Acked) => Ok(()),
                Ok(Settled::Returned { code, text }) => Err((format!("returned {code} {text}"), true)),
                Ok(Settled::Nacked) => Err(("nacked".to_string(), true)),
                // A name AMQP cannot carry never becomes deliverable.
                Err(e @ AmqpError::NameTooLong(_)) => Err((e.to_string(), false)),
                Err(e) => Err((e.to_string(), true)),
            }
        };
        let every_quarter_second = backon::ConstantBuilder::default().with_delay(Duration::from_millis(250)).without_max_times();
        attempt
            .retry(every_quarter_second)
            .when(|(_, retryable)| *retryable && Instant::now() < deadline)
            .notify(|(reason, _), _| {
                tracing::debug!(reply_q = %to.reply_q, msg_id = %to.msg_id, reason = %reason, "reply not delivered yet, retrying")
            })
            .await
            .map_err(|(reason, _)| AmqpError::ReplyAbandoned { reply_q: to.reply_q.clone(), reason })
    }

    /// Declares a notification queue `<topic>.<priority>` bound on the control exchange,
    /// as oslo's notifier does before its first send, then publishes.
    pub async fn notify(
        &self,
        exchange: &oslo::ExchangeSpec,
        queue: &oslo::QueueSpec,
        binding: &oslo::Binding,
        body: &[u8],
    ) -> Result<Settled, AmqpError> {
        let (ch, generation) = self.channel_gen().await?;
        let key = format!("{}\0{}\0{}\0{}", exchange.name, queue.name, binding.exchange, binding.routing_key);
        let known = {
            let d = self.declared.lock().unwrap_or_else(|p| p.into_inner());
            d.0 == generation && d.1.contains(&key)
        };
        if known {
            return self.publish(&binding.exchange, &binding.routing_key, body, oslo_properties(None), false).await;
        }
        let declared = async {
            ch.exchange_declare(
                ShortString::from(exchange.name.as_str()),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: exchange.durable, auto_delete: exchange.auto_delete, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
            ch.queue_declare(
                ShortString::from(queue.name.as_str()),
                QueueDeclareOptions {
                    durable: queue.durable,
                    auto_delete: queue.auto_delete,
                    exclusive: queue.exclusive,
                    ..Default::default()
                },
                super::field_table(&queue.arguments),
            )
            .await?;
            ch.queue_bind(
                ShortString::from(binding.queue.as_str()),
                ShortString::from(binding.exchange.as_str()),
                ShortString::from(binding.routing_key.as_str()),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
            Ok::<_, lapin::Error>(())
        }
        .await;
        if let Err(e) = declared {
            self.reset().await;
            return Err(e.into());
        }
        {
            let mut d = self.declared.lock().unwrap_or_else(|p| p.into_inner());
            if d.0 < generation {
                *d = (generation, Default::default());
            }
            if d.0 == generation {
                d.1.insert(key);
            }
        }
        self.publish(&binding.exchange, &binding.routing_key, body, oslo_properties(None), false).await
    }

    pub async fn close(&self) {
        if let Some((conn, _)) = self.conn.lock().await.take() {
            let _ = conn.close(200, ShortString::from("shutdown")).await;
        }
    }
}
