//! Child processes skiff starts (the demo's and bench's sink and generator): stopped by
//! their own PID only, killed and reaped if still running when the guard goes.

use std::{
    io::Read,
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde_json::Value;

/// Kills (SIGKILL) and reaps a child we started, by its PID, if it is still running.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

pub fn signal(child: &Child, sig: i32) {
    // The `kill` binary instead of libc::kill keeps this crate free of unsafe; the PID
    // is one of our own children, still unreaped, so it cannot have been reused.
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

pub fn wait_timeout(
    child: &mut Child,
    timeout: Duration,
) -> Result<Option<std::process::ExitStatus>> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn read_json(child: &mut Child, who: &str) -> Result<Value> {
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    serde_json::from_str(out.trim())
        .with_context(|| format!("{who} printed no report (output: {:?})", out.trim()))
}

/// Starts `cmd` (which must create `ready` once it is ready) and waits for the file, at
/// most `timeout`. Fails if the child exits first or a stop was requested.
pub fn start_ready(
    mut cmd: Command,
    ready: &std::path::Path,
    timeout: Duration,
    stop: &std::sync::atomic::AtomicBool,
    who: &str,
) -> Result<ChildGuard> {
    let _ = std::fs::remove_file(ready);
    let mut guard = ChildGuard(Some(
        cmd.spawn().with_context(|| format!("starting the {who}"))?,
    ));
    let start = Instant::now();
    while !ready.exists() {
        let c = guard.0.as_mut().context("child")?;
        if let Some(st) = c.try_wait()? {
            anyhow::bail!("the {who} exited before it was ready ({st})");
        }
        if start.elapsed() > timeout || stop.load(std::sync::atomic::Ordering::Relaxed) {
            anyhow::bail!("the {who} did not get ready within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(ready);
    Ok(guard)
}

/// A private directory (mode 0700, created exclusively, so no other user can plant a file
/// or symlink in it), removed with its contents when dropped.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        for attempt in 0..16u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p = std::env::temp_dir().join(format!(
                "{prefix}-{}-{nanos:x}{attempt}",
                std::process::id()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
            }
        }
        anyhow::bail!("could not create a private temporary directory")
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits for `child` like [`wait_timeout`], forwarding SIGINT to it once `stop` is set (a
/// SIGTERM to skiff itself, say), so the whole run winds down and tears down.
pub fn wait_or_stop(
    child: &mut Child,
    timeout: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Option<std::process::ExitStatus>> {
    let end = Instant::now() + timeout;
    let mut forwarded = false;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if !forwarded && stop.load(std::sync::atomic::Ordering::Relaxed) {
            signal(child, 2);
            forwarded = true;
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
