//! zun's mount points: `<volume_dir>/<volume uuid>` (zun's `mount.get_mountpoint`).
//!
//! - local volumes: the decoded contents written to `<mountpoint>/<uuid>`, a file the
//!   container gets as a bind mount; removed (the whole mount point) on detach;
//! - block devices (Cinder): formatted with `[volume] fstype` when `mount` refuses an
//!   empty device (zun's `do_mount`), mounted on the mount point, unmounted and the mount
//!   point removed on detach.
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("invalid volume uuid {0:?}: it must be a UUID")]
    BadUuid(String),
    #[error("invalid device path {0:?}: it must be an absolute path under /dev")]
    BadDevice(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Unexpected error while {what}. Devpath: {device}, Mountpoint: {mountpoint}, Error: {detail}")]
    Command { what: &'static str, device: String, mountpoint: String, detail: String },
}

/// How long one mount/mkfs/umount may run before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The mount point root (`[volume] volume_dir`).
#[derive(Debug, Clone)]
pub struct MountPoints {
    root: PathBuf,
}

/// A UUID in its canonical text form (what zun's UUIDField writes): 36 characters,
/// hex digits and dashes at 8-4-4-4-12; never `..`, `/` or anything else.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.bytes().enumerate().all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() })
}

impl MountPoints {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        MountPoints { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<volume_dir>/<uuid>`, only for a canonical UUID.
    pub fn mountpoint(&self, volume_uuid: &str) -> Result<PathBuf, HostError> {
        if !is_uuid(volume_uuid) {
            return Err(HostError::BadUuid(volume_uuid.chars().take(64).collect()));
        }
        Ok(self.root.join(volume_uuid))
    }

    /// The file a local volume is bound from: `<mountpoint>/<uuid>`.
    pub fn local_file(&self, volume_uuid: &str) -> Result<PathBuf, HostError> {
        Ok(self.mountpoint(volume_uuid)?.join(volume_uuid))
    }

    /// zun's `Local.attach`: the mount point made, the contents written to its file.
    pub async fn write_local(&self, volume_uuid: &str, contents: &[u8]) -> Result<PathBuf, HostError> {
        let dir = self.mountpoint(volume_uuid)?;
        tokio::fs::create_dir_all(&dir).await.map_err(|source| io("creating", &dir, source))?;
        let file = dir.join(volume_uuid);
        tokio::fs::write(&file, contents).await.map_err(|source| io("writing", &file, source))?;
        Ok(file)
    }

    /// Removes the mount point and what is in it (zun's `shutil.rmtree`); never follows a
    /// mount: a directory still mounted is unmounted first by the caller. Gone already is fine.
    pub async fn remove(&self, volume_uuid: &str) -> Result<(), HostError> {
        let dir = self.mountpoint(volume_uuid)?;
        if self.is_mounted(&dir).await {
            return Err(HostError::Command {
                what: "removing a mount point",
                device: "-".into(),
                mountpoint: dir.display().to_string(),
                detail: "still mounted".into(),
            });
        }
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(io("removing", &dir, source)),
        }
    }

    /// Whether `dir` is a mount point now (`/proc/self/mountinfo`, field 5).
    pub async fn is_mounted(&self, dir: &Path) -> bool {
        let Ok(text) = tokio::fs::read_to_string("/proc/self/mountinfo").await else { return false };
        let want = dir.to_string_lossy();
        text.lines().filter_map(|l| l.split(' ').nth(4)).any(|m| unescape_mount(m) == want)
    }

    /// zun's `do_mount`: nothing when mounted already; `mount -t fstype`; when that fails
    /// (an empty device), `mkfs -t fstype -F` and mount again.
    pub async fn mount_device(&self, device: &str, volume_uuid: &str, fstype: &str) -> Result<PathBuf, HostError> {
        self.mount(device, volume_uuid, fstype, true).await
    }

    /// Mounts a device that already holds the volume's data (a remount after a restart):
    /// nothing when mounted already; a device that will not mount is an error, never
    /// formatted (zun's `do_mount` would format it and lose the data).
    pub async fn remount_device(&self, device: &str, volume_uuid: &str, fstype: &str) -> Result<PathBuf, HostError> {
        self.mount(device, volume_uuid, fstype, false).await
    }

    async fn mount(&self, device: &str, volume_uuid: &str, fstype: &str, format_if_needed: bool) -> Result<PathBuf, HostError> {
        check_device(device)?;
        let dir = self.mountpoint(volume_uuid)?;
        tokio::fs::create_dir_all(&dir).await.map_err(|source| io("creating", &dir, source))?;
        if self.is_mounted(&dir).await {
            return Ok(dir);
        }
        let mp = dir.to_string_lossy().to_string();
        let first = run("mount block device", device, &mp, "mount", &["-t", fstype, device, &mp]).await;
        if first.is_ok() || !format_if_needed {
            return first.map(|()| dir);
        }
        tracing::info!(device, fstype, "formatting an empty device");
        run("make filesystem", device, &mp, "mkfs", &["-t", fstype, "-F", device]).await?;
        run("mount block device", device, &mp, "mount", &["-t", fstype, device, &mp]).await?;
        Ok(dir)
    }

    /// zun's `do_unmount`: `umount` when mounted.
    pub async fn unmount(&self, volume_uuid: &str) -> Result<(), HostError> {
        let dir = self.mountpoint(volume_uuid)?;
        if !self.is_mounted(&dir).await {
            return Ok(());
        }
        let mp = dir.to_string_lossy().to_string();
        run("unmount", "-", &mp, "umount", &[&mp]).await
    }
}

/// A device path from a connection: absolute, under /dev, no `..`.
pub fn check_device(device: &str) -> Result<(), HostError> {
    let p = Path::new(device);
    let ok = device.len() <= 255
        && p.is_absolute()
        && p.starts_with("/dev/")
        && p.components().all(|c| !matches!(c, std::path::Component::ParentDir))
        && !device.contains(['\0', '\n']);
    if ok {
        Ok(())
    } else {
        Err(HostError::BadDevice(device.chars().take(64).collect()))
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> HostError {
    HostError::Io { what, path: path.display().to_string(), source }
}

async fn run(what: &'static str, device: &str, mountpoint: &str, prog: &str, args: &[&str]) -> Result<(), HostError> {
    let err = |detail: String| HostError::Command { what, device: device.into(), mountpoint: mountpoint.into(), detail };
    // The worker may run with a PATH without the sbin directories.
    let exe = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(prog));
    let out = tokio::time::timeout(COMMAND_TIMEOUT, Command::new(exe).args(args).kill_on_drop(true).output())
        .await
        .map_err(|_| err(format!("{prog} did not finish in {} s", COMMAND_TIMEOUT.as_secs())))?
        .map_err(|e| err(format!("{prog}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(err(format!("{prog} exited with {}: {}", out.status, stderr.trim().chars().take(500).collect::<String>())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_uuids_name_a_mount_point() {
        let m = MountPoints::new("/var/lib/zun/mnt");
        assert_eq!(
            m.mountpoint("0e9f6b3c-58a4-4b39-9a1d-3f1f6a1c2b7d").unwrap(),
            Path::new("/var/lib/zun/mnt/0e9f6b3c-58a4-4b39-9a1d-3f1f6a1c2b7d")
        );
        for bad in
            ["..", "../../etc", "", "0e9f6b3c-58a4-4b39-9a1d-3f1f6a1c2b7/", "0e9f6b3c/58a4-4b39-9a1d-3f1f6a1c2b7d", "a".repeat(36).as_str()]
        {
            assert!(m.mountpoint(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn devices_must_be_under_dev() {
        assert!(check_device("/dev/loop3").is_ok());
        for bad in ["/etc/passwd", "dev/loop0", "/dev/../etc/shadow", "", "/dev/loop0\n"] {
            assert!(check_device(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[tokio::test]
    async fn local_contents_are_written_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let m = MountPoints::new(dir.path());
        let u = "0e9f6b3c-58a4-4b39-9a1d-3f1f6a1c2b7d";
        let f = m.write_local(u, b"hello").await.unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"hello");
        m.remove(u).await.unwrap();
        assert!(!dir.path().join(u).exists());
        m.remove(u).await.unwrap();
    }
}
