//! Running an external client suite (Node, Python) as a child process and
//! showing its report in the test command's output.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use crate::process::Process;

/// Runs `command`, writes its report to the real stderr (past the test
/// harness's capture, so every run shows which scenarios ran) and panics
/// unless it exits 0 within `timeout`.
pub async fn run_reported(name: &str, command: Command, timeout: Duration) {
    let mut child =
        Process::spawn(name, command).unwrap_or_else(|error| panic!("start {name}: {error}"));
    let status = child.wait(timeout).await;
    if status.is_none() {
        child.kill();
    }
    let report = child.take_output();
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
