//! Configuration: the same `zun.conf` (INI) that zun-compute reads, through the `config`
//! crate, plus `ZUN_<SECTION>__<KEY>` environment overrides.
//!
//! - `--config-file` may be given several times; later files override earlier ones, as in
//!   oslo.config.
//! - Section names are as in zun.conf: `DEFAULT` in capitals, the others lower case.
//!   `ZUN_DEFAULT__HOST=node1` overrides `[DEFAULT] host`, and
//!   `ZUN_OSLO_MESSAGING_RABBIT__AMQP_DURABLE_QUEUES=true` overrides that key.
//! - Options we do not know are ignored, with a debug line each.
//! - A malformed value stops start-up with an error naming the file, section, key and the
//!   expected type.
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid INI: {detail}")]
    Syntax { path: PathBuf, detail: String },
    #[error("bad value for [{section}] {key}{origin}: {detail}")]
    BadValue { section: String, key: String, origin: String, detail: String },
    #[error("configuration error: {0}")]
    Other(String),
}

/// A configuration value that holds a secret (a password, or a URL with one in it).
///
/// It cannot print itself: `Debug` shows `Secret(***)` and there is no `Display`, so a
/// `{:?}` of [`Settings`] or of any struct holding one never shows the secret. Serializing
/// it (what `check-config` prints) gives the masked form: a URL with its password replaced
/// by `***`, anything else `***`. The value itself is reached only through
/// [`Secret::expose`], at the one place that needs it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the connection that needs it. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What may be shown: a URL's password masked, any other value `***`.
    pub fn masked(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "***".into();
        };
        // A raw `@` after the authority (an unescaped `/` or `?` in the password) would
        // defeat the per-host masking: show nothing of the rest then.
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if rest[authority_end..].contains('@') {
            return format!("{scheme}://***");
        }
        mask_url_password(&self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

fn default_host() -> String {
    hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

/// An oslo `ListOpt`: a comma-separated string in the INI file.
fn list_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        S(String),
        V(Vec<String>),
    }
    Ok(match L::deserialize(d)? {
        L::S(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        L::V(v) => v,
    })
}

/// `[DEFAULT]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DefaultSection {
    /// RPC server name, `container.host`, `zun_service.host`, `compute_node.hostname`.
    pub host: String,
    pub transport_url: Option<Secret>,
    pub control_exchange: String,
    /// How often the heartbeat, inventory and state sync run (seconds).
    pub periodic_interval_max: u64,
    pub service_down_time: u64,
    pub sync_container_state_interval: i64,
    pub rpc_response_timeout: u64,
    pub default_availability_zone: String,
    pub container_runtime: String,
    pub default_disk: i64,
    pub default_memory_swap: i64,
    pub state_path: String,
    pub my_ip: Option<String>,
    pub debug: bool,
    /// `json` for JSON log lines; anything else for text.
    pub log_format: String,
    pub auth_encryption_key: Secret,
    /// zun's image driver when a request names none (`image_search`): `docker` or `glance`.
    pub default_image_driver: String,
}

impl Default for DefaultSection {
    fn default() -> Self {
        DefaultSection {
            host: default_host(),
            transport_url: None,
            control_exchange: "zun".into(),
            periodic_interval_max: 60,
            service_down_time: 180,
            sync_container_state_interval: 60,
            rpc_response_timeout: 60,
            default_availability_zone: "nova".into(),
            container_runtime: "runc".into(),
            default_disk: 10,
            default_memory_swap: -1,
            state_path: "/var/lib/zun".into(),
            my_ip: None,
            debug: false,
            log_format: "text".into(),
            auth_encryption_key: Secret::new("notgood but just long enough i t"),
            default_image_driver: "docker".into(),
        }
    }
}

