//! The compute endpoint: which method runs how (locked in the executor, or inline),
//! and the services every operation uses.
use super::executor::{Executor, ExecutorError};
use super::ops;
use crate::admin::Metrics;
use crate::config::Settings;
use crate::docker::DockerClient;
use crate::events::Notifier;
use crate::rpc::{Endpoint, MethodFuture, Request, RpcError};
use crate::store::Store;
use serde_json::Value;
use std::sync::Arc;

/// What operations work with.
pub struct Services {
    pub settings: Arc<Settings>,
    /// What the operations take from `settings`, derived once at start.
    pub conf: super::ComputeSettings,
    pub store: Arc<Store>,
    pub docker: Arc<DockerClient>,
    pub notifier: Arc<Notifier>,
    pub metrics: Arc<Metrics>,
    /// `[DEFAULT] host`.
    pub host: String,
    /// zun's `zun-compute_resources` lock: claims and usage updates one at a time.
    pub claims: tokio::sync::Mutex<()>,
    /// What `docker info` told us at start (disk quota support, ...).
    pub disk_quota_supported: bool,
    /// The service's Keystone session (`[keystone_auth]`); `None` when standalone.
    pub keystone: Option<crate::openstack::Session>,
    /// Placement (`[placement_client]`); `None` when standalone.
    pub placement: Option<Arc<crate::openstack::placement::Placement>>,
    /// The kuryr network driver, when `[network] driver = kuryr` and Keystone is configured.
    pub kuryr: Option<Arc<super::network::Kuryr>>,
    /// Glance (`[glance_client]`), for `image_driver = glance`, `image_search` and
    /// `container_commit`; `None` when standalone.
    pub glance: Option<Arc<crate::openstack::glance::Glance>>,
}

impl Services {
    /// Services with no OpenStack (standalone: no Keystone, Placement, kuryr or Glance) and
    /// no disk quota; set those fields afterwards when they are configured.
    pub fn new(
        settings: Arc<Settings>,
        store: Arc<Store>,
        docker: Arc<DockerClient>,
        notifier: Arc<Notifier>,
        metrics: Arc<Metrics>,
        host: String,
    ) -> Self {
        Services {
            conf: super::ComputeSettings::from_settings(&settings),
            settings,
            store,
            docker,
            notifier,
            metrics,
            host,
            claims: tokio::sync::Mutex::new(()),
            disk_quota_supported: false,
            keystone: None,
            placement: None,
            kuryr: None,
            glance: None,
        }
    }
}

/// How zun-compute runs a method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// A cast under the `zun-<uuid>` lock: serialized per container, in arrival order.
    Locked,
    /// Runs at once, without the lock (calls, image casts).
    Inline,
}

/// The method table of zun's compute RPC API (master and queens).
pub fn method_mode(method: &str) -> Option<Mode> {
    use Mode::*;
    Some(match method {
        "container_create" | "container_delete" | "container_start" | "container_stop" | "container_reboot"
        | "container_rebuild" | "container_pause" | "container_unpause" | "container_kill" | "resize_container"
        | "add_security_group" | "remove_security_group" | "network_attach" | "network_detach" | "capsule_create"
        // A call, but it deletes a capsule: under the capsule's lock like container_delete.
        | "capsule_delete"
        // A call, but it pauses, commits and unpauses: zun holds the container's lock.
        | "container_commit" => Locked,
        "container_show" | "container_logs" | "container_exec" | "container_exec_resize" | "container_update"
        | "container_attach" | "container_resize" | "container_top" | "container_get_archive"
        | "container_put_archive" | "container_stats" | "image_pull" | "image_delete"
        | "image_search" | "network_create" | "network_delete" => Inline,
        _ => return None,
    })
}

/// Every method name [`method_mode`] knows, as the closed set of metrics labels.
pub const METHODS: &[&str] = &[
    "container_create",
    "container_delete",
    "container_start",
    "container_stop",
    "container_reboot",
    "container_rebuild",
    "container_pause",
    "container_unpause",
    "container_kill",
    "resize_container",
    "add_security_group",
    "remove_security_group",
    "network_attach",
    "network_detach",
    "capsule_create",
    "container_show",
    "container_logs",
    "container_exec",
    "container_exec_resize",
    "container_update",
    "container_attach",
    "container_resize",
    "container_top",
    "container_get_archive",
    "container_put_archive",
    "container_stats",
    "container_commit",
    "image_pull",
    "image_delete",
    "image_search",
    "network_create",
    "network_delete",
    "capsule_delete",
];

/// A test's fault injection: called inside the executor before a locked operation runs.
pub type FaultHook = Arc<dyn Fn(&Request) + Send + Sync>;

pub struct Manager {
    svc: Arc<Services>,
    executor: Arc<Executor>,
    fault: Option<FaultHook>,
}

impl Manager {
    pub fn new(svc: Arc<Services>, executor: Arc<Executor>) -> Self {
        Manager { svc, executor, fault: None }
    }

    /// Tests only: run `hook` inside the executor before each locked operation (a hook
    /// that panics stands for a bug in an operation). The worker never sets one.
    #[doc(hidden)]
    pub fn with_fault_hook(mut self, hook: FaultHook) -> Self {
        self.fault = Some(hook);
        self
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.svc
    }

    pub fn executor(&self) -> &Arc<Executor> {
        &self.executor
    }
}

