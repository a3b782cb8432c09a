//! Worker processes: the generator re-runs itself as `switchboard-bench
//! worker` children so clients spread over several processes (each has its
//! own open-file limit and runtime). The parent writes one [`Job`] and then
//! [`Command`]s to a worker's stdin as JSON lines; the worker answers on
//! stdout with one JSON line per job or command ([`Connected`], [`Window`]).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command as Process};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::client::{self, Client, Mode, Options, Record, Target};
use super::stack::Usage;
use super::stats::{Histogram, Part, Window};

/// `SO_RCVBUF` of clients that will stop reading: small, so the proxy's
/// queue for them fills soon after they stop.
const SLOW_RECEIVE_BUFFER: u32 = 4096;

/// What one worker connects and how its clients behave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Where to connect.
    pub target: Target,
    /// Global index of this worker's first client (users are `u{index}`).
    pub first: u64,
    /// Clients to connect.
    pub count: u64,
    /// Spread clients over source addresses 127.0.0.2 ..= 127.0.0.(1+N);
    /// 0 lets the kernel choose.
    pub sources: u8,
    /// Connects in flight at once.
    pub concurrency: usize,
    /// Client pings this often (keeps the proxy's client timeout happy);
    /// `None` sends none.
    pub ping_every_ms: Option<u64>,
    /// For each size S, client `i` joins group `s{S}-{i / S}`.
    pub group_sizes: Vec<u64>,
    /// Clients whose index is a multiple of this are slow consumers: they
    /// stop reading on [`Command::Pause`].
    pub slow_every: Option<u64>,
    /// Keep clients for [`Command::Echo`] instead of receiving.
    pub echo: bool,
}

/// The worker's answer to its [`Job`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Connected {
    /// Clients connected (and in their groups).
    pub ok: u64,
    /// Clients that failed to connect.
    pub failed: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Time per connect (negotiate, token, upgrade, handshake), microseconds.
    pub connect_us: Histogram,
    /// From the first connect to the last.
    pub seconds: f64,
    /// Resident memory of the worker processes once connected, KiB.
    pub rss_kib: u64,
}

impl Connected {
    fn merge(&mut self, other: &Self) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.connect_us.merge(&other.connect_us);
        self.seconds = self.seconds.max(other.seconds);
        self.rss_kib += other.rss_kib;
    }
}

/// Commands after the job; each is answered with a [`Window`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Command {
    /// Report what was received since the last report, and start afresh.
    Collect,
    /// Slow clients stop reading.
    Pause,
    /// Slow clients read again.
    Resume,
    /// Every client invokes `Echo` back to back for `seconds` with `size`
    /// bytes of padding.
    Echo {
        /// How long.
        seconds: f64,
        /// Padding bytes.
        size: usize,
    },
}

/// The parent's handle on its workers.
pub struct Pool {
    workers: Vec<Worker>,
}

struct Worker {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Pool {
    /// Starts one worker per job (running `exe worker`) and waits until all
    /// have connected their clients.
    pub async fn start(exe: &Path, jobs: &[Job]) -> Result<(Self, Connected)> {
        let mut workers = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut child = Process::new(exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting worker {}", exe.display()))?;
            let mut stdin = child.stdin.take().context("worker stdin")?;
            let stdout = BufReader::new(child.stdout.take().context("worker stdout")?).lines();
            stdin.write_all(line(job)?.as_bytes()).await?;
            workers.push(Worker {
                _child: child,
                stdin,
                stdout,
            });
        }
        let mut pool = Self { workers };
        let mut connected = Connected::default();
        for reply in pool.replies::<Connected>().await? {
            connected.merge(&reply);
        }
        Ok((pool, connected))
    }

    /// Sends `command` to every worker and merges their windows.
    pub async fn command(&mut self, command: &Command) -> Result<Window> {
        let text = line(command)?;
        for worker in &mut self.workers {
            worker.stdin.write_all(text.as_bytes()).await?;
        }
        let mut window = Window::default();
        for reply in self.replies::<Window>().await? {
            window.merge(&reply);
        }
        Ok(window)
    }