/// `[oslo_messaging_rabbit]`: the options that change the wire, as oslo.messaging reads them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RabbitSection {
    pub amqp_durable_queues: bool,
    pub amqp_auto_delete: bool,
    pub rabbit_ha_queues: bool,
    pub rabbit_quorum_queue: bool,
    pub rabbit_transient_quorum_queue: bool,
    pub rabbit_quorum_delivery_limit: i64,
    pub rabbit_quorum_max_memory_length: i64,
    pub rabbit_quorum_max_memory_bytes: i64,
    pub rabbit_transient_queues_ttl: i64,
    /// 0 means oslo's default (no Basic.Qos); we then use `[compute] prefetch`.
    pub rabbit_qos_prefetch_count: u16,
    pub enable_cancel_on_failover: bool,
    pub heartbeat_timeout_threshold: u16,
    pub kombu_missing_consumer_retry_timeout: u64,
    pub rabbit_retry_interval: f64,
    pub rabbit_retry_backoff: f64,
    pub rabbit_interval_max: f64,
    pub ssl: bool,
    /// PEM CA bundle the broker's certificate must chain to (else the system roots).
    pub ssl_ca_file: Option<String>,
    /// PEM client certificate and its key, for brokers that ask for one.
    pub ssl_cert_file: Option<String>,
    pub ssl_key_file: Option<String>,
}

impl Default for RabbitSection {
    fn default() -> Self {
        RabbitSection {
            amqp_durable_queues: false,
            amqp_auto_delete: false,
            rabbit_ha_queues: false,
            rabbit_quorum_queue: false,
            rabbit_transient_quorum_queue: false,
            rabbit_quorum_delivery_limit: 0,
            rabbit_quorum_max_memory_length: 0,
            rabbit_quorum_max_memory_bytes: 0,
            rabbit_transient_queues_ttl: 1800,
            rabbit_qos_prefetch_count: 0,
            enable_cancel_on_failover: false,
            heartbeat_timeout_threshold: 60,
            kombu_missing_consumer_retry_timeout: 60,
            rabbit_retry_interval: 1.0,
            rabbit_retry_backoff: 2.0,
            rabbit_interval_max: 30.0,
            ssl: false,
            ssl_ca_file: None,
            ssl_cert_file: None,
            ssl_key_file: None,
        }
    }
}

/// `[docker]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DockerSection {
    pub api_url: String,
    pub docker_remote_api_version: String,
    pub default_timeout: u64,
    pub execute_timeout: u64,
    pub docker_remote_api_host: Option<String>,
    pub docker_remote_api_port: u16,
    pub docker_remote_api_url: Option<String>,
    pub default_registry: Option<String>,
    pub default_registry_username: Option<String>,
    pub default_registry_password: Option<Secret>,
    /// Docker network for containers without Neutron networks (ours; zun uses kuryr).
    pub default_network: String,
}

impl Default for DockerSection {
    fn default() -> Self {
        DockerSection {
            api_url: "unix:///var/run/docker.sock".into(),
            docker_remote_api_version: "1.26".into(),
            default_timeout: 60,
            execute_timeout: 5,
            docker_remote_api_host: None,
            docker_remote_api_port: 2375,
            docker_remote_api_url: None,
            default_registry: None,
            default_registry_username: None,
            default_registry_password: None,
            default_network: "bridge".into(),
        }
    }
}

/// `[database]`: the connection and oslo.db's retry and pool options (same names, same defaults).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSection {
    /// zun's SQLAlchemy URL (`mysql+pymysql://...`); unset means the embedded SQLite store.
    pub connection: Option<Secret>,
    /// Where the embedded store lives (ours); default `$state_path/zun-compute-rs.sqlite`.
    pub sqlite_path: Option<String>,
    /// Attempts to open the database at start-up; -1 = for ever (oslo.db: 10).
    pub max_retries: i64,
    /// Longest pause (s) between those attempts (oslo.db: 10, its fixed interval).
    pub retry_interval: f64,
    /// Retries of one operation after a deadlock, lock wait timeout or lost connection
    /// (oslo.db: 20).
    pub db_max_retries: i64,
    /// The first pause (s) before such a retry (oslo.db: 1).
    pub db_retry_interval: f64,
    /// Double the pause after each retry (oslo.db: true).
    pub db_inc_retry_interval: bool,
    /// The longest pause (s) between such retries (oslo.db: 10).
    pub db_max_retry_interval: f64,
    /// Connections the pool keeps (oslo.db: 5); with `max_overflow`, the most it opens.
    pub max_pool_size: i64,
    /// Connections opened beyond `max_pool_size` under load (oslo.db: 50; -1: no limit).
    pub max_overflow: i64,
    /// Seconds an operation waits for a free connection (oslo.db: unset, SQLAlchemy's 30).
    pub pool_timeout: Option<f64>,
    /// Seconds after which a connection is replaced (oslo.db: 3600; <= 0: never).
    pub connection_recycle_time: f64,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            connection: None,
            sqlite_path: None,
            max_retries: 10,
            retry_interval: 10.0,
            db_max_retries: 20,
            db_retry_interval: 1.0,
            db_inc_retry_interval: true,
            db_max_retry_interval: 10.0,
            max_pool_size: 5,
            max_overflow: 50,
            pool_timeout: None,
            connection_recycle_time: 3600.0,
        }
    }
}

