//! Running the JavaScript suites in `tests/js` with Node's built-in test runner.

use std::process::Command;
use std::time::Duration;

use crate::{suite, workspace};

/// Runs `node --test tests/js/{file}` from the workspace root with `env`
/// added; panics unless node exits 0 within `timeout`.
pub async fn run_suite(file: &str, env: &[(&str, String)], timeout: Duration) {
    let root = workspace::root();
    let modules = root.join("tests/js/node_modules/@microsoft/signalr");
    assert!(
        modules.is_dir(),
        "{} is missing: run scripts/test.sh, which installs the JavaScript suite's npm packages",
        modules.display()
    );
    let script = format!("tests/js/{file}");
    let mut command = Command::new("node");
    command
        .current_dir(&root)
        .args(["--test", "--test-reporter=spec", &script])
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())));
    suite::run_reported(&format!("node --test {script}"), command, timeout).await;
}
