//! The host's own filesystem and block devices: the only code that creates, mounts or
//! removes anything under zun's volume mount point (`[volume] volume_dir`) or runs
//! `mount`, `umount`, `mkfs` and `blkid`. It knows nothing of zun's objects: callers hand
//! it a volume uuid (checked here again: it names a directory) and device paths.
pub mod mounts;

pub use mounts::{HostError, MountPoints};