/// `[compute]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ComputeSection {
    pub topic: String,
    pub reserve_disk_for_image: f64,
    pub cpu_allocation_ratio: Option<f64>,
    pub ram_allocation_ratio: Option<f64>,
    pub disk_allocation_ratio: Option<f64>,
    /// Used for a Placement inventory that does not exist yet when `*_allocation_ratio` is unset.
    pub initial_cpu_allocation_ratio: f64,
    pub initial_ram_allocation_ratio: f64,
    pub initial_disk_allocation_ratio: f64,
    /// Placement `reserved` of VCPU, MEMORY_MB and DISK_GB (MB, rounded up to GB).
    pub reserved_host_cpus: i64,
    pub reserved_host_memory_mb: i64,
    pub reserved_host_disk_mb: i64,
    /// Start, at start-up, the containers recorded Running that Docker has stopped (a host
    /// reboot); zun's option, default off.
    pub resume_container_state: bool,
    /// Mount the containers' volumes again at start-up (zun's option, default on).
    pub remount_container_volume: bool,
    /// Containers operated on at once (different UUIDs); like nova's max concurrent builds.
    pub max_concurrent_operations: usize,
    /// Unacknowledged deliveries per consumer when `rabbit_qos_prefetch_count` is 0.
    pub prefetch: u16,
    /// Seconds SIGTERM waits for in-flight operations (nova: 160 of systemd's 180).
    pub graceful_shutdown_timeout: u64,
    /// Remove Docker containers named `zun-*` that the store does not know, at start-up.
    pub remove_orphans: bool,
    /// Largest message body accepted (bytes, before and after decompression); larger
    /// ones are rejected unparsed.
    pub max_message_bytes: usize,
    /// The broker's `consumer_timeout` in seconds (RabbitMQ's default: 1800); 0 when the
    /// broker has none. A delivery whose operation still runs at three quarters of it is
    /// acknowledged then, so the broker never closes the channel (which would hand every
    /// other in-flight message on it back to the queue).
    pub consumer_timeout: u64,
}

impl Default for ComputeSection {
    fn default() -> Self {
        ComputeSection {
            topic: "zun-compute".into(),
            reserve_disk_for_image: 0.2,
            cpu_allocation_ratio: None,
            ram_allocation_ratio: None,
            disk_allocation_ratio: None,
            initial_cpu_allocation_ratio: 16.0,
            initial_ram_allocation_ratio: 1.5,
            initial_disk_allocation_ratio: 1.0,
            reserved_host_cpus: 0,
            reserved_host_memory_mb: 512,
            reserved_host_disk_mb: 0,
            resume_container_state: false,
            remount_container_volume: true,
            max_concurrent_operations: 16,
            prefetch: 64,
            graceful_shutdown_timeout: 160,
            remove_orphans: false,
            max_message_bytes: crate::oslo::envelope::DEFAULT_MAX_MESSAGE_BYTES,
            consumer_timeout: 1800,
        }
    }
}

/// `[keystone_auth]`: the service's own Keystone credentials, with the option names
/// keystoneauth's `password` / `v3password` and `v3applicationcredential` plugins load,
/// plus its session options (`cafile`, `insecure`, `timeout`). Unset `auth_url`: no
/// OpenStack (standalone).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KeystoneAuthSection {
    /// `password` (zun's default), `v3password` or `v3applicationcredential`.
    pub auth_type: String,
    pub auth_url: Option<String>,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub user_domain_id: Option<String>,
    pub user_domain_name: Option<String>,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub project_domain_name: Option<String>,
    /// Domain scope (instead of a project).
    pub domain_id: Option<String>,
    pub domain_name: Option<String>,
    /// The generic `password` plugin's fallback for the user and project domains.
    pub default_domain_id: Option<String>,
    pub default_domain_name: Option<String>,
    pub system_scope: Option<String>,
    pub trust_id: Option<String>,
    pub application_credential_id: Option<String>,
    pub application_credential_name: Option<String>,
    pub application_credential_secret: Option<Secret>,
    /// PEM CA bundle for Keystone (keystoneauth session option).
    pub cafile: Option<String>,
    pub certfile: Option<String>,
    pub keyfile: Option<String>,
    pub insecure: bool,
    /// Per-request timeout in seconds (keystoneauth: none; ours: 30 when unset).
    pub timeout: Option<f64>,
}

