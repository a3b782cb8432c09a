//! Running the load generator (`switchboard-bench`) from a test and reading
//! what it prints: a JSON report, then a one-line summary.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// A run that takes longer than this is stuck.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(50);

/// Runs `exe ARGS` and returns its stdout; panics on a non-zero exit (with
/// `hint` and both outputs) or after [`RUN_TIMEOUT`].
pub async fn run(exe: &Path, args: &[&str], hint: &str) -> String {
    let mut command = tokio::process::Command::new(exe);
    command.args(args).kill_on_drop(true);
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("switchboard-bench {args:?} ran over {RUN_TIMEOUT:?}"))
        .expect("run switchboard-bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "switchboard-bench {args:?} failed ({}){hint}:\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The report of one scenario run, checking its summary line starts with
/// `scenario:` (and shows it on the test's output).
pub fn report(stdout: &str, scenario: &str) -> Value {
    let (json, summary) = stdout
        .trim_end()
        .rsplit_once('\n')
        .expect("a report and a summary line");
    assert!(
        summary.starts_with(&format!("{scenario}:")),
        "summary line {summary:?}"
    );
    eprintln!("{summary}");
    serde_json::from_str(json)
        .unwrap_or_else(|error| panic!("report is not JSON ({error}):\n{json}"))
}

/// The number at a dotted `path` (`sizes.0.lost`) of a report.
pub fn number(value: &Value, path: &str) -> f64 {
    let mut v = value;
    for key in path.split('.') {
        v = match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        };
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {value:#}"))
}
