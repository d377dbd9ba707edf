//! What the operations take from zun.conf, derived once at start ([`ComputeSettings::from_settings`]):
//! operations read these, never `Settings` sections, so each default and each fallback
//! (`docker_remote_api_host`, else `my_ip`, else 127.0.0.1) is decided in one place.
use crate::config::{Secret, Settings};
use std::time::Duration;

/// The compute side of zun.conf, as the operations use it.
#[derive(Clone, PartialEq)]
pub struct ComputeSettings {
    /// `[DEFAULT] default_disk` (GB) for a container without `disk` on a host with quotas.
    pub default_disk_gb: i64,
    /// `[DEFAULT] default_memory_swap`: Docker's `MemorySwap` when memory is updated.
    pub default_memory_swap: i64,
    /// `[DEFAULT] container_runtime`.
    pub default_runtime: String,
    /// `[docker] default_network`: the network of containers without Neutron networks.
    pub default_network: String,
    /// `[docker] default_registry`, and the login zun uses for it (username, password).
    pub default_registry: Option<String>,
    registry_login: Option<(String, Secret)>,
    /// `[docker] execute_timeout` (at least 1 s): how long a run-now exec may take.
    pub exec_timeout: Duration,
    /// `[docker] default_timeout` (seconds): the stop timeout recovery resumes a reboot with.
    pub stop_timeout_s: u64,
    /// The Docker API an exec's websocket reaches (`[docker] docker_remote_api_url`, else
    /// `tcp://<console host>:<docker_remote_api_port>`).
    pub remote_api_url: String,
    /// `ws://<console host>:<port>/v<version>`: the prefix of attach URLs.
    attach_base: String,
    /// `[volume]`: where volumes are mounted, how devices are formatted, how long to wait.
    pub volume: VolumeSettings,
}

/// `[volume]`, resolved (`$state_path` replaced).
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSettings {
    /// zun's mount point root: `<volume_dir>/<volume uuid>`.
    pub volume_dir: std::path::PathBuf,
    pub fstype: String,
    pub drivers: Vec<String>,
    pub use_multipath: bool,
    pub wait_available: Duration,
    pub wait_deleted: Duration,
}

impl ComputeSettings {
    pub fn from_settings(s: &Settings) -> Self {
        let d = &s.docker;
        let console_host = d.docker_remote_api_host.clone().or_else(|| s.default.my_ip.clone()).unwrap_or_else(|| "127.0.0.1".into());
        ComputeSettings {
            default_disk_gb: s.default.default_disk,
            default_memory_swap: s.default.default_memory_swap,
            default_runtime: s.default.container_runtime.clone(),
            default_network: d.default_network.clone(),
            default_registry: d.default_registry.clone(),
            registry_login: d
                .default_registry_username
                .clone()
                .map(|u| (u, d.default_registry_password.clone().unwrap_or_else(|| Secret::new("")))),
            exec_timeout: Duration::from_secs(d.execute_timeout.max(1)),
            stop_timeout_s: d.default_timeout,
            remote_api_url: d.docker_remote_api_url.clone().unwrap_or_else(|| format!("tcp://{console_host}:{}", d.docker_remote_api_port)),
            attach_base: format!("ws://{console_host}:{}/v{}", d.docker_remote_api_port, d.docker_remote_api_version),
            volume: VolumeSettings {
                volume_dir: s
                    .volume
                    .volume_dir
                    .replace("$state_path", &s.default.state_path)
                    .replace("${state_path}", &s.default.state_path)
                    .into(),
                fstype: s.volume.fstype.clone(),
                drivers: s.volume.driver_list.clone(),
                use_multipath: s.volume.use_multipath,
                wait_available: Duration::from_secs(s.volume.timeout_wait_volume_available),
                wait_deleted: Duration::from_secs(s.volume.timeout_wait_volume_deleted),
            },
        }
    }

    /// The websocket URL zun-api hands out for attaching to Docker container `id`.
    pub fn attach_url(&self, id: &str) -> String {
        format!("{}/containers/{id}/attach/ws?logs=0&stream=1&stdin=1&stdout=1&stderr=1", self.attach_base)
    }

    /// `[docker] default_registry_username` / `_password`, for pulls from the default registry.
    pub fn registry_login(&self) -> Option<(&str, &str)> {
        self.registry_login.as_ref().map(|(u, p)| (u.as_str(), p.expose()))
    }
}

/// Never prints the registry password.
impl std::fmt::Debug for ComputeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeSettings")
            .field("default_disk_gb", &self.default_disk_gb)
            .field("default_memory_swap", &self.default_memory_swap)
            .field("default_runtime", &self.default_runtime)
            .field("default_network", &self.default_network)
            .field("default_registry", &self.default_registry)
            .field("registry_user", &self.registry_login.as_ref().map(|(u, _)| u))
            .field("exec_timeout", &self.exec_timeout)
            .field("stop_timeout_s", &self.stop_timeout_s)
            .field("remote_api_url", &self.remote_api_url)
            .field("attach_base", &self.attach_base)
            .field("volume", &self.volume)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ini: &str) -> ComputeSettings {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zun.conf");
        std::fs::write(&p, ini).unwrap();
        ComputeSettings::from_settings(&Settings::load(&[&p], Vec::new()).unwrap())
    }

    #[test]
    fn console_host_falls_back_from_remote_api_host_to_my_ip_to_loopback() {
        let c = settings("[DEFAULT]\nmy_ip = 10.0.0.7\n[docker]\ndocker_remote_api_host = 10.0.0.5\ndocker_remote_api_port = 2375\n");
        assert_eq!(c.remote_api_url, "tcp://10.0.0.5:2375");
        assert!(c.attach_url("abc").starts_with("ws://10.0.0.5:2375/v"), "{}", c.attach_url("abc"));
        let c = settings("[DEFAULT]\nmy_ip = 10.0.0.7\n");
        assert!(c.remote_api_url.starts_with("tcp://10.0.0.7:"), "{}", c.remote_api_url);
        let c = settings("");
        assert!(c.remote_api_url.starts_with("tcp://127.0.0.1:"), "{}", c.remote_api_url);
        assert!(c.attach_url("abc").ends_with("/containers/abc/attach/ws?logs=0&stream=1&stdin=1&stdout=1&stderr=1"));
        let c = settings("[docker]\ndocker_remote_api_url = tcp://docker.example:2376\n");
        assert_eq!(c.remote_api_url, "tcp://docker.example:2376");
    }

    #[test]
    fn exec_timeout_is_at_least_a_second_and_the_password_never_prints() {
        let c = settings(
            "[docker]\nexecute_timeout = 0\ndefault_registry = reg:5000\ndefault_registry_username = u\ndefault_registry_password = Sup3rSecret\n",
        );
        assert_eq!(c.exec_timeout, Duration::from_secs(1));
        assert_eq!(c.registry_login(), Some(("u", "Sup3rSecret")));
        assert!(!format!("{c:?}").contains("Sup3rSecret"));
    }
}
