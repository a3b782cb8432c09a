//! Pushpin as a peer: `zurl` (which Pushpin makes its origin requests
//! through, here allowed to reach loopback only), `pushpin` (condure,
//! pushpin-proxy, pushpin-handler) with a generated config, and the GRIP
//! origin `tests/peers/pushpin/origin.js`. Clients open plain WebSockets
//! to `/bench?channels=...`; the origin subscribes them to `all` and those
//! channels and publishes through Pushpin's HTTP publish endpoint. Frames
//! are text, `[stream, seq, sentMicros, pad]`.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use serde::de::IgnoredAny;
use serde_json::json;

use super::super::stack::{Scratch, Server, Stack};
use super::super::wire::Incoming;
use super::{System, first_line, peers_dir, program};
use switchboard_tests::ports::free_port;

/// After the last client connected: subscriptions travel from
/// pushpin-proxy to pushpin-handler beside the upgrade, so the last few
/// may land a moment after their client saw it.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Starts zurl, the origin and Pushpin, and waits until a request through
/// Pushpin reaches the origin.
pub async fn start() -> Result<Stack> {
    let pushpin = program("pushpin")?;
    let zurl = program("zurl")?;
    let condure = program("condure")?;
    let node = program("node")?;
    let version = first_line(&pushpin, &["--version"])?;
    let zurl_version = first_line(&zurl, &["--version"])?;
    let scratch = Scratch::new("switchboard-bench-pushpin")?;
    let dir = &scratch.0;
    let run = dir.join("run");
    std::fs::create_dir_all(&run)?;
    let ipc = |name: &str| format!("ipc://{}/{name}", run.display());
    let [http, publish, origin] = [free_port(), free_port(), free_port()];

    let zurl_conf = dir.join("zurl.conf");
    std::fs::write(
        &zurl_conf,
        format!(
            "[General]\n\
             in_spec={}\nin_stream_spec={}\nout_spec={}\n\
             defpolicy=deny\nallow=127.0.0.1\n\
             max_open_requests=100000\nbuffer_size=200000\ntimeout=600\n\
             in_hwm=100000\nout_hwm=100000\n",
            ipc("zurl-in"),
            ipc("zurl-in-stream"),
            ipc("zurl-out"),
        ),
    )?;
    let routes = dir.join("routes");
    std::fs::write(&routes, format!("* 127.0.0.1:{origin},over_http\n"))?;
    let internal = [
        "/usr/lib/pushpin/internal.conf",
        "/usr/local/lib/pushpin/internal.conf",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).is_file())
    .unwrap_or("/usr/lib/pushpin/internal.conf");
    let settings = json!({
        "client_maxconn": 100_000,
        // Left unset: the handler then applies no publish rate limit and no
        // queue limit (the sample config's 2 500/s would cap fan-out).
        "message_rate": "unset (no limit)",
        "message_hwm": "unset (no limit)",
        "log_level": 1,
        "route": "over_http (WebSocket-over-HTTP with GRIP)",
        "services": "condure, pushpin-proxy, pushpin-handler; zurl started beside them",
    });
    let pushpin_conf = dir.join("pushpin.conf");
    std::fs::write(
        &pushpin_conf,
        format!(
            "[global]\ninclude={internal}\nrundir={rundir}\nipc_prefix=pushpin-\nport_offset=0\n\
             [runner]\nservices=condure,pushpin-proxy,pushpin-handler\n\
             http_port=127.0.0.1:{http}\nlogdir={rundir}\nlog_level=1\n\
             client_buffer_size=8192\nclient_maxconn=100000\ncondure_bin={condure}\n\
             [proxy]\nroutesfile={routes}\n\
             zurl_out_specs={zin}\nzurl_out_stream_specs={zstream}\nzurl_in_specs={zout}\n\
             sig_key=switchboard-bench\nupdates_check=off\n\
             [handler]\npush_in_spec={push}\npush_in_sub_specs={sub}\n\
             push_in_http_addr=127.0.0.1\npush_in_http_port={publish}\n\
             stats_spec={stats}\ncommand_spec={command}\n\
             message_wait=5000\n\
             connection_subscription_max=20\n",
            rundir = run.display(),
            condure = condure.display(),
            routes = routes.display(),
            zin = ipc("zurl-in"),
            zstream = ipc("zurl-in-stream"),
            zout = ipc("zurl-out"),
            push = ipc("push-in"),
            sub = ipc("push-in-sub"),
            stats = ipc("stats"),
            command = ipc("command"),
        ),
    )?;

    let mut command = Command::new(&zurl);
    command.arg(format!("--config={}", zurl_conf.display()));
    let zurl = Server::spawn("zurl", command)?;
    let mut command = Command::new(&node);
    command
        .arg(peers_dir().join("pushpin/origin.js"))
        .arg(origin.to_string())
        .arg(format!("http://127.0.0.1:{publish}/publish/"));
    let mut origin_server = Server::spawn("the Pushpin origin", command)?;
    let app_url = format!("http://127.0.0.1:{origin}");
    origin_server
        .wait_until_ok(&format!("{app_url}/health"))
        .await?;
    let mut command = Command::new(&pushpin);
    command
        .arg("--config")
        .arg(&pushpin_conf)
        .arg("--merge-output");
    let mut proxy = Server::spawn("pushpin", command)?.runner();
    let proxy_url = format!("http://127.0.0.1:{http}");
    // Through condure, pushpin-proxy and zurl to the origin.
    proxy.wait_until_ok(&format!("{proxy_url}/health")).await?;
    Ok(Stack {
        _app: Some(origin_server),
        measured: vec![proxy, zurl],
        system: System::Pushpin,
        proxy_url,
        app_url,
        admin_url: None,
        replicas: Vec::new(),
        redis: None,
        about: json!({
            "system": "pushpin",
            "version": version,
            "zurl": zurl_version,
            "settings": settings,
        }),
        _scratch: Some(scratch),
    })
}

/// The WebSocket path of a client subscribed to `all` and `channels`.
pub fn path(channels: &[String]) -> String {
    if channels.is_empty() {
        "/bench".to_owned()
    } else {
        format!("/bench?channels={}", channels.join(","))
    }
}

/// Decodes one text frame: a published `[stream, seq, sentMicros, pad]`.
pub fn decode(bytes: &[u8], out: &mut Vec<Incoming>) -> Result<(), String> {
    let (stream, seq, sent_us, _): (u64, u64, u64, IgnoredAny) = serde_json::from_slice(bytes)
        .map_err(|e| {
            format!(
                "unexpected Pushpin frame {:?}: {e}",
                String::from_utf8_lossy(bytes)
            )
        })?;
    out.push(Incoming::Bench {
        stream,
        seq,
        sent_us,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_stream_seq_and_time() {
        let mut out = Vec::new();
        decode(br#"[4,17,1700000000000000,"xxxx"]"#, &mut out).unwrap();
        assert_eq!(
            out,
            vec![Incoming::Bench {
                stream: 4,
                seq: 17,
                sent_us: 1_700_000_000_000_000
            }]
        );
        assert!(decode(b"hello", &mut out).is_err());
        assert_eq!(path(&[]), "/bench");
        assert_eq!(
            path(&["s10-0".to_owned(), "s100-0".to_owned()]),
            "/bench?channels=s10-0,s100-0"
        );
    }
}
