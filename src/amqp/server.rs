//! The RPC server: declares oslo's topology for `<topic>` / `<topic>.<server>` / the fanout
//! exchange, consumes the three queues, and settles every delivery once its outcome is
//! known (after the method finished and its reply was confirmed): at-least-once, where
//! oslo acknowledges before running.
//!
//! The connection is supervised: on any broker error it reconnects (next host of
//! `transport_url`, exponential backoff with jitter), declares the topology again and
//! resumes consuming.
use super::{connect_any, field_table, AmqpError, AmqpSettings, Publisher};
use crate::admin::{Health, Metrics};
use crate::oslo;
use crate::rpc::dedup::Settlement;
use crate::rpc::{Dispatcher, Disposition, ReplyTo, RpcError, Running};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::Acker;
use lapin::{Channel, ExchangeKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Counts deliveries whose handling has not finished yet.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }
    async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                return self.count.load(Ordering::SeqCst) == 0;
            }
        }
    }
}

struct InFlightGuard(Arc<InFlight>);
impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

pub struct RpcServer {
    settings: Arc<AmqpSettings>,
    dispatcher: Arc<Dispatcher>,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    fanout_queue: String,
    in_flight: Arc<InFlight>,
    /// Consuming waits until this turns true (connection and declarations do not).
    gate: Option<watch::Receiver<bool>>,
}

impl RpcServer {
    pub fn new(
        settings: Arc<AmqpSettings>,
        dispatcher: Arc<Dispatcher>,
        publisher: Arc<Publisher>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        let fanout_queue = oslo::topology::fanout_queue_name(&settings.topic, &oslo::topology::new_fanout_suffix(), &settings.rabbit);
        RpcServer { settings, dispatcher, publisher, metrics, health, fanout_queue, in_flight: Arc::new(InFlight::default()), gate: None }
    }

