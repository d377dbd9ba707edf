//! RabbitMQ declarations oslo.messaging makes, as pure data (no IO).
//!
//! Another declaration of the same exchange or queue with different flags or arguments
//! closes the channel with 406 PRECONDITION_FAILED, so these must match oslo exactly
//! (`impl_rabbit.py`: `declare_topic_consumer`, `declare_fanout_consumer`,
//! `declare_direct_consumer`, `_get_queue_arguments`, `notify_send`). The `amqp` module
//! turns them into lapin calls; argument types matter (`I` = signed 32-bit, `S` = long
//! string, `t` = bool).
//!
//! Server declaration order (oslo-wire §1): topic exchange + `<topic>` queue + bind, topic
//! exchange again + `<topic>.<server>` queue + bind, fanout exchange + fanout queue + bind,
//! then one consumer per queue in that order. `Basic.Qos` comes first when a prefetch is
//! configured.

/// `[oslo_messaging_rabbit]` options that shape declarations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitOptions {
    pub amqp_durable_queues: bool,
    pub amqp_auto_delete: bool,
    pub rabbit_ha_queues: bool,
    pub rabbit_quorum_queue: bool,
    /// 0 = unset.
    pub rabbit_quorum_delivery_limit: i32,
    /// 0 = unset.
    pub rabbit_quorum_max_memory_length: i32,
    /// 0 = unset.
    pub rabbit_quorum_max_memory_bytes: i32,
    pub rabbit_transient_quorum_queue: bool,
    /// Seconds; `x-expires` on fanout and reply queues, 0 disables. Default 1800.
    pub rabbit_transient_queues_ttl: i32,
    /// 0 = no `Basic.Qos`.
    pub rabbit_qos_prefetch_count: u16,
    pub enable_cancel_on_failover: bool,
    /// Single stream queue `<topic>_fanout` instead of per-process fanout queues.
    pub rabbit_stream_fanout: bool,
}

impl Default for RabbitOptions {
    /// oslo.messaging 18.3.1 defaults.
    fn default() -> Self {
        RabbitOptions {
            amqp_durable_queues: false,
            amqp_auto_delete: false,
            rabbit_ha_queues: false,
            rabbit_quorum_queue: false,
            rabbit_quorum_delivery_limit: 0,
            rabbit_quorum_max_memory_length: 0,
            rabbit_quorum_max_memory_bytes: 0,
            rabbit_transient_quorum_queue: false,
            rabbit_transient_queues_ttl: 1800,
            rabbit_qos_prefetch_count: 0,
            enable_cancel_on_failover: false,
            rabbit_stream_fanout: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// oslo refuses to start with both (a `RuntimeError` in `_get_queue_arguments`).
    #[error("Configuration Error: rabbit_quorum_queue and rabbit_ha_queues both enabled, queue type is quorum or HA (mirrored) not both")]
    QuorumAndHa,
}

impl RabbitOptions {
    /// Durability of the control exchange and topic queues (`amqp_durable_queues or
    /// rabbit_quorum_queue`).
    pub fn durable(&self) -> bool {
        self.amqp_durable_queues || self.rabbit_quorum_queue
    }

    /// Rejects the combinations oslo refuses.
    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.rabbit_ha_queues && (self.rabbit_quorum_queue || self.rabbit_transient_quorum_queue) {
            return Err(TopologyError::QuorumAndHa);
        }
        Ok(())
    }
}

/// An AMQP field-table value, typed as oslo (py-amqp) encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgValue {
    /// Type `I`: signed 32-bit integer.
    I32(i32),
    /// Type `S`: long string.
    Str(String),
    /// Type `t`: boolean.
    Bool(bool),
}

pub type Arguments = Vec<(String, ArgValue)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Topic,
    Fanout,
    Direct,
}

impl ExchangeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ExchangeKind::Topic => "topic",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Direct => "direct",
        }
    }
}

/// Exchange.Declare (passive=false, internal=false, no arguments, no-wait=false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSpec {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
}

/// Queue.Declare (passive=false, no-wait=false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive: bool,
    pub arguments: Arguments,
}

/// Queue.Bind (no arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub queue: String,
    pub exchange: String,
    pub routing_key: String,
}

/// Basic.Consume on a queue (no_ack=false, exclusive=false, no_local=false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeSpec {
    pub queue: String,
    /// oslo's tags are decimal counters per connection: "1", "2", "3".
    pub consumer_tag: String,
    pub arguments: Arguments,
}

/// One declaration step, in the order oslo sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declaration {
    /// Basic.Qos(prefetch_size=0, prefetch_count, global=false).
    Qos {
        prefetch_count: u16,
    },
    Exchange(ExchangeSpec),
    Queue(QueueSpec),
    Bind(Binding),
    Consume(ConsumeSpec),
}

