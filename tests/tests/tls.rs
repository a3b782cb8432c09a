//! TLS end to end: a proxy serving its client port over TLS and its upstream
//! port over mutual TLS, with certificates made at test time (a CA, a
//! server certificate for `127.0.0.1` and `localhost`, an app-server client
//! certificate). The testhub links over https with its client certificate;
//! the official JavaScript client under Node negotiates through it and
//! connects over wss, server-sent events and long polling
//! (`tests/js/tls.test.mjs`); an app server without a client certificate is
//! refused and the proxy says why; renewed certificate files are served to
//! new connections without a restart; a missing file stops the proxy at
//! start, naming the file.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use switchboard_tests::{AppServer, Process, Proxy, TEST_ACCESS_KEY, http, node, workspace};

/// How long a renewed certificate may take to be served with
/// `--tls-reload-interval 1s`.
const RELOAD_WITHIN: Duration = Duration::from_secs(15);

/// A throwaway CA and the files it signed, in a fresh directory.
struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "switchboard-tls-e2e-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create the certificate directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Switchboard test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("self-sign the CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
        Self { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A leaf for `names` with `usage`, signed by the CA, as PEM
    /// (certificate, key) and the certificate's DER.
    fn leaf(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf parameters");
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.ca).expect("sign the leaf");
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    /// Writes a server certificate for `127.0.0.1` and `localhost` to
    /// `server.pem` / `server.key`, each replaced in one step (written
    /// beside, then renamed), and returns its DER.
    fn write_server(&self) -> CertificateDer<'static> {
        let (cert, key, der) = self.leaf(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        replace(&self.path("server.key"), &key);
        replace(&self.path("server.pem"), &cert);
        der
    }

    /// Writes the app server's client certificate to `app.pem` / `app.key`.
    fn write_app(&self) {
        let (cert, key, _) = self.leaf(&["app.test"], ExtendedKeyUsagePurpose::ClientAuth);
        std::fs::write(self.path("app.pem"), cert).expect("write app.pem");
        std::fs::write(self.path("app.key"), key).expect("write app.key");
    }

    /// A TLS client trusting the CA, offering `alpn`, presenting the app
    /// server's certificate when `as_app`.
    fn connector(&self, alpn: &[u8], as_app: bool) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("trust the CA");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("default protocol versions")
        .with_root_certificates(roots);
        let mut config = if as_app {
            let certs = CertificateDer::pem_file_iter(self.path("app.pem"))
                .expect("read app.pem")
                .collect::<Result<Vec<_>, _>>()
                .expect("parse app.pem");
            let key = PrivateKeyDer::from_pem_file(self.path("app.key")).expect("read app.key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client identity")
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Replaces `path` with `contents` in one rename, as a Secret update does,
/// so the proxy never reads a half-written file.
fn replace(path: &Path, contents: &str) {
    let beside = path.with_extension("new");
    std::fs::write(&beside, contents).expect("write the new file");
    std::fs::rename(&beside, path).expect("rename over the old file");
}

/// Completes a TLS handshake with 127.0.0.1:`port` (verifying the server
/// certificate against the CA for IP `127.0.0.1`) and returns the leaf
/// certificate it served and the negotiated ALPN protocol.
async fn handshake(
    port: u16,
    connector: &tokio_rustls::TlsConnector,
) -> anyhow::Result<(CertificateDer<'static>, Option<Vec<u8>>)> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp)).await??;
    let (_, session) = tls.get_ref();
    let leaf = session
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or_else(|| anyhow::anyhow!("no server certificate"))?
        .clone()
        .into_owned();
    Ok((leaf, session.alpn_protocol().map(<[u8]>::to_vec)))
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{url} ends with a port"))
}

/// The value of the first `/metrics` sample starting with `prefix`.
async fn metric(proxy: &Proxy, prefix: &str) -> f64 {
    let text = http::client()
        .get(format!("{}/metrics", proxy.admin_url()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Polls until `check` passes or `within` ran out.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) if started.elapsed() > within => {
                panic!("{what} not within {within:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn run_js_suite(pki: &Pki, app: &AppServer, proxy: &Proxy) {
    let env = [
        ("APP_URL", app.url()),
        ("PROXY_URL", proxy.url()),
        (
            "NODE_EXTRA_CA_CERTS",
            pki.path("ca.pem").display().to_string(),
        ),
    ];
    node::run_suite("tls.test.mjs", &env, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_both_ports_with_upstream_mtls_and_certificate_reload() {
    let pki = Pki::new();
    let first = pki.write_server();
    pki.write_app();
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let (cert, key, ca) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        ca.to_str().unwrap(),
    );
    let mut proxy = Proxy::start_with(&[
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--upstream-tls-cert",
        cert,
        "--upstream-tls-key",
        key,
        "--upstream-client-ca",
        ca,
        "--tls-reload-interval",
        "1s",
    ])
    .await;
    assert!(proxy.url().starts_with("https://"), "{}", proxy.url());
    assert!(
        proxy.server_endpoint().starts_with("https://"),
        "{}",
        proxy.server_endpoint()
    );
    let (client_port, upstream_port) = (port_of(&proxy.url()), port_of(&proxy.server_endpoint()));

    // Each port serves the certificate with its own application protocol.
    let client_tls = pki.connector(b"http/1.1", false);
    let (served, alpn) = handshake(client_port, &client_tls).await.unwrap();
    assert_eq!(served, first);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let app_tls = pki.connector(b"h2", true);
    let (served, alpn) = handshake(upstream_port, &app_tls).await.unwrap();
    assert_eq!(served, first);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));

    // The app server links over https, verifying the proxy against the CA
    // and presenting its client certificate.
    let app_cert = pki.path("app.pem").display().to_string();
    let app_key = pki.path("app.key").display().to_string();
    let mut app = AppServer::start_testhub(
        &proxy.connection_string(),
        &[
            "--server-ca",
            ca,
            "--client-cert",
            &app_cert,
            "--client-key",
            &app_key,
        ],
    );
    app.wait_linked().await;

    // One without a client certificate is refused: it never becomes
    // healthy, and the proxy logs why.
    let failures_before = metric(
        &proxy,
        "switchboard_tls_handshake_failures_total{port=\"upstream\",reason=\"error\"}",
    )
    .await;
    let mut stranger = AppServer::start_testhub(
        &proxy.connection_string(),
        &["--server-id", "no-client-cert", "--server-ca", ca],
    );
    let health = format!("{}/health", stranger.url());
    let http = http::client();
    let watch_until = Instant::now() + Duration::from_secs(4);
    let mut answered = 0;
    while Instant::now() < watch_until {
        assert!(
            stranger.process().exit_status().is_none(),
            "the app server without a certificate exited:\n{}",
            stranger.process().output()
        );
        if let Ok(response) = http.get(&health).send().await {
            answered += 1;
            assert_eq!(
                response.status(),
                reqwest::StatusCode::SERVICE_UNAVAILABLE,
                "an app server without a client certificate must not link"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        answered > 0,
        "the refused app server's /health never answered"
    );
    eventually(
        Duration::from_secs(5),
        "the proxy logging the refused handshake",
        || {
            let output = proxy.process().output();
            async move {
                let line = output
                    .lines()
                    .find(|l| l.contains("the app server's link is refused"));
                match line {
                    Some(line) if line.contains("peer sent no certificates") => Ok(()),
                    Some(line) => Err(format!("the log line does not say why: {line}")),
                    None => Err(output.lines().rev().take(5).collect::<Vec<_>>().join("\n")),
                }
            }
        },
    )
    .await;
    let failures = metric(
        &proxy,
        "switchboard_tls_handshake_failures_total{port=\"upstream\",reason=\"error\"}",
    )
    .await;
    assert!(
        failures > failures_before,
        "refusals are counted ({failures_before} -> {failures})"
    );
    drop(stranger);

    // The official client through the app server, over TLS.
    run_js_suite(&pki, &app, &proxy).await;

    // A renewed certificate is served to new connections on both ports.
    let renewed = pki.write_server();
    assert_ne!(renewed, first);
    for (port, connector) in [(client_port, &client_tls), (upstream_port, &app_tls)] {
        eventually(
            RELOAD_WITHIN,
            "the renewed certificate being served",
            || {
                let renewed = renewed.clone();
                async move {
                    match handshake(port, connector).await {
                        Ok((served, _)) if served == renewed => Ok(()),
                        Ok(_) => Err("still the previous certificate".into()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await;
    }
    for port in ["client", "upstream"] {
        let reloads = metric(
            &proxy,
            &format!("switchboard_tls_reloads_total{{port=\"{port}\",result=\"ok\"}}"),
        )
        .await;
        assert!(reloads >= 1.0, "{port} port reloads counted: {reloads}");
    }
    // The linked app server was not disturbed, and new clients connect
    // under the renewed certificate.
    let ok = http.get(format!("{}/health", app.url())).send().await;
    assert_eq!(
        ok.map(|r| r.status()).ok(),
        Some(reqwest::StatusCode::OK),
        "the linked app server stays linked"
    );
    run_js_suite(&pki, &app, &proxy).await;
}

/// The proxy binary with the test access key and no `SWITCHBOARD_*`
/// settings from the environment.
fn bare_proxy() -> Command {
    let mut command = Command::new(workspace::proxy_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            command.env_remove(key);
        }
    }
    command.args(["--access-key", TEST_ACCESS_KEY]);
    command
}

/// Runs `command`, which must exit with a failure at start; its output.
async fn fails_at_start(name: &str, command: Command) -> String {
    let mut process = Process::spawn(name, command).unwrap();
    let status = process
        .wait(Duration::from_secs(20))
        .await
        .expect("the proxy exits at start");
    assert!(!status.success(), "{status}");
    process.output()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_certificate_file_stops_the_proxy_at_start() {
    let pki = Pki::new();
    pki.write_server();
    let missing = pki.path("absent.pem");
    let mut command = bare_proxy();
    command
        .args(["--listen", "127.0.0.1:0"])
        .args(["--upstream-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--tls-cert", missing.to_str().unwrap()])
        .args(["--tls-key", pki.path("server.key").to_str().unwrap()]);
    let output = fails_at_start("proxy with a missing certificate", command).await;
    assert!(
        output.contains("cannot serve TLS on the client port") && output.contains("absent.pem"),
        "{output}"
    );

    // A key without its certificate is refused before anything is read.
    let mut command = bare_proxy();
    command.args([
        "--upstream-tls-key",
        pki.path("server.key").to_str().unwrap(),
    ]);
    let output = fails_at_start("proxy with a key alone", command).await;
    assert!(
        output.contains("--upstream-tls-key needs --upstream-tls-cert"),
        "{output}"
    );
}