impl Default for KeystoneAuthSection {
    fn default() -> Self {
        KeystoneAuthSection {
            auth_type: "password".into(),
            auth_url: None,
            user_id: None,
            username: None,
            password: None,
            user_domain_id: None,
            user_domain_name: None,
            project_id: None,
            project_name: None,
            project_domain_id: None,
            project_domain_name: None,
            domain_id: None,
            domain_name: None,
            default_domain_id: None,
            default_domain_name: None,
            system_scope: None,
            trust_id: None,
            application_credential_id: None,
            application_credential_name: None,
            application_credential_secret: None,
            cafile: None,
            certfile: None,
            keyfile: None,
            insecure: false,
            timeout: None,
        }
    }
}

impl KeystoneAuthSection {
    /// Whether the worker talks to OpenStack at all.
    pub fn configured(&self) -> bool {
        self.auth_url.as_deref().is_some_and(|u| !u.trim().is_empty())
    }
}

/// `[placement_client]`, `[neutron_client]` (and zun's other `*_client` sections): how
/// an OpenStack service is found in the catalog and reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSection {
    pub region_name: Option<String>,
    /// `publicURL` (zun's default), `internalURL`, `adminURL`, or `public`/`internal`/`admin`.
    pub endpoint_type: String,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub insecure: bool,
}

impl Default for ClientSection {
    fn default() -> Self {
        ClientSection {
            region_name: None,
            endpoint_type: "publicURL".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            insecure: false,
        }
    }
}

/// `[network]` (zun/conf/network.py): the container network driver.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkSection {
    /// `kuryr` (zun's default): Neutron networks through the kuryr-libnetwork Docker
    /// plugin, used when `[keystone_auth]` is configured. Anything else (`none`, `cni`):
    /// only Docker's `[docker] default_network`.
    pub driver: String,
    /// The Docker network and IPAM plugin name (`docker plugin ls`), `kuryr`.
    pub driver_name: String,
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection { driver: "kuryr".into(), driver_name: "kuryr".into() }
    }
}

/// `[volume]` (zun/conf/volume.py): container volumes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeSection {
    /// The volume drivers this host runs (`cinder`, `local`).
    #[serde(deserialize_with = "list_opt")]
    pub driver_list: Vec<String>,
    /// Where volumes are mounted (one directory per zun volume uuid); `$state_path` is
    /// replaced as oslo.config does.
    pub volume_dir: String,
    /// The filesystem an empty Cinder device is formatted with.
    pub fstype: String,
    /// Multipath connections (not supported here; `true` is refused at attach).
    pub use_multipath: bool,
    /// Seconds a create waits for its volumes to be `available`.
    pub timeout_wait_volume_available: u64,
    /// Seconds a delete waits for `auto_remove` volumes to be gone.
    pub timeout_wait_volume_deleted: u64,
}

impl Default for VolumeSection {
    fn default() -> Self {
        VolumeSection {
            driver_list: vec!["cinder".into(), "local".into()],
            volume_dir: "$state_path/mnt".into(),
            fstype: "ext4".into(),
            use_multipath: false,
            timeout_wait_volume_available: 60,
            timeout_wait_volume_deleted: 60,
        }
    }
}

/// `[glance]` (zun/conf/image_driver.py's `images_directory`, plus our bounds).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GlanceSection {
    /// Where a Glance image's tar is downloaded (`<id>.tar`) before `docker load`, and a
    /// committed image is saved before its upload; default `$state_path/images` (zun's).
    pub images_directory: Option<String>,
    /// Ours: the largest image downloaded from Glance or uploaded to it, in MiB. Glance's
    /// `size` is checked before the download and the bytes while they arrive.
    pub max_image_size_mb: u64,
    /// Ours: how long one download or upload may take, in seconds.
    pub transfer_timeout: u64,
}