/// Everything an RPC server declares on its listen channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTopology {
    pub declarations: Vec<Declaration>,
    /// The per-process fanout queue, deleted (Queue.Delete) on a clean stop (not with
    /// stream fanout, which is shared).
    pub fanout_queue: String,
    pub delete_fanout_queue_on_stop: bool,
}

impl ServerTopology {
    pub fn exchanges(&self) -> impl Iterator<Item = &ExchangeSpec> {
        self.declarations.iter().filter_map(|d| if let Declaration::Exchange(e) = d { Some(e) } else { None })
    }
    pub fn queues(&self) -> impl Iterator<Item = &QueueSpec> {
        self.declarations.iter().filter_map(|d| if let Declaration::Queue(q) = d { Some(q) } else { None })
    }
    pub fn consumers(&self) -> impl Iterator<Item = &ConsumeSpec> {
        self.declarations.iter().filter_map(|d| if let Declaration::Consume(c) = d { Some(c) } else { None })
    }
}

/// `_get_queue_arguments`: HA, then quorum type and limits, then `x-expires`; stream
/// fanout replaces everything with `x-queue-type: stream` and `x-max-age`.
pub fn queue_arguments(opts: &RabbitOptions, quorum: bool, ttl_secs: i32, stream: bool) -> Arguments {
    if stream {
        let mut a = vec![("x-queue-type".to_string(), ArgValue::Str("stream".into()))];
        if ttl_secs > 0 {
            a.push(("x-max-age".into(), ArgValue::Str(format!("{ttl_secs}s"))));
        }
        return a;
    }
    let mut a = Vec::new();
    if opts.rabbit_ha_queues {
        a.push(("x-ha-policy".to_string(), ArgValue::Str("all".into())));
    }
    if quorum {
        a.push(("x-queue-type".into(), ArgValue::Str("quorum".into())));
        if opts.rabbit_quorum_delivery_limit != 0 {
            a.push(("x-delivery-limit".into(), ArgValue::I32(opts.rabbit_quorum_delivery_limit)));
        }
        if opts.rabbit_quorum_max_memory_length != 0 {
            a.push(("x-max-in-memory-length".into(), ArgValue::I32(opts.rabbit_quorum_max_memory_length)));
        }
        if opts.rabbit_quorum_max_memory_bytes != 0 {
            a.push(("x-max-in-memory-bytes".into(), ArgValue::I32(opts.rabbit_quorum_max_memory_bytes)));
        }
    }
    if ttl_secs > 0 {
        a.push(("x-expires".into(), ArgValue::I32(ttl_secs.saturating_mul(1000))));
    }
    a
}

/// Basic.Consume arguments: `x-cancel-on-ha-failover: true` when enabled.
pub fn consume_arguments(opts: &RabbitOptions) -> Arguments {
    if opts.enable_cancel_on_failover {
        vec![("x-cancel-on-ha-failover".to_string(), ArgValue::Bool(true))]
    } else {
        Vec::new()
    }
}

/// The control exchange (`zun`), as servers, RPC clients and notifiers declare it.
pub fn control_exchange(exchange: &str, opts: &RabbitOptions) -> ExchangeSpec {
    ExchangeSpec { name: exchange.into(), kind: ExchangeKind::Topic, durable: opts.durable(), auto_delete: opts.amqp_auto_delete }
}

/// A topic queue (`<topic>` or `<topic>.<server>`).
pub fn topic_queue(name: &str, opts: &RabbitOptions) -> QueueSpec {
    QueueSpec {
        name: name.into(),
        durable: opts.durable(),
        auto_delete: opts.amqp_auto_delete,
        exclusive: false,
        arguments: queue_arguments(opts, opts.rabbit_quorum_queue, 0, false),
    }
}

/// `<topic>_fanout`, the fanout exchange (servers, and clients before a fanout cast).
pub fn fanout_exchange(topic: &str, opts: &RabbitOptions) -> ExchangeSpec {
    ExchangeSpec {
        name: format!("{topic}_fanout"),
        kind: ExchangeKind::Fanout,
        durable: opts.rabbit_transient_quorum_queue || opts.rabbit_stream_fanout,
        auto_delete: true,
    }
}

/// The fanout queue name: `<topic>_fanout_<suffix>` (`<topic>_fanout` for streams).
pub fn fanout_queue_name(topic: &str, fanout_suffix_hex: &str, opts: &RabbitOptions) -> String {
    if opts.rabbit_stream_fanout {
        format!("{topic}_fanout")
    } else {
        format!("{topic}_fanout_{fanout_suffix_hex}")
    }
}

/// The per-process fanout queue.
pub fn fanout_queue(topic: &str, fanout_suffix_hex: &str, opts: &RabbitOptions) -> QueueSpec {
    QueueSpec {
        name: fanout_queue_name(topic, fanout_suffix_hex, opts),
        durable: opts.rabbit_transient_quorum_queue || opts.rabbit_stream_fanout,
        auto_delete: false,
        exclusive: false,
        arguments: queue_arguments(opts, opts.rabbit_transient_quorum_queue, opts.rabbit_transient_queues_ttl, opts.rabbit_stream_fanout),
    }
}

