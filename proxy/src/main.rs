//! The `switchboard` binary: configuration, logging, signals, and how a
//! failed start is reported.

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use switchboard_proxy::config::{Args, Config, LogFormat};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// Exit status for settings that do not validate (nothing was started).
const EXIT_CONFIG: u8 = 2;
/// Exit status for a start that failed: a port, a TLS file, the bus.
const EXIT_START: u8 = 1;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load(Args::parse()) {
        Ok(config) => config,
        Err(e) => return fail(&e, EXIT_CONFIG),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        // Connection and link spans never nest: the current span (`span`)
        // says it all, a list of the enclosing ones would repeat it.
        LogFormat::Json => logs.json().with_span_list(false).init(),
        LogFormat::Text => logs.init(),
    }
    // Every client is a socket: allow as many as the hard limit permits.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    // Before starting, so a SIGTERM that arrives during start still drains.
    let term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("switchboard: cannot listen for SIGTERM: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    let running = match switchboard_proxy::start(config).await {
        Ok(running) => running,
        Err(e) => return fail(&e, EXIT_START),
    };
    shutdown_signal(term).await;
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// Prints `error` as one line on stderr, as operators read it in a pod's
/// last log line, and yields the exit status.
fn fail(error: &dyn Error, status: u8) -> ExitCode {
    eprintln!("switchboard: {}", one_line(error));
    ExitCode::from(status)
}

/// The error and its causes as one line. The proxy's errors already name
/// their cause in their message; a cause is appended only when the message
/// does not carry it, so nothing is said twice.
fn one_line(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    // A multi-line message would be split across log records.
    line.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

async fn shutdown_signal(mut term: Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    /// A missing certificate gives one line naming the port and the file,
    /// with the operating system's reason once.
    #[tokio::test]
    async fn a_missing_certificate_is_one_line_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("switchboard-main-{}", std::process::id()));
        let missing = dir.join("absent.pem");
        let config = Config::load(Args::parse_from([
            "switchboard",
            "--access-key",
            "main-test-key-0123456789abcdef",
            "--listen",
            "127.0.0.1:0",
            "--upstream-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--tls-cert",
            missing.to_str().unwrap(),
            "--tls-key",
            dir.join("absent.key").to_str().unwrap(),
        ]))
        .expect("valid settings: the files are read at start");
        let Err(error) = switchboard_proxy::start(config).await else {
            panic!("the proxy started without its certificate");
        };
        let line = one_line(&error);
        // "No such file or directory (os error 2)" on Linux.
        let os = std::io::Error::from_raw_os_error(2).to_string();
        assert_eq!(
            line,
            format!(
                "cannot serve TLS on the client port: cannot read {}: {os}",
                missing.display()
            )
        );
        assert_eq!(line.matches(&os).count(), 1, "{line}");
    }

    /// An error whose message leaves its cause out.
    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("cannot set up the cluster bus")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_missing_from_the_message_is_appended_once() {
        let error = Outer(std::io::Error::other("connection refused\nby 10.0.0.1"));
        assert_eq!(
            one_line(&error),
            "cannot set up the cluster bus: connection refused by 10.0.0.1"
        );
    }
}
