//! Property tests of the oslo codec: arbitrary messages round-trip through the envelope;
//! arbitrary or damaged bodies never panic and fail with typed errors.
use proptest::prelude::*;
use serde_json::{Map, Value};
use zun_compute_rs::oslo::envelope::zlib_compress;
use zun_compute_rs::oslo::pyjson;
use zun_compute_rs::oslo::{decode_body, encode_envelope, BodyMeta, Container, RemoteFailure, Reply, RpcMessage};

/// Strings with ASCII, escapes, BMP and astral characters.
fn any_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::char::range('a', 'z'),
            1 => prop::sample::select(vec!['"', '\\', '\n', '\t', '\u{0}', '\u{1f}', '\u{7f}', '/', '%']),
            1 => prop::char::range('\u{a0}', '\u{d7ff}'),
            1 => prop::char::range('\u{e000}', '\u{fffd}'),
            1 => prop::char::range('\u{10000}', '\u{10ffff}'),
        ],
        0..24,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

fn any_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        "[1-9][0-9]{19,60}".prop_map(|s| Value::Number(s.parse().unwrap())),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), any_number(), any_text().prop_map(Value::String)];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any_text(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn any_message() -> impl Strategy<Value = RpcMessage> {
    (
        "[a-z_]{1,20}",
        prop::collection::vec((any_text(), any_json()), 0..5),
        prop::collection::vec(("[a-z_]{1,12}", any_json()), 0..5),
        any::<bool>(),
    )
        .prop_map(|(method, args, ctx, call)| {
            let args: Map<String, Value> = args.into_iter().collect();
            let mut context = zun_compute_rs::oslo::RequestContext::default();
            for (k, v) in ctx {
                context.set(&k, v);
            }
            if call {
                RpcMessage::call(&method, args, context, "reply_0123")
            } else {
                RpcMessage::cast(&method, args, context)
            }
        })
}

/// Python's json.loads semantics make NaN/Infinity null; floats are re-read through f64.
/// Normalize both sides the same way before comparing.
fn normalized(v: &Value) -> Value {
    pyjson::parse(&pyjson::to_python_json(v)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn requests_round_trip(msg in any_message()) {
        let body = encode_envelope(&msg.to_map());
        prop_assert!(body.is_ascii());
        let decoded = decode_body(&BodyMeta::oslo_default(), &body).unwrap();
        let back = RpcMessage::from_map(decoded).unwrap();
        prop_assert_eq!(Value::Object(back.to_map()), normalized(&Value::Object(msg.to_map())));
        prop_assert_eq!(back.is_call(), msg.is_call());
        // Encoding is deterministic and stable after one round.
        prop_assert_eq!(encode_envelope(&back.to_map()), body);
    }

    #[test]
    fn compressed_requests_round_trip(msg in any_message()) {
        let body = zlib_compress(&encode_envelope(&msg.to_map()));
        let meta = BodyMeta { compression: Some("application/x-gzip".into()), ..BodyMeta::oslo_default() };
        let back = RpcMessage::from_map(decode_body(&meta, &body).unwrap()).unwrap();
        prop_assert_eq!(Value::Object(back.to_map()), normalized(&Value::Object(msg.to_map())));
    }

    #[test]
    fn raw_utf8_is_accepted_too(v in any_json()) {
        // serde_json writes raw UTF-8 (no \u escapes): the server accepts that as well.
        let mut m = Map::new();
        m.insert("method".into(), Value::from("echo"));
        m.insert("args".into(), serde_json::json!({"v": v}));
        let inner = serde_json::to_string(&m).unwrap();
        let body = serde_json::to_vec(&serde_json::json!({"oslo.version": "2.0", "oslo.message": inner})).unwrap();
        let got = decode_body(&BodyMeta::oslo_default(), &body).unwrap();
        prop_assert_eq!(normalized(&Value::Object(got)), normalized(&Value::Object(m)));
    }

    #[test]
    fn replies_and_failures_round_trip(result in any_json(), text in any_text(), fail in any::<bool>()) {
        let reply = if fail {
            Reply::failure("abc", &RemoteFailure::invalid(text.clone()))
        } else {
            Reply::success("abc", result)
        };
        let body = encode_envelope(&reply.to_map());
        let back = Reply::from_map(&decode_body(&BodyMeta::oslo_default(), &body).unwrap()).unwrap();
        prop_assert_eq!(Value::Object(back.to_map()), normalized(&Value::Object(reply.to_map())));
        if fail {
            let f = back.remote_failure().unwrap().unwrap();
            prop_assert_eq!(&f.message, &text);
            prop_assert_eq!(f.code(), Some(400));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), compressed in any::<bool>()) {
        let meta = BodyMeta { compression: compressed.then(|| "zlib".to_string()), ..BodyMeta::oslo_default() };
        let _ = decode_body(&meta, &bytes);
        let _ = decode_body(&BodyMeta::default(), &bytes);
    }

    #[test]
    fn truncated_and_damaged_envelopes_give_typed_errors(msg in any_message(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
        let body = encode_envelope(&msg.to_map());
        let n = cut.index(body.len());
        // A strict prefix of a JSON object is never valid JSON.
        prop_assert!(decode_body(&BodyMeta::oslo_default(), &body[..n]).is_err() || n == 0);
        let mut damaged = body.clone();
        let i = flip.index(damaged.len());
        damaged[i] ^= 0x5a;
        if let Ok(m) = decode_body(&BodyMeta::oslo_default(), &damaged) {
            let _ = RpcMessage::from_map(m);
        }
    }

    #[test]
    fn arbitrary_containers_never_panic(data in prop::collection::vec((prop::sample::select(vec![
            "memory", "cpu", "command", "status", "task_state", "labels", "environment", "restart_policy", "healthcheck",
            "ports", "started_at", "cpuset", "disk", "id", "entrypoint", "exposed_ports", "addresses", "tty", "meta"]), any_json()), 0..8),
        version in prop::sample::select(vec!["1.0", "1.24", "1.33", "1.44", "1.45", "2.0", "x"])) {
        let data: Map<String, Value> = data.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let v = serde_json::json!({"zun_object.name": "Container", "zun_object.namespace": "zun",
            "zun_object.version": version, "zun_object.data": data});
        if let Ok(c) = Container::from_value(&v) {
            let _ = c.validate().map_err(|e| e.to_failure());
            let _ = (c.memory(), c.cpu(), c.command(), c.status(), c.task_state(), c.labels(), c.environment());
            let _ = (c.restart_policy(), c.healthcheck(), c.ports(), c.started_at(), c.cpuset(), c.disk(), c.id());
            prop_assert_eq!(c.to_value(), v);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    /// About 1 MB of arguments, non-ASCII included.
    #[test]
    fn megabyte_bodies_round_trip(chunk in any_text(), n in 40_000usize..50_000) {
        let mut args = Map::new();
        args.insert("blob".into(), Value::String(chunk.repeat(n / chunk.len().max(1) + 1).chars().take(n).collect()));
        args.insert("pad".into(), Value::String("x".repeat(1 << 20)));
        let msg = RpcMessage::cast("container_create", args, Default::default());
        let body = encode_envelope(&msg.to_map());
        prop_assert!(body.len() > 1 << 20);
        let back = RpcMessage::from_map(decode_body(&BodyMeta::oslo_default(), &body).unwrap()).unwrap();
        prop_assert_eq!(back.to_map(), msg.to_map());
    }
}

#[test]
fn deep_nesting_is_a_typed_error_not_a_stack_overflow() {
    let deep = format!("{{\"method\": \"m\", \"args\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(decode_body(&BodyMeta::oslo_default(), deep.as_bytes()).is_err());
}
