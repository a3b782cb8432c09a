//! The chat example in headless Chromium: two tabs load the page from the
//! chat app server, connect through the proxy with the official browser
//! bundle, and see each other's messages (`tests/js/browser_chat.test.mjs`).

use std::time::Duration;

use switchboard_tests::ports::free_port;
use switchboard_tests::{AppServer, Proxy, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_chromium_tabs_chat_through_the_proxy() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file(),
        "/usr/bin/chromium is missing: run scripts/test.sh, which installs it"
    );
    let chat_port = free_port();
    // The page and the proxy are different origins, so the proxy must allow the page's.
    let origin = format!("http://127.0.0.1:{chat_port}");
    let proxy = Proxy::start_with(&["--allowed-origins", &origin]).await;
    let chat = AppServer::chat(&proxy, chat_port).await;
    let env = [("CHAT_URL", format!("{}/", chat.url()))];
    node::run_suite("browser_chat.test.mjs", &env, Duration::from_secs(180)).await;
}
