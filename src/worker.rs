//! The worker's life: start-up in zun-compute's order (store and heartbeat, Docker,
//! recovery of what this host left half-done, periodic duties, then the RPC server),
//! and a graceful stop on SIGTERM or SIGINT: stop consuming, finish what is running
//! within `[compute] graceful_shutdown_timeout`, hand back what never started, exit 0.
use crate::admin::{self, Health, Metrics};
use crate::amqp::{AmqpError, AmqpSettings, Publisher, RpcServer};
use crate::compute::{recovery, ComputeSettings, Executor, Manager, Services};
use crate::config::Settings;
use crate::docker::{DockerClient, DockerError, DockerSettings};
use crate::events::Notifier;
use crate::periodic;
use crate::rpc::Dispatcher;
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("docker: {0}")]
    Docker(#[from] DockerError),
    #[error("rabbitmq: {0}")]
    Amqp(#[from] AmqpError),
    #[error("admin listener on {addr}: {source}")]
    Admin { addr: String, source: std::io::Error },
    #[error("{0}")]
    Cli(String),
    #[error("{0}")]
    OpenStack(#[from] crate::openstack::OpenStackError),
}

/// The kuryr network driver when `[network] driver = kuryr` and `[keystone_auth]` is set
/// (Neutron found in the catalog with `[neutron_client]`); `None` for a standalone worker.
pub fn network_driver(
    settings: &Settings,
    session: Option<&crate::openstack::Session>,
    host: &str,
) -> Result<Option<Arc<crate::compute::network::Kuryr>>, crate::openstack::OpenStackError> {
    use crate::openstack::{neutron::Neutron, Service};
    if settings.network.driver != "kuryr" {
        return Ok(None);
    }
    let Some(session) = session else { return Ok(None) };
    let client = session.client(Service::Neutron, &settings.neutron_client)?;
    tracing::info!(driver = %settings.network.driver_name, "Neutron networks through kuryr");
    Ok(Some(Arc::new(crate::compute::network::Kuryr::new(Neutron::new(client), &settings.network.driver_name, host))))
}

/// Glance (`[glance_client]`, `[glance]` bounds) when `[keystone_auth]` is set.
pub fn glance_client(
    settings: &Settings,
    session: Option<&crate::openstack::Session>,
) -> Result<Option<Arc<crate::openstack::glance::Glance>>, crate::openstack::OpenStackError> {
    let Some(session) = session else { return Ok(None) };
    let client = session.client(crate::openstack::Service::Glance, &settings.glance_client)?;
    let max = settings.glance.max_image_size_mb.max(1).saturating_mul(1024 * 1024);
    let timeout = Duration::from_secs(settings.glance.transfer_timeout.max(1));
    Ok(Some(Arc::new(crate::openstack::glance::Glance::new(client, max, timeout))))
}

/// Connects to Docker and negotiates the API version.
pub async fn connect_docker(settings: &Settings) -> Result<DockerClient, DockerError> {
    let docker = DockerClient::connect(&DockerSettings {
        api_url: settings.docker.api_url.clone(),
        timeout: Duration::from_secs(settings.docker.default_timeout.max(1)),
    })?;
    let version = docker.negotiate_version().await?;
    tracing::info!(api_version = %version, api_url = %settings.docker.api_url, "Docker API negotiated");
    Ok(docker)
}

/// Opens the store named by `[database] connection`, or the embedded SQLite file.
pub async fn open_store(settings: &Settings) -> Result<Store, StoreError> {
    let path = settings.sqlite_path();
    if settings.database.connection.is_none() {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
    }
    let d = &settings.database;
    let pool = crate::store::pool::PoolSettings::from_options(d.max_pool_size, d.max_overflow, d.pool_timeout, d.connection_recycle_time);
    let store = Store::connect_with_pool(d.connection.as_ref().map(crate::config::Secret::expose), &path, &pool).await?.with_retry_policy(
        crate::store::retry::RetryPolicy::from_options(
            d.db_max_retries,
            d.db_retry_interval,
            d.db_inc_retry_interval,
            d.db_max_retry_interval,
        ),
    );
    store.check_schema().await?;
    tracing::info!(backend = store.backend(), "state store ready");
    Ok(store)
}

/// How long to wait for a dependency at start-up: pauses growing from 0.5 s (with jitter)
/// up to `max_pause`, `attempts` tries in all (`None`: until it answers).
#[derive(Debug, Clone, Copy)]
struct StartupWait {
    max_pause: Duration,
    attempts: Option<usize>,
}

impl StartupWait {
    /// Docker: for ever, pauses up to 30 s.
    const FOREVER: StartupWait = StartupWait { max_pause: Duration::from_secs(30), attempts: None };

    /// The database: `[database] max_retries` attempts (-1: for ever; oslo.db's count),
    /// pauses up to `retry_interval` (oslo.db's fixed interval; we start shorter).
    fn database(settings: &Settings) -> StartupWait {
        let d = &settings.database;
        let max_pause = Duration::try_from_secs_f64(d.retry_interval.clamp(0.0, 3600.0)).unwrap_or_default();
        let attempts = (d.max_retries >= 0).then(|| d.max_retries.clamp(1, 1_000_000) as usize);
        StartupWait { max_pause, attempts }
    }
}

/// Calls `f` until it succeeds (as `wait` says), or returns `Ok(None)` when `stop` turns
/// true first. An error `fatal` accepts (a configuration that can never work, such as TLS
/// asked for and impossible) ends the wait, as does the last attempt.
async fn retry_until_stopped<T, E, F, Fut>(
    what: &str,
    wait: StartupWait,
    stop: &mut watch::Receiver<bool>,
    fatal: impl Fn(&E) -> bool,
    mut f: F,
) -> Result<Option<T>, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    use backon::Retryable;
    let delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500).min(wait.max_pause))
        .with_max_delay(wait.max_pause)
        .with_jitter();
    let delays = match wait.attempts {
        Some(n) => delays.with_max_times(n.saturating_sub(1)),
        None => delays.without_max_times(),
    };
    let attempts = (|| f()).retry(delays).when(|e: &E| !fatal(e)).notify(|e: &E, wait: Duration| {
        tracing::warn!(dependency = what, error = %e, retry_in_ms = wait.as_millis() as u64, "not reachable at start-up; waiting for it");
    });
    tokio::select! {
        r = attempts => r.map(Some),
        _ = stop.wait_for(|v| *v) => Ok(None),
    }
}

