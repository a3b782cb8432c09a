//! Running the Python client suite in `tests/python` (pysignalr and
//! signalrcore) with pytest, from the virtual environment `scripts/test.sh`
//! prepares in `tests/python/.venv`.

use std::process::Command;
use std::time::Duration;

use crate::{suite, workspace};

/// Runs `pytest tests/python` with `env` added; panics unless it passes
/// within `timeout`.
pub async fn run_suite(env: &[(&str, String)], timeout: Duration) {
    let root = workspace::root();
    let python = root.join("tests/python/.venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/test.sh, which creates the Python suite's environment",
        python.display()
    );
    let mut command = Command::new(python);
    command
        .current_dir(root.join("tests/python"))
        .args([
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            "--timeout",
            "60",
            ".",
        ])
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())));
    suite::run_reported("pytest tests/python", command, timeout).await;
}
