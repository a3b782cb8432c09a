//! The systems the generator can measure: Switchboard itself and its peers
//! (Pushpin, socket.io), each started in its most favourable documented
//! configuration on free loopback ports, and what their clients see on the
//! wire. Every peer's origin serves the same `POST /publish` contract as
//! `benchhub` (`tests/peers/pace.js`), so scenarios drive them all alike.

#[path = "peers/pushpin.rs"]
pub mod pushpin;
#[path = "peers/socketio.rs"]
pub mod socketio;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

/// What the clients connect to.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    Default,
)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// The Switchboard proxy with the `benchhub` app server.
    #[default]
    Switchboard,
    /// Pushpin (Debian package) with zurl and a GRIP origin.
    Pushpin,
    /// A socket.io server (`tests/peers/socketio`).
    Socketio,
}

impl System {
    /// Whether a scenario needing the SignalR hub (echo, slow consumers
    /// with the proxy's outbox limit) can run against this system.
    pub fn check_hub(self, scenario: &str) -> Result<()> {
        if self != Self::Switchboard {
            bail!(
                "`{scenario}` measures Switchboard's app-server path; it does not run against {self}"
            );
        }
        Ok(())
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Switchboard => "switchboard",
            Self::Pushpin => "pushpin",
            Self::Socketio => "socketio",
        })
    }
}

/// `tests/peers` of this workspace.
pub fn peers_dir() -> PathBuf {
    switchboard_tests::workspace::root().join("tests/peers")
}

/// A program on `PATH` (or an absolute path), or an error saying how to
/// install the peers.
pub fn program(name: &str) -> Result<PathBuf> {
    let found = if Path::new(name).is_absolute() {
        Some(PathBuf::from(name))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
    };
    found.with_context(|| format!("`{name}` is not installed: run tests/peers/install.sh"))
}

/// The first line `program ARGS` prints (for versions).
pub fn first_line(program: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let text = if text.trim().is_empty() {
        String::from_utf8_lossy(&output.stderr)
    } else {
        text
    };
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}
