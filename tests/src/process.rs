//! Child processes under test.
//!
//! Each child runs in its own process group so that killing it also ends
//! anything it started (node's test runner starts a process per test file).
//! Its stdout and stderr are captured; when the handle is dropped the group
//! is killed and the captured output is written to the test's output, which
//! the test harness shows only when the test fails.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use parking_lot::Mutex;

/// A running child process, killed with its whole process group on drop.
pub struct Process {
    name: String,
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `command` with stdin closed and stdout/stderr captured.
    pub fn spawn(name: impl Into<String>, mut command: Command) -> std::io::Result<Self> {
        let name = name.into();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn()?;
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::with_capacity(2);
        if let Some(stdout) = child.stdout.take() {
            readers.push(capture(stdout, Arc::clone(&output)));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(capture(stderr, Arc::clone(&output)));
        }
        Ok(Self {
            name,
            child,
            output,
            readers,
            status: None,
        })
    }

    /// The name given at spawn, used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operating system's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process (not its group), e.g. SIGTERM to ask
    /// for a graceful stop.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits in i32"));
        // ESRCH when it already ended; the caller checks how it ended.
        let _ = nix::sys::signal::kill(pid, signal);
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().clone()
    }

    /// Takes everything captured so far, so it is not repeated on drop.
    pub fn take_output(&mut self) -> String {
        std::mem::take(&mut *self.output.lock())
    }

    /// The exit status if the process has ended.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the process to end by itself; on return the
    /// captured output is complete. `None` if it is still running.
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                self.finish_capture();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process group with SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let pgid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits in i32"));
        // The group may already be gone (ESRCH); nothing else can fail here.
        let _ = killpg(pgid, Signal::SIGKILL);
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
        self.finish_capture();
    }

    /// Lets the readers drain what is left in the pipes, without waiting
    /// forever on a descendant that escaped the group and kept them open.
    fn finish_capture(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.readers.iter().any(|reader| !reader.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        let output = self.output();
        if !output.is_empty() {
            // Shown by the test harness only for a failing test.
            eprintln!(
                "----- output of {} -----\n{output}----- end of {} -----",
                self.name, self.name
            );
        }
    }
}

fn capture(pipe: impl Read + Send + 'static, output: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => output.lock().push_str(&String::from_utf8_lossy(&line)),
            }
        }
    })
}

/// The environment of a process under test: no `SWITCHBOARD_*` settings
/// from the developer's shell, `RUST_LOG` as given (default `info`), and
/// plain logs, since they end up in test output rather than on a terminal.
pub(crate) fn isolate_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            command.env_remove(key);
        }
    }
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    command.env("RUST_LOG", log).env("NO_COLOR", "1");
}