    async fn replies<T: DeserializeOwned>(&mut self) -> Result<Vec<T>> {
        let mut replies = Vec::with_capacity(self.workers.len());
        for (i, worker) in self.workers.iter_mut().enumerate() {
            let Some(text) = worker.stdout.next_line().await? else {
                bail!("worker {i} exited (its errors are above)");
            };
            replies.push(
                serde_json::from_str(&text)
                    .with_context(|| format!("worker {i} answered {text:?}"))?,
            );
        }
        Ok(replies)
    }
}

fn line(value: &impl Serialize) -> Result<String> {
    let mut text = serde_json::to_string(value)?;
    text.push('\n');
    Ok(text)
}

/// The worker process: reads its job, connects, answers commands until
/// stdin closes.
pub async fn run() -> Result<()> {
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    let job: Job = serde_json::from_str(&input.next_line().await?.context("no job on stdin")?)?;
    let window = Arc::new(Mutex::new(Window::default()));
    let (slow_mode, _) = watch::channel(Mode::Read);
    // Dropping this sender tells every receiving client to stop.
    let (all_mode, _) = watch::channel(Mode::Read);
    let (connected, mut clients) = connect_all(&job).await;
    say(&connected)?;
    let mut receivers = JoinSet::new();
    if !job.echo {
        for (index, client) in clients.drain(..) {
            let slow = job
                .slow_every
                .is_some_and(|every| index.is_multiple_of(every));
            let mode = if slow {
                slow_mode.subscribe()
            } else {
                all_mode.subscribe()
            };
            let window = Arc::clone(&window);
            let ping = job.ping_every_ms.map(Duration::from_millis);
            receivers.spawn(async move {
                let record = |r: Record| {
                    let mut w = window.lock();
                    let part = if slow { &mut w.slow } else { &mut w.healthy };
                    match r {
                        Record::Arrival(stream, arrival, latency) => {
                            part.arrival(stream, arrival, latency);
                        }
                        Record::Error(error) => part.error(|| error),
                    }
                };
                let ended = client.receive(mode, ping, record).await;
                let mut w = window.lock();
                let ends = if slow {
                    &mut w.slow_ended
                } else {
                    &mut w.ended
                };
                *ends.entry(ended).or_default() += 1;
            });
        }
    }
    while let Some(text) = input.next_line().await? {
        let command: Command = serde_json::from_str(&text)?;
        match command {
            Command::Collect => {}
            Command::Pause => {
                slow_mode.send_replace(Mode::Pause);
            }
            Command::Resume => {
                slow_mode.send_replace(Mode::Read);
            }
            Command::Echo { seconds, size } => {
                clients = echo(clients, seconds, size, &window).await;
            }
        }
        let report = std::mem::take(&mut *window.lock());
        say(&report)?;
    }
    drop((slow_mode, all_mode));
    receivers.shutdown().await;
    Ok(())
}

fn say(value: &impl Serialize) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(line(value)?.as_bytes())?;
    out.flush()?;
    Ok(())
}

async fn connect_all(job: &Job) -> (Connected, Vec<(u64, Client)>) {
    let http = switchboard_tests::http::client();
    let mut report = Connected::default();
    let mut clients = Vec::with_capacity(job.count as usize);
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let mut next = job.first;
    let end = job.first + job.count;
    loop {
        while next < end && tasks.len() < job.concurrency.max(1) {
            let (http, target, groups) =
                (http.clone(), job.target.clone(), job.group_sizes.clone());
            let index = next;
            let slow = job
                .slow_every
                .is_some_and(|every| index.is_multiple_of(every));
            let options = Options {
                user: format!("u{index}"),
                source: (job.sources > 0)
                    .then(|| Ipv4Addr::new(127, 0, 0, 2 + (index % u64::from(job.sources)) as u8)),
                receive_buffer: slow.then_some(SLOW_RECEIVE_BUFFER),
                groups: groups
                    .iter()
                    .map(|size| format!("s{size}-{}", index / size))
                    .collect(),
                connect_to: (!target.replicas.is_empty())
                    .then(|| target.proxy_for(index).to_owned()),
            };
            tasks.spawn(async move {
                let (client, took) = client::connect(&http, &target, &options).await?;
                anyhow::Ok((index, client, took))
            });
            next += 1;
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done {
            Ok(Ok((index, client, took))) => {
                report.ok += 1;
                report.connect_us.record(took.as_micros() as u64);
                clients.push((index, client));
            }
            Ok(Err(error)) => {
                report.failed += 1;
                if report.first_error.is_none() {
                    report.first_error = Some(format!("{error:#}"));
                }
            }
            Err(error) => {
                report.failed += 1;
                report.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.rss_kib = Usage::of(std::process::id()).map_or(0, |usage| usage.rss_kib);
    (report, clients)
}

async fn echo(
    clients: Vec<(u64, Client)>,
    seconds: f64,
    size: usize,
    window: &Mutex<Window>,
) -> Vec<(u64, Client)> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let pad: Arc<str> = "x".repeat(size).into();
    let mut tasks = JoinSet::new();
    for (index, mut client) in clients {
        let pad = Arc::clone(&pad);
        tasks.spawn(async move {
            let mut part = Part::default();
            let result = client.echo_until(deadline, index, &pad, &mut part).await;
            if let Err(error) = result {
                part.error(|| format!("{error:#}"));
                return (part, None);
            }
            (part, Some((index, client)))
        });
    }
    let mut kept = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((part, client)) = done {
            window.lock().healthy.merge(&part);
            kept.extend(client);
        }
    }
    kept
}