    /// The server connects and declares its topology at once but starts consuming only
    /// once `gate` turns true: the worker opens it after recovery, so the broker
    /// connection's round trips overlap start-up work while nothing is taken from the
    /// queues before the host's half-done operations are settled.
    pub fn with_consume_gate(mut self, gate: watch::Receiver<bool>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Consumes until `stop` turns true, then stops consuming, waits up to `drain` for
    /// the deliveries in hand to finish, deletes the fanout queue and disconnects.
    /// `ready` is sent once the first time the topology is declared and consuming.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>, drain: Duration, ready: Option<tokio::sync::oneshot::Sender<()>>) {
        let mut backoff = self.settings.backoff();
        let mut ready = ready;
        // The broker of the session that just failed: the next connection avoids it.
        let mut avoid: Option<usize> = None;
        // Sessions in a row that connected but never consumed (the next one waits a little).
        let mut quick: u32 = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            let mut used = None;
            let mut consumed = false;
            match self.session(&mut stop, drain, &mut ready, avoid, &mut used, &mut consumed).await {
                Ok(()) => return,
                Err(e) => {
                    Health::set(&self.health.broker_consuming, false);
                    self.metrics.amqp_reconnects.inc();
                    let wait = if matches!(e, AmqpError::Connect { .. }) {
                        // Every broker refused: only now back off (exponential, jitter).
                        avoid = None;
                        backoff.next().unwrap_or(self.settings.retry_max)
                    } else {
                        backoff = self.settings.backoff();
                        avoid = used;
                        if consumed {
                            quick = 0;
                        }
                        let w = self.settings.quick_retry(quick);
                        quick = quick.saturating_add(1);
                        w
                    };
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "RPC server lost the broker; failing over");
                    if !wait.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        stop: &mut watch::Receiver<bool>,
        drain: Duration,
        ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
        avoid: Option<usize>,
        used: &mut Option<usize>,
        consumed: &mut bool,
    ) -> Result<(), AmqpError> {
        let (conn, addr, idx) = connect_any(&self.settings, "listen", avoid).await?;
        *used = Some(idx);
        let ch = conn.create_channel().await?;
        let specs = self.declare(&ch).await?;
        ch.basic_qos(self.settings.prefetch, BasicQosOptions::default()).await?;
        if let Some(gate) = &self.gate {
            let mut gate = gate.clone();
            // Whether to go on to consume: the gate opened (not: the worker gave up
            // starting and dropped it, or a stop came first).
            let go = tokio::select! {
                open = async { gate.wait_for(|v| *v).await.is_ok() } => open,
                _ = async { stop.wait_for(|v| *v).await.is_ok() } => false,
            };
            if !go {
                self.close_session(&ch, &conn).await;
                return Ok(());
            }
        }
        let queues: Vec<String> = specs.iter().map(|c| c.queue.clone()).collect();
        let mut consumers = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let c = ch
                .basic_consume(
                    ShortString::from(spec.queue.as_str()),
                    ShortString::from(spec.consumer_tag.as_str()),
                    BasicConsumeOptions::default(),
                    field_table(&spec.arguments),
                )
                .await?;
            consumers.push(c.map(move |d| (i, d)));
        }
        Health::set(&self.health.broker_consuming, true);
        *consumed = true;
        tracing::info!(broker = %addr.display(), queues = ?queues, prefetch = self.settings.prefetch, "consuming");
        if let Some(tx) = ready.take() {
            let _ = tx.send(());
        }
        let mut merged = futures_util::stream::select_all(consumers);
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                item = merged.next() => match item {
                    Some((_, Ok(delivery))) => self.on_delivery(delivery),
                    Some((i, Err(e))) => {
                        tracing::warn!(queue = %queues[i], error = %e, "consumer error");
                        return Err(e.into());
                    }
                    None => return Err(AmqpError::ConsumerCancelled(queues.join(","))),
                },
            }
        }
        // Graceful stop: no new deliveries; what we hold finishes or goes back.
        Health::set(&self.health.broker_consuming, false);
        for spec in &specs {
            let _ = ch.basic_cancel(ShortString::from(spec.consumer_tag.as_str()), BasicCancelOptions::default()).await;
        }
        let drained = self.in_flight.wait_idle(Instant::now() + drain).await;
        if !drained {
            tracing::warn!(
                left = self.in_flight.count.load(Ordering::SeqCst),
                "drain time over; unacknowledged deliveries return to their queues"
            );
        }
        self.close_session(&ch, &conn).await;
        Ok(())
    }

    /// The fanout queue goes (it would otherwise outlive us until its expiry), then the
    /// connection.
    async fn close_session(&self, ch: &Channel, conn: &lapin::Connection) {
        let _ = ch.queue_delete(ShortString::from(self.fanout_queue.as_str()), QueueDeleteOptions::default()).await;
        let _ = conn.close(200, ShortString::from("zun-compute-rs stopping")).await;
    }

    /// Declares oslo's server topology in oslo's order; returns what to consume.
    async fn declare(&self, ch: &Channel) -> Result<Vec<oslo::topology::ConsumeSpec>, AmqpError> {
        use oslo::topology::Declaration;
        let s = &self.settings;
        let suffix = self.fanout_queue.rsplit('_').next().unwrap_or_default();
        let topo = oslo::topology::server_topology(&s.exchange, &s.topic, &s.server, suffix, &s.rabbit);
        let mut consume = Vec::new();
        for step in topo.declarations {
            match step {
                // Our own prefetch is set on the channel before consuming.
                Declaration::Qos { .. } => {}
                Declaration::Exchange(ex) => {
                    ch.exchange_declare(
                        ShortString::from(ex.name.as_str()),
                        exchange_kind(ex.kind),
                        ExchangeDeclareOptions { durable: ex.durable, auto_delete: ex.auto_delete, ..Default::default() },
                        FieldTable::default(),
                    )
                    .await?
                }
                Declaration::Queue(q) => {
                    ch.queue_declare(
                        ShortString::from(q.name.as_str()),
                        QueueDeclareOptions {
                            durable: q.durable,
                            auto_delete: q.auto_delete,
                            exclusive: q.exclusive,
                            ..Default::default()
                        },
                        field_table(&q.arguments),
                    )
                    .await?;
                }
                Declaration::Bind(b) => {
                    ch.queue_bind(
                        ShortString::from(b.queue.as_str()),
                        ShortString::from(b.exchange.as_str()),
                        ShortString::from(b.routing_key.as_str()),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?
                }
                Declaration::Consume(c) => consume.push(c),
            }
        }
        Ok(consume)
    }

    /// Runs in arrival order: decode and submit synchronously, settle in a task.
    fn on_delivery(&self, delivery: Delivery) {
        let props = &delivery.properties;
        let compression = props.headers().as_ref().and_then(|h| match h.inner().get("compression") {
            Some(AMQPValue::LongString(s)) => Some(s.to_string()),
            Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
            _ => None,
        });
        let meta = oslo::BodyMeta {
            content_type: props.content_type().as_ref().map(|s| s.to_string()),
            content_encoding: props.content_encoding().as_ref().map(|s| s.to_string()),
            compression,
        };
        let expiration_ms = props.expiration().as_ref().and_then(|e| e.as_str().parse::<u64>().ok());
        let disposition = self.dispatcher.accept(&meta, &delivery.data, delivery.redelivered);
        let guard = self.in_flight.enter();
        let publisher = self.publisher.clone();
        let metrics = self.metrics.clone();
        let dispatcher = self.dispatcher.clone();
        let reply_budget = match expiration_ms {
            Some(ms) => Duration::from_millis(ms).min(self.settings.reply_retry),
            None => self.settings.reply_retry,
        };
        let acker = delivery.acker;
        let early_ack = self.settings.early_ack_after;
        tokio::spawn(async move {
            // Whatever goes wrong while running, replying or settling, the delivery is
            // settled: a panic on this path rejects it as poison (a second settlement of
            // an acker already used is a no-op), so it can never pile up unacknowledged.
            use futures_util::FutureExt;
            let spare = acker.clone();
            let settled = std::panic::AssertUnwindSafe(settle(
                disposition,
                acker,
                publisher,
                metrics.clone(),
                dispatcher.clone(),
                reply_budget,
                early_ack,
            ))
            .catch_unwind()
            .await;
            if settled.is_err() {
                tracing::error!("panic while settling a delivery; rejecting it as poison");
                metrics.message(crate::rpc::UNKNOWN_METHOD, "rejected");
                let _ = spare.reject(BasicRejectOptions { requeue: false }).await;
            }
            drop(guard);
        });
    }
}