/// A caller's reply queue `reply_<uuid hex>` (reached through the default exchange).
pub fn reply_queue(name: &str, opts: &RabbitOptions) -> QueueSpec {
    QueueSpec {
        name: name.into(),
        durable: opts.rabbit_transient_quorum_queue,
        auto_delete: false,
        exclusive: false,
        arguments: queue_arguments(opts, opts.rabbit_transient_quorum_queue, opts.rabbit_transient_queues_ttl, false),
    }
}

/// A fresh reply queue name, `reply_<uuid4 hex>`.
pub fn new_reply_queue_name() -> String {
    format!("reply_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh fanout queue suffix (uuid4 hex).
pub fn new_fanout_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The queue a notifier declares before publishing `<topic>.<priority>` (e.g.
/// `notifications.info`) on `exchange`: named and bound by the routing key, flags of
/// the exchange, HA/quorum arguments but never `x-expires`.
pub fn notification_queue(exchange: &str, topic: &str, priority: &str, opts: &RabbitOptions) -> (ExchangeSpec, QueueSpec, Binding) {
    let key = format!("{topic}.{priority}");
    let ex = control_exchange(exchange, opts);
    let q = QueueSpec {
        name: key.clone(),
        durable: ex.durable,
        auto_delete: ex.auto_delete,
        exclusive: false,
        arguments: queue_arguments(opts, opts.rabbit_quorum_queue, 0, false),
    };
    let b = Binding { queue: key.clone(), exchange: exchange.into(), routing_key: key };
    (ex, q, b)
}

/// The RPC server's declarations for `topic` on `exchange` as server `server`.
pub fn server_topology(exchange: &str, topic: &str, server: &str, fanout_suffix_hex: &str, opts: &RabbitOptions) -> ServerTopology {
    let mut d = Vec::new();
    if opts.rabbit_qos_prefetch_count > 0 {
        d.push(Declaration::Qos { prefetch_count: opts.rabbit_qos_prefetch_count });
    }
    let server_topic = format!("{topic}.{server}");
    for name in [topic, server_topic.as_str()] {
        d.push(Declaration::Exchange(control_exchange(exchange, opts)));
        d.push(Declaration::Queue(topic_queue(name, opts)));
        d.push(Declaration::Bind(Binding { queue: name.into(), exchange: exchange.into(), routing_key: name.into() }));
    }
    let fx = fanout_exchange(topic, opts);
    let fq = fanout_queue(topic, fanout_suffix_hex, opts);
    d.push(Declaration::Exchange(fx.clone()));
    d.push(Declaration::Queue(fq.clone()));
    d.push(Declaration::Bind(Binding { queue: fq.name.clone(), exchange: fx.name, routing_key: topic.into() }));
    let consume = consume_arguments(opts);
    for (i, q) in [topic, server_topic.as_str(), fq.name.as_str()].into_iter().enumerate() {
        let arguments = if opts.rabbit_stream_fanout && i == 2 {
            vec![("x-stream-offset".to_string(), ArgValue::Str("last".into()))]
        } else {
            consume.clone()
        };
        d.push(Declaration::Consume(ConsumeSpec { queue: q.into(), consumer_tag: (i + 1).to_string(), arguments }));
    }
    ServerTopology { declarations: d, fanout_queue: fq.name, delete_fanout_queue_on_stop: !opts.rabbit_stream_fanout }
}

/// Routing of an RPC publish: exchange and routing key (oslo-wire §1 "Routing").
pub fn rpc_routing(exchange: &str, topic: &str, server: Option<&str>, fanout: bool) -> (String, String) {
    if fanout {
        (format!("{topic}_fanout"), String::new())
    } else {
        match server {
            Some(s) => (exchange.into(), format!("{topic}.{s}")),
            None => (exchange.into(), topic.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_topology() {
        let t = server_topology("zun", "zun-compute", "node1", "abc", &RabbitOptions::default());
        let names: Vec<_> = t.queues().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["zun-compute", "zun-compute.node1", "zun-compute_fanout_abc"]);
        assert_eq!(t.declarations.len(), 12);
        assert_eq!(t.queues().nth(2).unwrap().arguments, vec![("x-expires".to_string(), ArgValue::I32(1_800_000))]);
        assert_eq!(t.consumers().map(|c| c.consumer_tag.as_str()).collect::<Vec<_>>(), ["1", "2", "3"]);
    }

    #[test]
    fn ha_with_quorum_is_refused() {
        let o = RabbitOptions { rabbit_ha_queues: true, rabbit_quorum_queue: true, ..Default::default() };
        assert_eq!(o.validate(), Err(TopologyError::QuorumAndHa));
    }
}