impl Default for GlanceSection {
    fn default() -> Self {
        GlanceSection { images_directory: None, max_image_size_mb: 10240, transfer_timeout: 600 }
    }
}

/// `[oslo_messaging_notifications]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationsSection {
    #[serde(deserialize_with = "list_opt")]
    pub driver: Vec<String>,
    #[serde(deserialize_with = "list_opt")]
    pub topics: Vec<String>,
    pub transport_url: Option<Secret>,
}

impl Default for NotificationsSection {
    fn default() -> Self {
        NotificationsSection { driver: vec!["messagingv2".into()], topics: vec!["notifications".into()], transport_url: None }
    }
}

impl NotificationsSection {
    /// Notifications are off when no driver is set or the driver is `noop`.
    pub fn enabled(&self) -> bool {
        self.driver.iter().any(|d| d != "noop")
    }
}

/// `[admin]` (ours): the health and metrics listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminSection {
    /// `host:port`; empty disables the listener.
    pub listen: String,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection { listen: "127.0.0.1:9512".into() }
    }
}

/// The whole effective configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Settings {
    #[serde(rename = "DEFAULT", default)]
    pub default: DefaultSection,
    #[serde(default)]
    pub oslo_messaging_rabbit: RabbitSection,
    #[serde(default)]
    pub docker: DockerSection,
    #[serde(default)]
    pub database: DatabaseSection,
    #[serde(default)]
    pub compute: ComputeSection,
    #[serde(default)]
    pub oslo_messaging_notifications: NotificationsSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub keystone_auth: KeystoneAuthSection,
    #[serde(default)]
    pub placement_client: ClientSection,
    #[serde(default)]
    pub neutron_client: ClientSection,
    #[serde(default)]
    pub network: NetworkSection,
    #[serde(default)]
    pub volume: VolumeSection,
    #[serde(default)]
    pub cinder_client: ClientSection,
    /// `[glance_client]`: how Glance is found in the catalog (zun's options).
    #[serde(default)]
    pub glance_client: ClientSection,
    /// `[glance]`: where Glance images are downloaded, and our bounds on them.
    #[serde(default)]
    pub glance: GlanceSection,
}

/// Keys whose values are secrets, never printed.
const SECRET_KEYS: &[&str] = &["password", "auth_encryption_key", "default_registry_password", "auth_token", "secret"];

impl Settings {
    /// Loads the files in order, then the `ZUN_*` overrides from `env`.
    pub fn load<P: AsRef<Path>>(files: &[P], env: impl IntoIterator<Item = (String, String)>) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        for f in files {
            let path = f.as_ref();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
            // Check the syntax ourselves first, so the error names the file.
            if let Err(e) = ini::Ini::load_from_str(&text) {
                return Err(ConfigError::Syntax { path: path.into(), detail: e.to_string() });
            }
            // Our own source, so a bad value's error names the file as the operator gave it
            // (`config::File` names it relative to the working directory).
            builder = builder.add_source(GivenFile { name: path.display().to_string(), text });
        }
        for (k, v) in env {
            if let Some((section, key)) = env_key(&k) {
                builder = builder.set_override(format!("{section}.{key}"), v).map_err(|e| ConfigError::Other(e.to_string()))?;
            }
        }
        let cfg = builder.build().map_err(config_error)?;
        let raw: BTreeMap<String, config::Value> = cfg.clone().try_deserialize().unwrap_or_default();
        let settings: Settings = cfg.try_deserialize().map_err(config_error)?;
        settings.log_unknown(&raw);
        Ok(settings)
    }

    /// Debug-logs the options present in the files that this worker does not use.
    fn log_unknown(&self, raw: &BTreeMap<String, config::Value>) {
        let known = serde_json::to_value(self).unwrap_or_default();
        for (section, table) in raw {
            let Ok(table) = table.clone().into_table() else {
                continue;
            };
            let known_section = known.get(section).and_then(|s| s.as_object());
            for key in table.keys() {
                if !known_section.is_some_and(|s| s.contains_key(key)) {
                    tracing::debug!(section = %section, key = %key, "ignoring unknown option");
                }
            }
        }
    }

    /// The effective configuration as INI text, with secrets masked (for `check-config`).
    pub fn to_masked_ini(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        let mut out = String::new();
        if let Some(sections) = v.as_object() {
            for (section, table) in sections {
                out.push_str(&format!("[{section}]\n"));
                if let Some(t) = table.as_object() {
                    for (k, v) in t {
                        let shown = match v {
                            serde_json::Value::Null => continue,
                            serde_json::Value::String(s) => mask_value(k, s),
                            serde_json::Value::Array(a) => a
                                .iter()
                                .map(|x| x.as_str().map(String::from).unwrap_or_else(|| x.to_string()))
                                .collect::<Vec<_>>()
                                .join(","),
                            other => other.to_string(),
                        };
                        out.push_str(&format!("{k} = {shown}\n"));
                    }
                }
                out.push('\n');
            }
        }
        out
    }

    /// Path of the embedded SQLite store.
    pub fn sqlite_path(&self) -> PathBuf {
        match &self.database.sqlite_path {
            Some(p) => PathBuf::from(p),
            None => Path::new(&self.default.state_path).join("zun-compute-rs.sqlite"),
        }
    }

    /// `[glance] images_directory`, default `$state_path/images`.
    pub fn glance_images_directory(&self) -> PathBuf {
        match self.glance.images_directory.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => Path::new(&self.default.state_path).join("images"),
        }
    }

    /// The heartbeat / inventory / sync period.
    pub fn periodic_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.default.periodic_interval_max.max(1))
    }
}

