//! The declarations of `oslo::topology` against the frames oslo sent for each
//! `[oslo_messaging_rabbit]` option variant (tests/fixtures/oslo/topology.json).
use serde_json::Value;
use std::path::PathBuf;
use zun_compute_rs::oslo::topology::{
    consume_arguments, fanout_exchange, reply_queue, server_topology, ArgValue, Arguments, Declaration, RabbitOptions,
};

fn topology() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oslo/topology.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn options(v: &Value) -> RabbitOptions {
    let mut o = RabbitOptions::default();
    for (k, val) in v.as_object().unwrap() {
        let s = val.as_str().unwrap();
        let b = s == "true";
        let i = || s.parse::<i32>().unwrap();
        match k.as_str() {
            "amqp_durable_queues" => o.amqp_durable_queues = b,
            "amqp_auto_delete" => o.amqp_auto_delete = b,
            "rabbit_ha_queues" => o.rabbit_ha_queues = b,
            "rabbit_quorum_queue" => o.rabbit_quorum_queue = b,
            "rabbit_quorum_delivery_limit" => o.rabbit_quorum_delivery_limit = i(),
            "rabbit_quorum_max_memory_length" => o.rabbit_quorum_max_memory_length = i(),
            "rabbit_quorum_max_memory_bytes" => o.rabbit_quorum_max_memory_bytes = i(),
            "rabbit_transient_quorum_queue" => o.rabbit_transient_quorum_queue = b,
            "rabbit_transient_queues_ttl" => o.rabbit_transient_queues_ttl = i(),
            "rabbit_qos_prefetch_count" => o.rabbit_qos_prefetch_count = s.parse().unwrap(),
            "enable_cancel_on_failover" => o.enable_cancel_on_failover = b,
            // Not declaration-shaping (or naming only, see queue_manager below).
            "heartbeat_timeout_threshold" | "kombu_compression" | "use_queue_manager" | "hostname" | "processname" => {}
            other => panic!("unknown option {other}"),
        }
    }
    o
}

fn args_of(v: &Value) -> Arguments {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, a)| {
            let val = match a["type"].as_str().unwrap() {
                "I" => ArgValue::I32(a["value"].as_i64().unwrap() as i32),
                "S" => ArgValue::Str(a["value"].as_str().unwrap().into()),
                "t" => ArgValue::Bool(a["value"].as_bool().unwrap()),
                t => panic!("unexpected AMQP type {t}"),
            };
            (k.clone(), val)
        })
        .collect()
}

/// Our declaration as the fixture's frame (the fields the fixture records).
fn frame(d: &Declaration) -> Value {
    use serde_json::json;
    let args = |a: &Arguments| {
        let mut m = serde_json::Map::new();
        for (k, v) in a {
            let (t, v) = match v {
                ArgValue::I32(i) => ("I", json!(i)),
                ArgValue::Str(s) => ("S", json!(s)),
                ArgValue::Bool(b) => ("t", json!(b)),
            };
            m.insert(k.clone(), json!({"type": t, "value": v}));
        }
        Value::Object(m)
    };
    match d {
        Declaration::Qos { prefetch_count } => {
            json!({"method": "Basic.Qos", "args": {"prefetch_size": 0, "prefetch_count": prefetch_count, "global": false}})
        }
        Declaration::Exchange(e) => json!({"method": "Exchange.Declare", "args": {"exchange": e.name, "type": e.kind.as_str(),
            "passive": false, "durable": e.durable, "auto_delete": e.auto_delete, "internal": false, "no_wait": false, "arguments": {}}}),
        Declaration::Queue(q) => json!({"method": "Queue.Declare", "args": {"queue": q.name, "passive": false, "durable": q.durable,
            "exclusive": q.exclusive, "auto_delete": q.auto_delete, "no_wait": false, "arguments": args(&q.arguments)}}),
        Declaration::Bind(b) => json!({"method": "Queue.Bind", "args": {"queue": b.queue, "exchange": b.exchange,
            "routing_key": b.routing_key, "no_wait": false, "arguments": {}}}),
        Declaration::Consume(c) => json!({"method": "Basic.Consume", "args": {"queue": c.queue, "consumer_tag": c.consumer_tag,
            "no_local": false, "no_ack": false, "exclusive": false, "no_wait": false, "arguments": args(&c.arguments)}}),
    }
}

fn is_server_frame(f: &Value) -> bool {
    let q = f["args"]["queue"].as_str().unwrap_or("");
    let m = f["method"].as_str().unwrap();
    !(q.starts_with("reply_") || m == "Confirm.Select" || m == "Queue.Delete" || q.contains(':'))
}

#[test]
fn default_options_match_the_captured_frames_exactly() {
    let topo = topology();
    let server: Vec<Value> = topo["declared_by_server"].as_array().unwrap().iter().filter(|f| is_server_frame(f)).cloned().collect();
    let fanout_q = server.iter().find_map(|f| f["args"]["queue"].as_str().filter(|q| q.contains("_fanout_"))).unwrap();
    let suffix = fanout_q.rsplit('_').next().unwrap();
    let ours = server_topology("zun", "zun-compute", "node1", suffix, &RabbitOptions::default());
    let ours: Vec<Value> = ours.declarations.iter().map(frame).collect();
    assert_eq!(ours, server);

    let client = topo["declared_by_client"].as_array().unwrap();
    let rq = client.iter().find(|f| f["method"] == "Queue.Declare").unwrap();
    let name = rq["args"]["queue"].as_str().unwrap();
    assert_eq!(frame(&Declaration::Queue(reply_queue(name, &RabbitOptions::default()))), *rq);
    let fx = client.iter().find(|f| f["args"]["exchange"] == "zun-compute_fanout").unwrap();
    assert_eq!(frame(&Declaration::Exchange(fanout_exchange("zun-compute", &RabbitOptions::default()))), *fx);
}

#[test]
fn every_option_variant_matches() {
    let topo = topology();
    let variants = topo["option_variants"].as_object().unwrap();
    let mut checked = 0;
    for (name, v) in variants {
        let frames = v["declared (frames, server then client)"].as_array().unwrap();
        if frames.is_empty() {
            continue; // "default": covered by the exact test above.
        }
        let opts = options(&v["oslo_messaging_rabbit_options"]);
        opts.validate().unwrap();
        let ours = server_topology("zun", "zun-compute", "node1", "<uuid-hex>", &opts);
        // The variant lists record each distinct frame once.
        let mut ours_frames: Vec<Value> = Vec::new();
        for f in ours.declarations.iter().map(frame) {
            if !ours_frames.contains(&f) {
                ours_frames.push(f);
            }
        }
        let server: Vec<Value> = frames.iter().filter(|f| is_server_frame(f)).cloned().collect();
        assert_eq!(ours_frames, server, "variant {name}");

        // Client side: the reply queue and its consumer.
        let rq = frames.iter().find(|f| f["method"] == "Queue.Declare" && f["args"]["queue"] == "reply_<uuid-hex>").unwrap();
        let q = reply_queue("reply_<uuid-hex>", &opts);
        assert_eq!(frame(&Declaration::Queue(q)), *rq, "variant {name}: reply queue");
        let rc = frames.iter().find(|f| f["method"] == "Basic.Consume" && f["args"]["queue"] == "reply_<uuid-hex>").unwrap();
        assert_eq!(args_of(&rc["args"]["arguments"]), consume_arguments(&opts), "variant {name}: reply consumer");
        checked += 1;
    }
    assert!(checked >= 12, "{checked} variants checked");
}
