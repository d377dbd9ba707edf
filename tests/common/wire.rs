//! An in-process RPC server with a test endpoint, on a vhost of its own.
use super::*;
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zun_compute_rs::admin::{Health, Metrics};
use zun_compute_rs::amqp::{AmqpSettings, Publisher, RpcServer};
use zun_compute_rs::config::Settings;
use zun_compute_rs::rpc::{Dispatcher, Endpoint, MethodFuture, Request, RpcError};

/// A test endpoint: echo, raise, sleep, and a recorder for zun's casts.
#[derive(Default)]
pub struct TestEndpoint {
    pub received: Mutex<Vec<(String, Map<String, Value>)>>,
}

impl Endpoint for TestEndpoint {
    fn submit(&self, req: Request) -> Option<MethodFuture> {
        match req.method.as_str() {
            "echo_args" => Some(Box::pin(async move { Ok(Value::Object(req.args)) })),
            "raise_error" => {
                let class = req.args.get("class").and_then(Value::as_str).unwrap_or("Invalid").to_string();
                let message = req.args.get("message").and_then(Value::as_str).unwrap_or("").to_string();
                let e = match class.as_str() {
                    "Conflict" => RpcError::conflict(message),
                    "Invalid" => RpcError::invalid(message),
                    "ContainerNotFound" => RpcError::container_not_found(&message),
                    _ => RpcError::internal(message),
                };
                Some(Box::pin(async move { Err(e) }))
            }
            "sleep_echo" => {
                let secs = req.args.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                Some(Box::pin(async move {
                    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                    Ok(json!({"slept": secs}))
                }))
            }
            "container_create" | "container_delete" => {
                self.received.lock().unwrap().push((req.method.clone(), req.args));
                Some(Box::pin(async { Ok(Value::Null) }))
            }
            _ => None,
        }
    }
}

pub struct Harness {
    pub vhost: Vhost,
    pub host: String,
    pub endpoint: Arc<TestEndpoint>,
    pub metrics: Arc<Metrics>,
    server: Serving,
    _dir: tempfile::TempDir,
    pub conf: std::path::PathBuf,
}

pub async fn start_server(extra_rabbit: &str) -> Harness {
    let vhost = Vhost::new("zunrs-wire");
    let host = unique("node");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[DEFAULT]\nhost = {host}\ntransport_url = {}\nrpc_response_timeout = 30\n[oslo_messaging_rabbit]\n{extra_rabbit}\n",
        vhost.url()
    );
    let conf = write_conf(dir.path(), "zun.conf", &text);
    let settings = Settings::load(&[&conf], Vec::new()).unwrap();
    let endpoint = Arc::new(TestEndpoint::default());
    let metrics = Arc::new(Metrics::new());
    let server = serve(&settings, endpoint.clone(), metrics.clone()).await;
    Harness { vhost, host, endpoint, metrics, server, _dir: dir, conf }
}

/// An in-process `RpcServer` consuming for `settings`' host, until [`Serving::shutdown`].
pub struct Serving {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a real `RpcServer` (dispatcher, publisher, health) in front of `endpoint` and
/// returns once it consumes.
pub async fn serve(settings: &Settings, endpoint: Arc<dyn Endpoint>, metrics: Arc<Metrics>) -> Serving {
    let amqp = Arc::new(AmqpSettings::from_config(settings).unwrap());
    let publisher = Arc::new(Publisher::new(amqp.clone()));
    let server = Arc::new(RpcServer::new(amqp, Arc::new(Dispatcher::new(endpoint)), publisher, metrics, Arc::new(Health::default())));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server.run(stop_rx, Duration::from_secs(5), Some(ready_tx)));
    tokio::time::timeout(Duration::from_secs(20), ready_rx).await.expect("server consuming in time").unwrap();
    Serving { stop, task }
}

impl Serving {
    /// Asks the server to stop and waits until it has.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(20), self.task).await.expect("server stops").unwrap();
    }
}

impl Harness {
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