/// Masks secrets: whole values for secret keys, and the password part of URLs.
pub fn mask_value(key: &str, value: &str) -> String {
    if SECRET_KEYS.iter().any(|s| key.ends_with(s)) {
        return "***".into();
    }
    mask_url_password(value)
}

/// `scheme://user:secret@host` → `scheme://user:***@host` (every host of a multi-host URL).
pub fn mask_url_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_string();
    };
    let (head, rest) = value.split_at(scheme_end + 3);
    let (hosts, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let masked: Vec<String> = hosts
        .split(',')
        .map(|h| match h.rfind('@') {
            Some(at) => {
                let (cred, host) = h.split_at(at);
                match cred.find(':') {
                    Some(c) => format!("{}:***{}", &cred[..c], host),
                    None => h.to_string(),
                }
            }
            None => h.to_string(),
        })
        .collect();
    format!("{head}{}{tail}", masked.join(","))
}

/// `ZUN_DEFAULT__HOST` → (`DEFAULT`, `host`); other sections lower case.
fn env_key(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("ZUN_")?;
    let (section, key) = rest.split_once("__")?;
    if section.is_empty() || key.is_empty() {
        return None;
    }
    let section = if section.eq_ignore_ascii_case("DEFAULT") { "DEFAULT".to_string() } else { section.to_ascii_lowercase() };
    Some((section, key.to_ascii_lowercase()))
}

/// Turns the `config` crate's error into one naming the section, key, file and expected type.
/// One INI file already read, named as given on the command line.
#[derive(Debug, Clone)]
struct GivenFile {
    name: String,
    text: String,
}

impl config::Source for GivenFile {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        use config::Format;
        config::FileFormat::Ini
            .parse(Some(&self.name), &self.text)
            .map_err(|cause| config::ConfigError::FileParse { uri: Some(self.name.clone()), cause })
    }
}

