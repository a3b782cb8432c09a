//! A real `redis-server` on a free loopback port, for the clustered-bus
//! tests. Persistence is off, so a restart starts empty, as a Redis that
//! lost its memory would.

use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ports::free_port;
use crate::process::Process;

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Redis; killed on drop.
pub struct Redis {
    process: Option<Process>,
    port: u16,
}

impl Redis {
    /// Starts Redis on a free port and waits until it answers `PING`.
    pub async fn start() -> Self {
        let mut redis = Self {
            process: None,
            port: free_port(),
        };
        redis.restart().await;
        redis
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, for a client suite that stops Redis itself.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Kills Redis at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts Redis again on the same port (killing it first if it runs).
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            std::path::Path::new(REDIS_SERVER).is_file(),
            "{REDIS_SERVER} is missing: run scripts/test.sh, which installs the redis-server package"
        );
        let mut command = Command::new(REDIS_SERVER);
        command.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        let mut process = Process::spawn("redis-server", command).expect("start redis-server");
        let started = Instant::now();
        while !self
            .command(&["PING"])
            .await
            .is_ok_and(|reply| reply == "+PONG")
        {
            if let Some(status) = process.exit_status() {
                panic!("redis-server exited ({status}):\n{}", process.output());
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "redis-server did not answer PING within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.process = Some(process);
    }

    /// Sends one command and returns the first line of the reply (enough for
    /// status replies and counts).
    pub async fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).await?;
        let mut reply = vec![0; 4096];
        let n = stream.read(&mut reply).await?;
        let reply = String::from_utf8_lossy(&reply[..n]);
        Ok(reply.lines().next().unwrap_or_default().to_owned())
    }
}
