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

/// Starts a proxy with default settings and the testhub app server, then
/// runs `tests/js/{file}` with `APP_URL`, `PROXY_URL` and `extra_env` set.
pub async fn run_against_testhub(file: &str, extra_env: &[(&str, &str)]) {
    let proxy = crate::Proxy::start().await;
    let app = crate::AppServer::testhub(&proxy, None).await;
    let mut env = vec![("APP_URL", app.url()), ("PROXY_URL", proxy.url())];
    env.extend(extra_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    run_suite(file, &env, Duration::from_secs(240)).await;
}