fn config_error(e: config::ConfigError) -> ConfigError {
    match e {
        config::ConfigError::Type { origin, unexpected, expected, key } => {
            let key = key.unwrap_or_default();
            let (section, key) = match key.split_once('.') {
                Some((s, k)) => (s.to_string(), k.to_string()),
                None => (String::new(), key),
            };
            ConfigError::BadValue {
                section,
                key,
                origin: origin.map(|o| format!(" in {o}")).unwrap_or_default(),
                detail: format!("invalid value {unexpected}, expected {expected}"),
            }
        }
        other => ConfigError::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn env_keys_map_to_sections() {
        assert_eq!(env_key("ZUN_DEFAULT__HOST"), Some(("DEFAULT".into(), "host".into())));
        assert_eq!(
            env_key("ZUN_OSLO_MESSAGING_RABBIT__AMQP_DURABLE_QUEUES"),
            Some(("oslo_messaging_rabbit".into(), "amqp_durable_queues".into()))
        );
        assert_eq!(env_key("ZUNX"), None);
        assert_eq!(env_key("HOME"), None);
    }

    #[test]
    fn defaults_without_files() {
        let s = Settings::load::<&Path>(&[], Vec::new()).unwrap();
        assert_eq!(s.default.control_exchange, "zun");
        assert_eq!(s.compute.topic, "zun-compute");
        assert!(!s.default.host.is_empty());
        assert_eq!(s.oslo_messaging_rabbit.rabbit_transient_queues_ttl, 1800);
    }

    #[test]
    fn database_pool_options_as_oslo_db_names_them() {
        let d = Settings::load::<&Path>(&[], Vec::new()).unwrap().database;
        assert_eq!((d.max_pool_size, d.max_overflow, d.pool_timeout, d.connection_recycle_time), (5, 50, None, 3600.0));
        let f = write("[database]\nmax_pool_size = 2\nmax_overflow = 0\npool_timeout = 7.5\nconnection_recycle_time = 120\n");
        let d = Settings::load(&[f.path()], Vec::new()).unwrap().database;
        assert_eq!((d.max_pool_size, d.max_overflow, d.pool_timeout, d.connection_recycle_time), (2, 0, Some(7.5), 120.0));
        let p = crate::store::pool::PoolSettings::from_options(d.max_pool_size, d.max_overflow, d.pool_timeout, d.connection_recycle_time);
        assert_eq!(p.max_connections, 2);
        assert_eq!(p.acquire_timeout, std::time::Duration::from_millis(7500));
        assert_eq!(p.max_lifetime, Some(std::time::Duration::from_secs(120)));
    }

    #[test]
    fn later_files_and_env_override() {
        let a = write("[DEFAULT]\nhost = a\nperiodic_interval_max = 30\n[database]\nconnection = mysql+pymysql://zun:secret@127.0.0.1/zun?charset=utf8\n");
        let b = write("[DEFAULT]\nhost = b\n[oslo_messaging_notifications]\ndriver = messagingv2\ntopics = notifications,extra\n");
        let s =
            Settings::load(&[a.path(), b.path()], vec![("ZUN_OSLO_MESSAGING_RABBIT__AMQP_DURABLE_QUEUES".into(), "true".into())]).unwrap();
        assert_eq!(s.default.host, "b");
        assert_eq!(s.default.periodic_interval_max, 30);
        assert!(s.oslo_messaging_rabbit.amqp_durable_queues);
        assert_eq!(s.oslo_messaging_notifications.topics, vec!["notifications", "extra"]);
        let shown = s.to_masked_ini();
        assert!(shown.contains("mysql+pymysql://zun:***@127.0.0.1/zun?charset=utf8"), "{shown}");
        assert!(!shown.contains("secret"));
    }

    #[test]
    fn malformed_value_names_file_section_key() {
        let a = write("[DEFAULT]\nperiodic_interval_max = often\n");
        let err = Settings::load(&[a.path()], Vec::new()).unwrap_err().to_string();
        assert!(err.contains("periodic_interval_max"), "{err}");
        assert!(err.contains("DEFAULT"), "{err}");
        // Named exactly as given (absolute here), wherever the checkout or working directory is.
        assert!(err.contains(&format!(" in {}:", a.path().display())), "{err}");
    }

    #[test]
    fn malformed_value_names_a_relative_file_as_given() {
        // A path given relative to the working directory is named as given, not rewritten.
        let dir = tempfile::tempdir_in(".").unwrap();
        let name = dir.path().file_name().unwrap().to_string_lossy().to_string();
        let given = PathBuf::from(format!("./{name}/zun.conf"));
        std::fs::write(&given, "[DEFAULT]\nperiodic_interval_max = often\n").unwrap();
        let err = Settings::load(&[&given], Vec::new()).unwrap_err().to_string();
        assert!(err.contains(&format!(" in ./{name}/zun.conf:")), "{err}");
    }

    /// zun.conf as devstack's zun plugin writes it (options we don't use included).
    const DEVSTACK_CONF: &str = "\
[DEFAULT]
debug = True
transport_url = rabbit://stackrabbit:secretrabbit@10.0.0.5:5672/
use_syslog = False
state_path = /opt/stack/data/zun
container_driver = docker
capsule_driver = cri
image_driver_list = glance,docker
default_image_driver = docker
host = devstack-node

[database]
connection = mysql+pymysql://root:secretdb@127.0.0.1/zun?charset=utf8

[keystone_auth]
auth_type = password
password = secretks
username = zun

[oslo_concurrency]
lock_path = /opt/stack/data/zun

[docker]
docker_remote_api_host = 10.0.0.5
docker_remote_api_port = 2375
execute_timeout = 10

[websocket_proxy]
wsproxy_host = 10.0.0.5
wsproxy_port = 6784

[network]
driver = kuryr

[oslo_messaging_notifications]
driver = messagingv2

[compute]
host_shared_with_nova = False
";

    #[test]
    fn reads_a_devstack_zun_conf() {
        let a = write(DEVSTACK_CONF);
        let s = Settings::load(&[a.path()], Vec::new()).unwrap();
        assert_eq!(s.default.host, "devstack-node");
        assert!(s.default.debug);
        assert_eq!(s.default.state_path, "/opt/stack/data/zun");
        assert_eq!(s.default.transport_url.as_ref().map(Secret::expose), Some("rabbit://stackrabbit:secretrabbit@10.0.0.5:5672/"));
        assert_eq!(s.database.connection.as_ref().map(Secret::expose), Some("mysql+pymysql://root:secretdb@127.0.0.1/zun?charset=utf8"));
        assert_eq!(s.docker.docker_remote_api_host.as_deref(), Some("10.0.0.5"));
        assert_eq!(s.docker.execute_timeout, 10);
        assert!(s.oslo_messaging_notifications.enabled());
        assert_eq!(s.sqlite_path(), PathBuf::from("/opt/stack/data/zun/zun-compute-rs.sqlite"));
        let shown = s.to_masked_ini();
        for secret in ["secretrabbit", "secretdb", "secretks"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn env_overrides_a_file() {
        let a = write("[DEFAULT]\nhost = from-file\n[compute]\nmax_concurrent_operations = 4\n");
        let s = Settings::load(
            &[a.path()],
            vec![
                ("ZUN_DEFAULT__HOST".into(), "from-env".into()),
                ("ZUN_COMPUTE__MAX_CONCURRENT_OPERATIONS".into(), "9".into()),
                ("HOME".into(), "/root".into()),
            ],
        )
        .unwrap();
        assert_eq!(s.default.host, "from-env");
        assert_eq!(s.compute.max_concurrent_operations, 9);
    }

    #[test]
    fn malformed_env_value_names_section_and_key() {
        let err = Settings::load::<&Path>(&[], vec![("ZUN_COMPUTE__PREFETCH".into(), "lots".into())]).unwrap_err().to_string();
        assert!(err.contains("[compute] prefetch"), "{err}");
    }

    #[test]
    fn masks_multi_host_urls() {
        assert_eq!(mask_url_password("rabbit://u:p1@h1:5672,u:p2@h2:5672/vh"), "rabbit://u:***@h1:5672,u:***@h2:5672/vh");
        assert_eq!(mask_value("default_registry_password", "x"), "***");
    }

    #[test]
    fn debug_of_settings_never_shows_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zun.conf");
        std::fs::write(
            &p,
            "[DEFAULT]\ntransport_url = rabbit://zun:Rabbit-Pw-1@h1:5672,zun:Rabbit-Pw-2@h2/vh\nauth_encryption_key = Key-Pw-3\n\
             [database]\nconnection = mysql+pymysql://zun:Db-Pw-4@db/zun?charset=utf8\n\
             [docker]\ndefault_registry_password = Registry-Pw-5\n\
             [oslo_messaging_notifications]\ntransport_url = rabbit://n:Notif-Pw-6@h/\n",
        )
        .unwrap();
        let s = Settings::load(&[&p], Vec::new()).unwrap();
        let shown = format!("{s:?} {s:#?} {}", s.to_masked_ini());
        for pw in ["Rabbit-Pw-1", "Rabbit-Pw-2", "Key-Pw-3", "Db-Pw-4", "Registry-Pw-5", "Notif-Pw-6"] {
            assert!(!shown.contains(pw), "{pw} printed: {shown}");
        }
        // The values are still there for the connections that need them.
        assert_eq!(s.docker.default_registry_password.as_ref().map(Secret::expose), Some("Registry-Pw-5"));
        assert!(s.to_masked_ini().contains("rabbit://zun:***@h1:5672,zun:***@h2/vh"));
        // A password with a raw `/` or `@` in it is not half-masked.
        assert_eq!(Secret::new("rabbit://u:pa/ss@h/").masked(), "rabbit://***");
    }
}
