//! The official browser bundle in headless Chromium over WebSockets,
//! server-sent events and long polling: a page on an origin of its own
//! negotiates with the testhub app server and talks to hub `testhub`
//! through the proxy (`tests/js/browser_transports.test.mjs`).

use std::time::Duration;

use switchboard_tests::ports::free_port;
use switchboard_tests::{AppServer, Proxy, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_over_every_transport() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file(),
        "/usr/bin/chromium is missing: run scripts/test.sh, which installs it"
    );
    let page_port = free_port();
    // The page, the app server and the proxy are three origins; the proxy
    // must allow the page's (the testhub allows any).
    let origin = format!("http://127.0.0.1:{page_port}");
    let proxy = Proxy::start_with(&["--allowed-origins", &origin]).await;
    let app = AppServer::testhub(&proxy, None).await;
    let env = [("APP_URL", app.url()), ("PAGE_PORT", page_port.to_string())];
    node::run_suite(
        "browser_transports.test.mjs",
        &env,
        Duration::from_secs(180),
    )
    .await;
}