/// The container UUID a locked method works on, as zun reads `container.uuid`.
fn target_uuid(args: &serde_json::Map<String, Value>) -> Result<String, RpcError> {
    let c = args.get("container").or_else(|| args.get("capsule"));
    match c {
        Some(v) if crate::oslo::ObjectPrimitive::is_primitive(v) => v
            .get(crate::oslo::object::KEY_DATA)
            .and_then(|d| d.get("uuid"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| RpcError::invalid("the container object has no uuid")),
        Some(other) => {
            Err(RpcError::builtin("AttributeError", &format!("'{}' object has no attribute 'uuid'", crate::rpc::py_type_name(other))))
        }
        None => Err(RpcError::builtin("TypeError", "missing required argument: 'container'")),
    }
}

impl Endpoint for Manager {
    fn method_label(&self, method: &str) -> &'static str {
        METHODS.iter().find(|m| **m == method).copied().unwrap_or(crate::rpc::UNKNOWN_METHOD)
    }

    fn submit(&self, req: Request) -> Option<MethodFuture> {
        let mode = method_mode(&req.method)?;
        let svc = self.svc.clone();
        match mode {
            Mode::Inline => Some(Box::pin(ops::run(svc, req))),
            Mode::Locked => {
                let uuid = match target_uuid(&req.args) {
                    Ok(u) => u,
                    Err(e) => return Some(Box::pin(ops::refuse(svc, req, e))),
                };
                let (tx, rx) = tokio::sync::oneshot::channel();
                let method = req.method.clone();
                let request_id = req.ctx.request_id().unwrap_or("-").to_string();
                let container = uuid.clone();
                let fault = self.fault.clone();
                let job = Box::pin(async move {
                    // A panic must reach the RPC layer as a panic (poison: rejected), not
                    // as a job dropped unanswered (which means "never started": requeued).
                    use futures_util::FutureExt;
                    let op = async move {
                        if let Some(hook) = &fault {
                            hook(&req);
                        }
                        ops::run(svc, req).await
                    };
                    let r = std::panic::AssertUnwindSafe(op).catch_unwind().await.unwrap_or_else(|_| {
                        tracing::error!(container = %container, method = %method, request_id = %request_id, "operation panicked");
                        Err(RpcError::Panicked)
                    });
                    tracing::debug!(container = %container, method = %method, request_id = %request_id, ok = r.is_ok(), "operation finished");
                    let _ = tx.send(r);
                });
                if let Err(ExecutorError::ShuttingDown) = self.executor.submit(&uuid, job) {
                    return Some(Box::pin(async { Err(RpcError::Abandoned) }));
                }
                // Dropped without an answer = never started (shutdown): requeue.
                Some(Box::pin(async move { rx.await.unwrap_or(Err(RpcError::Abandoned)) }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// zun's compute manager: the casts it runs under `synchronized(container.uuid)` are
    /// Locked; calls and the image casts run inline (tests/wire_conformance.rs checks this
    /// table's source of truth against zun's installed code).
    #[test]
    fn every_rpcapi_method_has_its_mode() {
        use Mode::*;
        for (m, want) in [
            ("container_create", Locked),
            ("container_delete", Locked),
            ("container_rebuild", Locked),
            ("container_reboot", Locked),
            ("container_stop", Locked),
            ("container_start", Locked),
            ("container_pause", Locked),
            ("container_unpause", Locked),
            ("container_kill", Locked),
            ("resize_container", Locked),
            ("add_security_group", Locked),
            ("remove_security_group", Locked),
            ("network_attach", Locked),
            ("network_detach", Locked),
            ("capsule_create", Locked),
            ("container_show", Inline),
            ("container_logs", Inline),
            ("container_exec", Inline),
            ("container_exec_resize", Inline),
            ("container_update", Inline),
            ("container_attach", Inline),
            ("container_resize", Inline),
            ("container_top", Inline),
            ("container_get_archive", Inline),
            ("container_put_archive", Inline),
            ("container_stats", Inline),
            ("image_delete", Inline),
            ("image_pull", Inline),
            ("image_search", Inline),
            ("network_create", Inline),
            ("network_delete", Inline),
            ("capsule_delete", Locked),
        ] {
            assert_eq!(method_mode(m), Some(want), "{m}");
        }
        assert_eq!(method_mode("container_commit"), Some(Locked));
        assert_eq!(method_mode("container_teleport"), None);
    }

    #[test]
    fn metrics_labels_are_exactly_the_known_methods() {
        for m in METHODS {
            assert!(method_mode(m).is_some(), "{m}");
        }
        let known: std::collections::HashSet<_> = METHODS.iter().collect();
        assert_eq!(known.len(), METHODS.len(), "no name twice");
    }

    #[test]
    fn target_uuid_reads_the_object_or_fails_like_python() {
        let mut args = serde_json::Map::new();
        args.insert(
            "container".into(),
            json!({"zun_object.name": "Container", "zun_object.namespace": "zun",
            "zun_object.version": "1.44", "zun_object.data": {"uuid": "u-1"}}),
        );
        assert_eq!(target_uuid(&args).unwrap(), "u-1");
        args.insert("container".into(), json!({"uuid": "u-1"}));
        assert_eq!(target_uuid(&args).unwrap_err(), RpcError::builtin("AttributeError", "'dict' object has no attribute 'uuid'"));
    }
}