/// Runs the worker until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> Result<(), WorkerError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested; draining");
        let _ = stop_tx.send(true);
    });
    run_until(settings, stop_rx).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the worker until `stop` turns true.
pub async fn run_until(settings: Settings, mut stop: watch::Receiver<bool>) -> Result<(), WorkerError> {
    let started = Instant::now();
    let settings = Arc::new(settings);
    let host = settings.default.host.clone();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());

    if !settings.admin.listen.is_empty() {
        let mut s = stop.clone();
        let shutdown = async move {
            let _ = s.wait_for(|v| *v).await;
        };
        let addr = admin::server::serve(&settings.admin.listen, health.clone(), metrics.clone(), shutdown)
            .await
            .map_err(|source| WorkerError::Admin { addr: settings.admin.listen.clone(), source })?;
        tracing::info!(%addr, "admin listener up (/healthz, /readyz, /metrics)");
    }

    // Dependencies that are down at start-up are waited for (with backoff), not fatal:
    // the worker comes up when they do, like it rides out their outages later.
    // The broker settings (and their TLS files) are checked before anything is waited for.
    let amqp = Arc::new(AmqpSettings::from_config(&settings)?);
    // A connection URL that can never work (malformed, TLS files missing, TLS asked for
    // and impossible) is refused at once rather than waited for.
    let refused = |e: &StoreError| matches!(e, StoreError::BadUrl(_) | StoreError::Tls { .. });
    let connect = || async {
        let docker = connect_docker(&settings).await?;
        let info = docker.info().await?;
        Ok::<_, DockerError>((docker, info))
    };
    // The database and Docker are independent: both are reached at once (start-up is
    // their slower one, not their sum). A refused database URL still ends the start at
    // once (`try_join!` returns the first error); a stop ends both waits.
    let (mut stop_db, mut stop_docker) = (stop.clone(), stop.clone());
    let (store, docker) = tokio::try_join!(
        async {
            retry_until_stopped("database", StartupWait::database(&settings), &mut stop_db, refused, || open_store(&settings))
                .await
                .map_err(WorkerError::from)
        },
        async {
            retry_until_stopped("docker", StartupWait::FOREVER, &mut stop_docker, |_: &DockerError| false, connect)
                .await
                .map_err(WorkerError::from)
        },
    )?;
    let (Some(store), Some((docker, info))) = (store, docker) else {
        return Ok(());
    };
    let store = Arc::new(store);
    Health::set(&health.db_ok, true);
    let docker = Arc::new(docker);
    Health::set(&health.docker_ok, true);
    let disk_quota_supported = info.disk_quota_supported().unwrap_or(false);

    let publisher = Arc::new(Publisher::new(amqp.clone()));
    let notifier = Arc::new(if settings.oslo_messaging_notifications.enabled() {
        Notifier::start(
            &host,
            settings.default.control_exchange.clone(),
            settings.oslo_messaging_notifications.topics.clone(),
            amqp.rabbit.clone(),
            publisher.clone(),
        )
    } else {
        Notifier::disabled(&host)
    });
    // OpenStack: a session when `[keystone_auth]` is configured, else standalone.
    let keystone = crate::openstack::Session::from_settings(&settings)?;
    let placement = match &keystone {
        Some(session) => {
            let client = session.client(crate::openstack::Service::Placement, &settings.placement_client)?;
            tracing::info!(auth_url = %session.auth_url(), "OpenStack configured: reporting to Placement");
            Some(Arc::new(crate::openstack::placement::Placement::new(client)))
        }
        None => {
            tracing::info!("no [keystone_auth] auth_url: standalone, no Placement reporting");
            None
        }
    };
    let kuryr = network_driver(&settings, keystone.as_ref(), &host)?;
    let glance = glance_client(&settings, keystone.as_ref())?;
    let svc = Arc::new(Services {
        conf: ComputeSettings::from_settings(&settings),
        settings: settings.clone(),
        store: store.clone(),
        docker: docker.clone(),
        notifier,
        metrics: metrics.clone(),
        host: host.clone(),
        claims: tokio::sync::Mutex::new(()),
        disk_quota_supported,
        keystone,
        placement,
        kuryr,
        glance,
    });
    let executor = Executor::new(settings.compute.max_concurrent_operations, Some(metrics.clone()));
    let manager = Arc::new(Manager::new(svc.clone(), executor.clone()));

    // The RPC server connects to the broker and declares its queues now, while the
    // heartbeat, inventory and recovery run; it consumes only once `consume_tx` opens,
    // after recovery (zun's order below). Its connection round trips overlap them.
    let limits = crate::oslo::Limits { max_bytes: settings.compute.max_message_bytes.max(1024), ..Default::default() };
    let dispatcher = Arc::new(Dispatcher::new(manager.clone()).with_limits(limits));
    let (consume_tx, consume_rx) = watch::channel(false);
    let server = Arc::new(RpcServer::new(amqp, dispatcher, publisher.clone(), metrics, health.clone()).with_consume_gate(consume_rx));
    let drain = Duration::from_secs(settings.compute.graceful_shutdown_timeout);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let server_task = tokio::spawn(server.run(stop.clone(), drain, Some(ready_tx)));

    // zun's Service.start order: heartbeat, init_containers, periodic tasks, RPC server.
    // The heartbeat (service row) and the first inventory (compute_node row, Docker's
    // info) touch nothing of each other: run together, start-up waits for the slower.
    let (_, inventory) = tokio::join!(periodic::heartbeat(&svc, &health), periodic::inventory::refresh(&svc));
    if let Err(e) = inventory {
        tracing::warn!(error = %e, "first compute node inventory failed");
    }
    recovery::recover(&svc, &manager).await;
    tokio::spawn(periodic::probe_health(svc.clone(), health.clone(), Duration::from_secs(2), stop.clone()));
    let periodic_task =
        tokio::spawn(periodic::run(svc.clone(), manager.clone(), health.clone(), settings.periodic_interval(), stop.clone()));
    let events_task = (settings.default.sync_container_state_interval >= 0)
        .then(|| tokio::spawn(periodic::follow_docker_events(svc.clone(), manager.clone(), stop.clone())));

    // Recovery is done: the RPC server may consume.
    consume_tx.send_replace(true);
    tokio::spawn(async move {
        if ready_rx.await.is_ok() {
            tracing::info!(host = %host, startup_ms = started.elapsed().as_millis() as u64, "zun-compute-rs consuming");
        }
    });

    let _ = stop.wait_for(|v| *v).await;
    // Stop: what never started goes back to the queue; running work finishes in time.
    let deadline = Instant::now() + drain;
    let finished = executor.shutdown(deadline).await;
    if !finished {
        tracing::warn!("drain time over with operations still running");
    }
    let _ = server_task.await;
    let _ = periodic_task.await;
    if let Some(t) = events_task {
        let _ = t.await;
    }
    publisher.close().await;
    // No more heartbeats from here: tell zun-api now rather than in service_down_time.
    let down_after = Duration::from_secs(settings.default.service_down_time);
    match store.service_mark_down(&svc.host, periodic::BINARY, down_after).await {
        Ok(()) => tracing::info!(host = %svc.host, "service marked down"),
        Err(e) => tracing::warn!(host = %svc.host, error = %e, "could not mark the service down"),
    }
    store.close().await;
    tracing::info!("zun-compute-rs stopped");
    Ok(())
}
