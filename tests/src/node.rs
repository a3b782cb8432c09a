//! Running the JavaScript suites in `tests/js` with Node's built-in test runner.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use crate::process::Process;
use crate::workspace;

/// Runs `node --test tests/js/{file}` from the workspace root with `env`
/// added, writes its report to the real stderr (past the test harness's
/// capture, so every run shows which scenarios ran) and panics unless node
/// exits 0 within `timeout`.
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
    let name = format!("node --test {script}");
    let mut node =
        Process::spawn(&name, command).unwrap_or_else(|error| panic!("start {name}: {error}"));
    let status = node.wait(timeout).await;
    if status.is_none() {
        node.kill();
    }
    let report = node.take_output();
    let mut stderr = std::io::stderr().lock();
    // Best effort: a closed stderr must not hide the verdict below.
    let _ = write!(
        stderr,
        "\n===== {name} =====\n{report}===== end of {name} =====\n"
    );
    drop(stderr);
    match status {
        Some(status) => assert!(
            status.success(),
            "{name} failed ({status}); its report is above"
        ),
        None => panic!("{name} did not finish within {timeout:?}; its report so far is above"),
    }
}