fn exchange_kind(k: oslo::topology::ExchangeKind) -> ExchangeKind {
    match k {
        oslo::topology::ExchangeKind::Topic => ExchangeKind::Topic,
        oslo::topology::ExchangeKind::Fanout => ExchangeKind::Fanout,
        oslo::topology::ExchangeKind::Direct => ExchangeKind::Direct,
    }
}

async fn settle(
    disposition: Disposition,
    acker: Acker,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    dispatcher: Arc<Dispatcher>,
    reply_budget: Duration,
    early_ack: Option<Duration>,
) {
    match disposition {
        Disposition::Reject { error, reply_to, failure } => {
            metrics.message("<undecodable>", "rejected");
            tracing::warn!(error = %error, replied = reply_to.is_some(), "rejecting undecodable message");
            if let (Some(to), Some(f)) = (reply_to, failure) {
                let reply = oslo::Reply::failure(&to.msg_id, &f);
                if let Err(e) = publisher.send_reply(&to, &reply, Instant::now() + reply_budget).await {
                    tracing::warn!(error = %e, "failure reply for an undecodable message was not delivered");
                }
            }
            let _ = acker.reject(BasicRejectOptions { requeue: false }).await;
        }
        Disposition::Duplicate { unique_id } => {
            metrics.message("<duplicate>", "duplicate");
            tracing::info!(unique_id = %unique_id, "dropping duplicate message");
            let _ = acker.ack(BasicAckOptions::default()).await;
        }
        Disposition::Held { unique_id, held } => {
            tracing::info!(unique_id = %unique_id, "a copy of a message that still runs: held until the first copy settles");
            let how = held.settlement().await;
            tracing::info!(unique_id = %unique_id, settled = ?how, "held copy settled like its first copy");
            match how {
                Settlement::Acked => {
                    metrics.message("<duplicate>", "duplicate");
                    let _ = acker.ack(BasicAckOptions::default()).await;
                }
                Settlement::Rejected => {
                    metrics.message("<duplicate>", "rejected");
                    let _ = acker.reject(BasicRejectOptions { requeue: false }).await;
                }
                Settlement::Requeued => {
                    metrics.message("<duplicate>", "requeued");
                    let _ = acker.nack(BasicNackOptions { requeue: true, multiple: false }).await;
                }
            }
        }
        Disposition::Run(run) => run_and_settle(run, acker, publisher, metrics, dispatcher, reply_budget, early_ack).await,
    }
}

