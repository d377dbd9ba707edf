//! The service scripts' pid files (`scripts/lib/common.sh`, `pid_of`). A pid file outlives
//! its process when a machine or a CI container restarts with the state directory kept,
//! and the kernel hands the pid to someone else. `openstack.sh up` once took such a file
//! for a hung zun-api of its own and killed the process that now had the pid (MariaDB).
//! `pid_of` names a pid only when the process behind it started before the file was last
//! written; these tests drive the real function in bash against real processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn common_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib/common.sh")
}

/// Runs `pid_of FILE` in bash with the project's helpers sourced; its stdout, trimmed.
fn pid_of(file: &Path) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"set -euo pipefail; ME=test; source "$1"; pid_of "$2""#)
        .arg("bash")
        .arg(common_sh())
        .arg(file)
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "pid_of failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// Sets a file's modification time to `ago` before now (coreutils `touch -d`).
fn age(file: &Path, ago: &str) {
    let st = Command::new("touch").arg("-d").arg(ago).arg(file).status().expect("touch runs");
    assert!(st.success());
}

struct Sleeper(Child);
impl Sleeper {
    fn start() -> Self {
        Sleeper(Command::new("sleep").arg("300").stdin(Stdio::null()).spawn().expect("sleep runs"))
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}
impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn temp_pidfile(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zunrs-pidfiles-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("svc.pid")
}

#[test]
fn a_pid_file_written_after_its_process_started_names_it() {
    let p = Sleeper::start();
    let f = temp_pidfile("fresh");
    std::fs::write(&f, format!("{}\n", p.pid())).unwrap();
    assert_eq!(pid_of(&f), p.pid().to_string());
}

#[test]
fn a_live_process_younger_than_the_pid_file_is_not_named() {
    // the CI failure: the file is from an earlier run, the pid now belongs to a process
    // started since; the caller must not take it for its own (and kill it)
    let p = Sleeper::start();
    let f = temp_pidfile("stale");
    std::fs::write(&f, format!("{}\n", p.pid())).unwrap();
    age(&f, "1 hour ago");
    assert_eq!(pid_of(&f), "", "a stale pid file named a process started after it");
}

#[test]
fn a_dead_pid_is_still_named_so_callers_see_it_exit() {
    // wait_for reports "process N exited" for a daemon that died at once; that needs its pid
    let f = temp_pidfile("dead");
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    std::fs::write(&f, format!("{pid}\n")).unwrap();
    assert_eq!(pid_of(&f), pid.to_string());
}

#[test]
fn a_pid_file_that_is_not_a_number_names_nobody() {
    for junk in ["", "x1\n", "1 2\n", "-1\n", "$(reboot)\n", "12abc"] {
        let f = temp_pidfile("junk");
        std::fs::write(&f, junk).unwrap();
        assert_eq!(pid_of(&f), "", "pid file {junk:?}");
    }
    assert_eq!(pid_of(Path::new("/nonexistent/zunrs.pid")), "");
}
