//! The service scripts' pid files (`scripts/lib/common.sh`, `pid_of`). A pid file outlives
//! its process when a machine or a CI container restarts with the state directory kept,
//! and the kernel hands the pid to someone else. `openstack.sh up` once took such a file
//! for a hung zun-api of its own and killed the process that now had the pid (MariaDB).
//! `pid_of` names a pid when the record beside the file (`record_pid`: boot id and the
//! process's start tick) matches the live process, and, for a file with no record, only
//! when the process behind it started before the file was last written. A wall clock
//! stepped forward once made every pid file of a running stack fail that second check.
//! These tests drive the real functions in bash against real processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn common_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib/common.sh")
}

/// Runs one of common.sh's functions in bash with the project's helpers sourced; its
/// stdout, trimmed.
fn common_fn(name: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"set -euo pipefail; ME=test; source "$1"; f=$2; shift 2; "$f" "$@""#)
        .arg("bash")
        .arg(common_sh())
        .arg(name)
        .args(args)
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{name} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// `pid_of FILE`
fn pid_of(file: &Path) -> String {
    common_fn("pid_of", &[file.as_os_str()])
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

/// `record_pid FILE PID`
fn record_pid(file: &Path, pid: u32) {
    common_fn("record_pid", &[file.as_os_str(), pid.to_string().as_ref()]);
}

fn id_file(f: &Path) -> PathBuf {
    PathBuf::from(format!("{}.id", f.display()))
}

#[test]
fn a_recorded_pid_is_named_after_the_wall_clock_stepped() {
    // a wall clock stepped forward after the stack started makes a live process look
    // younger than its pid file (what the times of both files being an hour old stand
    // for); the record (boot id, start tick) needs no clock, so the process is still ours
    let p = Sleeper::start();
    let f = temp_pidfile("stepped");
    record_pid(&f, p.pid());
    age(&f, "1 hour ago");
    age(&id_file(&f), "1 hour ago");
    assert_eq!(pid_of(&f), p.pid().to_string());
}

#[test]
fn a_record_of_another_process_with_the_same_pid_names_nobody() {
    // the pid was reused (another boot, another pid namespace): the live process's start
    // tick is not the recorded one
    let p = Sleeper::start();
    let f = temp_pidfile("reused");
    std::fs::write(&f, format!("{}\n", p.pid())).unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    std::fs::write(id_file(&f), format!("{} {} 1\n", p.pid(), boot.trim())).unwrap();
    assert_eq!(pid_of(&f), "", "a record of another process named the live one");
    std::fs::write(id_file(&f), format!("{} not-this-boot 1\n", p.pid())).unwrap();
    assert_eq!(pid_of(&f), "");
}

#[test]
fn a_daemons_own_pid_file_is_recorded_once_it_passes() {
    // a pid file the daemon wrote itself has no record: the clock check decides once,
    // then the record does, so a later clock step cannot make it look stale
    let p = Sleeper::start();
    let f = temp_pidfile("daemon");
    std::fs::write(&f, format!("{}\n", p.pid())).unwrap();
    assert_eq!(pid_of(&f), p.pid().to_string());
    let rec = std::fs::read_to_string(id_file(&f)).expect("pid_of wrote a record");
    assert!(rec.starts_with(&format!("{} ", p.pid())), "{rec}");
    age(&f, "1 hour ago");
    age(&id_file(&f), "1 hour ago");
    assert_eq!(pid_of(&f), p.pid().to_string());
}