async fn run_and_settle(
    run: Running,
    acker: Acker,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    dispatcher: Arc<Dispatcher>,
    reply_budget: Duration,
    early_ack: Option<Duration>,
) {
    let Running { method, label, request_id, reply_to, heartbeat, unique_id, future } = run;
    // However this ends, copies held for this message follow its settlement; after a
    // panic on the way (the caller then rejects the delivery) they are rejected too.
    let mut held = HeldCopies { dispatcher: dispatcher.clone(), unique_id: unique_id.clone(), how: Settlement::Rejected };
    metrics.message(label, "received");
    let started = Instant::now();
    // A method that panics must not leave its delivery unsettled (it would come back at
    // every reconnection): it is answered with an error and rejected as poison.
    let future = async move {
        use futures_util::FutureExt;
        std::panic::AssertUnwindSafe(future).catch_unwind().await.unwrap_or(Err(RpcError::Panicked))
    };
    let future: crate::rpc::MethodFuture = match (&reply_to, heartbeat) {
        (Some(to), Some(period)) => {
            let to = to.clone();
            let publisher = publisher.clone();
            Box::pin(async move { with_heartbeats(Box::pin(future), &to, period, &publisher).await })
        }
        _ => Box::pin(future),
    };
    let req = request_id.as_deref().unwrap_or("-");
    // The broker closes a channel that holds a delivery past its consumer_timeout, and
    // every other delivery on that channel goes back to the queue with it. Before that
    // happens, a long operation's delivery is acknowledged: from then on a crash is
    // covered by start-up recovery (the row's task_state), not by redelivery.
    let mut acker = Some(acker);
    let result = match early_ack {
        None => future.await,
        Some(after) => {
            tokio::pin!(future);
            tokio::select! {
                r = &mut future => r,
                _ = tokio::time::sleep(after) => {
                    tracing::warn!(method = %method, request_id = %req, running_s = after.as_secs(),
                        "operation still running: acknowledged before the broker's consumer_timeout");
                    metrics.message(label, "acked_early");
                    if let Some(a) = acker.take() {
                        let _ = a.ack(BasicAckOptions::default()).await;
                    }
                    held.how = Settlement::Acked;
                    if let Some(uid) = &unique_id {
                        dispatcher.settled(uid, Settlement::Acked);
                    }
                    future.await
                }
            }
        }
    };
    let poison = matches!(result, Err(RpcError::Panicked));
    let elapsed = started.elapsed().as_secs_f64();
    let Some(acker) = acker else {
        // Acknowledged early: only the reply (for a call) is left to send.
        metrics.operation(label, result.is_ok(), elapsed);
        match &result {
            Err(RpcError::Abandoned) => tracing::error!(method = %method, request_id = %req,
                "acknowledged early, then never started before the stop: start-up recovery must finish it"),
            Err(e) => tracing::info!(method = %method, request_id = %req, error = %e, "method failed"),
            Ok(_) => {}
        }
        if let Some(to) = &reply_to {
            let reply = match result {
                Ok(v) => oslo::Reply::success(&to.msg_id, v),
                Err(e) => oslo::Reply::failure(&to.msg_id, &e.to_failure()),
            };
            if let Err(e) = publisher.send_reply(to, &reply, Instant::now() + reply_budget).await {
                tracing::warn!(method = %method, request_id = %req, error = %e, "reply not delivered");
            }
        }
        return;
    };
    if let Err(RpcError::Abandoned) = &result {
        // Not started (shutting down): back to the queue for this or another worker.
        held.how = Settlement::Requeued;
        metrics.message(label, "requeued");
        tracing::info!(method = %method, request_id = %req, "not started before the stop; requeued");
        let _ = acker.nack(BasicNackOptions { requeue: true, multiple: false }).await;
        return;
    }
    metrics.operation(label, result.is_ok(), elapsed);
    match &result {
        Ok(_) => tracing::debug!(method = %method, request_id = %req, elapsed_ms = (elapsed * 1000.0) as u64, "done"),
        Err(e) => tracing::info!(method = %method, request_id = %req, error = %e, "method failed"),
    }
    if let Some(to) = &reply_to {
        let reply = match result {
            Ok(v) => oslo::Reply::success(&to.msg_id, v),
            Err(e) => oslo::Reply::failure(&to.msg_id, &e.to_failure()),
        };
        if let Err(e) = publisher.send_reply(to, &reply, Instant::now() + reply_budget).await {
            tracing::warn!(method = %method, request_id = %req, error = %e, "reply not delivered");
        }
    }
    if poison {
        // Dead-lettered (when the queue has a dead-letter exchange), never redelivered.
        tracing::error!(method = %method, request_id = %req, "the method panicked; rejecting the message as poison");
        metrics.message(label, "rejected");
        let _ = acker.reject(BasicRejectOptions { requeue: false }).await;
        return;
    }
    metrics.message(label, "acked");
    let _ = acker.ack(BasicAckOptions::default()).await;
    held.how = Settlement::Acked;
}

/// Settles the copies held for one message when its first copy is settled (on drop,
/// so a panic on the way settles them too: as rejected, like the delivery itself).
struct HeldCopies {
    dispatcher: Arc<Dispatcher>,
    unique_id: Option<String>,
    how: Settlement,
}

impl Drop for HeldCopies {
    fn drop(&mut self) {
        if let Some(uid) = self.unique_id.take() {
            self.dispatcher.settled(&uid, self.how);
        }
    }
}

/// oslo's call monitor: `ending: false` replies every `period` while the method runs.
async fn with_heartbeats(
    future: crate::rpc::MethodFuture,
    to: &ReplyTo,
    period: Duration,
    publisher: &Publisher,
) -> crate::rpc::MethodResult {
    tokio::pin!(future);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            r = &mut future => return r,
            _ = tick.tick() => {
                let hb = oslo::Reply::heartbeat(&to.msg_id);
                if let Err(e) = publisher.send_reply(to, &hb, Instant::now() + period).await {
                    tracing::debug!(error = %e, "call-monitor heartbeat not delivered");
                }
            }
        }
    }
}
