//! TLS for the client and upstream ports: a certificate chain and key from
//! PEM files, reloaded when the files change (so a renewed certificate,
//! e.g. a Kubernetes Secret updated in place, is served without a restart),
//! and optional client-certificate verification (mutual TLS) against a CA
//! bundle. Handshakes run beside the accept loop with a deadline, so a slow
//! or silent client never holds up others. Failed handshakes and reloads
//! are counted per port in [`Metrics`].

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::metrics::{Metrics, TlsHandshakeLabels, TlsReloadLabels};

/// Handshakes that may be under way at once per port; further connections
/// wait in the kernel's accept queue.
const MAX_HANDSHAKES: usize = 1024;
/// Finished handshakes waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 256;

/// Which port a TLS listener serves: its name in logs and metrics, and the
/// application protocol it offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Browsers and apps: HTTP/1.1 (WebSockets need it).
    Client,
    /// App-server gRPC links: HTTP/2.
    Upstream,
}

impl Port {
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Upstream => "upstream",
        }
    }

    /// The ALPN protocol offered in handshakes.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Self::Client => b"http/1.1",
            Self::Upstream => b"h2",
        }
    }
}

/// Where a port's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

/// Why a TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("{} holds no PEM private key: {detail}", path.display())]
    NoKey { path: PathBuf, detail: String },
    #[error("{} holds no usable CA certificate: {detail}", path.display())]
    ClientCa { path: PathBuf, detail: String },
    #[error("the certificate in {} and the key in {} do not form a usable pair: {source}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// A server configuration that follows its files.
pub struct Reloading {
    files: TlsFiles,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Loaded>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    modified: Vec<Option<SystemTime>>,
}

impl Reloading {
    /// Loads the files once; fails with a message naming the file at fault.
    /// `alpn` lists the application protocols offered (`http/1.1`, `h2`).
    pub fn load(files: TlsFiles, alpn: &[&[u8]]) -> Result<Arc<Self>, TlsError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let config = build(&files, &alpn)?;
        let modified = modified(&files);
        Ok(Arc::new(Self {
            files,
            alpn,
            current: RwLock::new(Loaded { config, modified }),
        }))
    }

    /// The configuration new handshakes use.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().config.clone()
    }

    /// Reloads when any file's modification time changed. A file that does
    /// not load (half-written, mismatched pair) keeps the previous
    /// configuration in use; the error is returned to be logged, and the
    /// reload is tried again at the next check.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = modified(&self.files);
        if now == self.current.read().modified {
            return Ok(false);
        }
        let config = build(&self.files, &self.alpn)?;
        *self.current.write() = Loaded {
            config,
            modified: now,
        };
        Ok(true)
    }

    /// Checks the files every `every`, forever; run it beside the server
    /// and drop it on shutdown.
    pub async fn watch(self: Arc<Self>, every: Duration, port: Port, metrics: Arc<Metrics>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let port = port.name();
            let result = match self.reload_if_changed() {
                Ok(false) => continue,
                Ok(true) => {
                    tracing::info!(port, cert = %self.files.cert.display(), "TLS certificate reloaded");
                    "ok"
                }
                Err(error) => {
                    tracing::error!(port, %error, "TLS files changed but cannot be loaded; still serving the previous certificate");
                    "error"
                }
            };
            metrics
                .tls_reloads
                .get_or_create(&TlsReloadLabels { port, result })
                .inc();
        }
    }
}

fn modified(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
    .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn build(files: &TlsFiles, alpn: &[Vec<u8>]) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| TlsError::NoKey {
        path: files.key.clone(),
        detail: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions");
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    config.alpn_protocols = alpn.to_vec();
    Ok(Arc::new(config))
}

/// A TLS connection from a client, with the peer's address.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
}

impl TlsConnection {
    pub fn tcp(&self) -> &TcpStream {
        self.stream.get_ref().0
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tcp().connect_info()
    }
}

/// Accepts TCP connections and hands out those whose TLS handshake
/// finished within `handshake_timeout`.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsConnection, SocketAddr)>,
    /// `None` when the socket could not say (it then fails as the server
    /// asks for it).
    local: Option<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsListener {
    /// Starts accepting on `tcp`; handshakes that fail or take longer than
    /// `handshake_timeout` are counted in `metrics` under `port`.
    pub fn new(
        tcp: TcpListener,
        tls: Arc<Reloading>,
        handshake_timeout: Duration,
        port: Port,
        metrics: Arc<Metrics>,
    ) -> Self {
        let local = tcp.local_addr().ok();
        let (tx, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let failed = Failures { port, metrics };
        let task = tokio::spawn(accept_loop(tcp, tls, handshake_timeout, failed, tx));
        Self {
            accepted,
            local,
            task,
        }
    }

    /// The next connection whose handshake finished; `None` once the
    /// listener failed for good.
    pub async fn next(&mut self) -> Option<(TlsConnection, SocketAddr)> {
        self.accepted.recv().await
    }

    /// The connections as a stream, for tonic's server.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = io::Result<TlsConnection>> {
        futures_util::stream::unfold(self, |mut listener| async move {
            let (connection, _) = listener.next().await?;
            Some((Ok(connection), listener))
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.next().await {
            Some(accepted) => accepted,
            // The accept loop only ends when the socket failed for good;
            // the server's graceful shutdown still ends this wait.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.local
            .ok_or_else(|| io::Error::other("the listening socket has no local address"))
    }
}

/// Reports failed handshakes of one port.
#[derive(Clone)]
struct Failures {
    port: Port,
    metrics: Arc<Metrics>,
}

impl Failures {
    fn report(&self, peer: SocketAddr, reason: &'static str, error: &dyn std::fmt::Display) {
        let port = self.port.name();
        self.metrics
            .tls_handshake_failures
            .get_or_create(&TlsHandshakeLabels { port, reason })
            .inc();
        match self.port {
            // Anyone on the internet can knock on the client port: counted,
            // logged only when asked for.
            Port::Client => tracing::debug!(port, %peer, %error, "TLS handshake failed"),
            // Only app servers reach the upstream port, and a refused one
            // serves nobody: say why.
            Port::Upstream => tracing::warn!(
                port,
                %peer,
                %error,
                "TLS handshake failed; the app server's link is refused"
            ),
        }
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: Arc<Reloading>,
    handshake_timeout: Duration,
    failed: Failures,
    accepted: mpsc::Sender<(TlsConnection, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off briefly
                // rather than spin.
                tracing::warn!(%error, "cannot accept a TLS connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        crate::no_delay(&stream);
        let acceptor = TlsAcceptor::from(tls.config());
        let accepted = accepted.clone();
        let failed = failed.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = accepted.send((TlsConnection { stream }, peer)).await;
                }
                Ok(Err(error)) => failed.report(peer, "error", &error),
                Err(_) => failed.report(peer, "timeout", &"no handshake within the timeout"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, CertifiedIssuer, KeyPair};
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A throwaway CA, and files under a fresh temporary directory.
    struct Pki {
        dir: PathBuf,
        ca: CertifiedIssuer<'static, KeyPair>,
    }

    impl Pki {
        fn new() -> Self {
            let dir =
                std::env::temp_dir().join(format!("switchboard-tls-{}", crate::ids::random_id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
            Self { dir, ca }
        }

        /// Writes `{name}.pem` and `{name}.key` for a leaf signed by the CA.
        fn leaf(&self, name: &str, host: &str) -> (PathBuf, PathBuf) {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![host.to_owned()])
                .unwrap()
                .signed_by(&key, &self.ca)
                .unwrap();
            let (c, k) = (
                self.dir.join(format!("{name}.pem")),
                self.dir.join(format!("{name}.key")),
            );
            std::fs::write(&c, cert.pem()).unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            (c, k)
        }

        fn ca_path(&self) -> PathBuf {
            self.dir.join("ca.pem")
        }

        fn client(&self, identity: Option<(PathBuf, PathBuf)>) -> tokio_rustls::TlsConnector {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca.der().clone()).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
            let config = match identity {
                None => builder.with_no_client_auth(),
                Some((cert, key)) => builder
                    .with_client_auth_cert(
                        certificates(&cert).unwrap(),
                        PrivateKeyDer::from_pem_file(key).unwrap(),
                    )
                    .unwrap(),
            };
            tokio_rustls::TlsConnector::from(Arc::new(config))
        }
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Serves one echo per accepted connection; failed handshakes are
    /// counted in the returned metrics.
    async fn echo_server(tls: Arc<Reloading>) -> (SocketAddr, Arc<Metrics>) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut listener = TlsListener::new(
            tcp,
            tls,
            Duration::from_secs(2),
            Port::Upstream,
            metrics.clone(),
        );
        let addr = listener.local.unwrap();
        tokio::spawn(async move {
            while let Some((mut conn, _)) = listener.next().await {
                tokio::spawn(async move {
                    let mut buf = [0; 4];
                    if conn.read_exact(&mut buf).await.is_ok() {
                        let _ = conn.write_all(&buf).await;
                    }
                });
            }
        });
        (addr, metrics)
    }

    /// Connects, echoes 4 bytes and returns the served leaf certificate.
    async fn round_trip(
        addr: SocketAddr,
        connector: &tokio_rustls::TlsConnector,
    ) -> io::Result<CertificateDer<'static>> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("proxy.test").unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"ping").await?;
        let mut buf = [0; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        Ok(leaf.into_owned())
    }

    #[tokio::test]
    async fn serves_the_certificate_and_follows_file_changes() {
        let pki = Pki::new();
        let (cert, key) = pki.leaf("server", "proxy.test");
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        };
        let tls = Reloading::load(files, &[b"http/1.1"]).unwrap();
        let (addr, _) = echo_server(tls.clone()).await;
        let client = pki.client(None);
        let first = round_trip(addr, &client).await.unwrap();
        assert!(!tls.reload_if_changed().unwrap(), "nothing changed yet");

        // A renewed certificate, written in place.
        std::thread::sleep(Duration::from_millis(20));
        let (new_cert, new_key) = pki.leaf("renewed", "proxy.test");
        std::fs::copy(&new_cert, &cert).unwrap();
        std::fs::copy(&new_key, &key).unwrap();
        assert!(tls.reload_if_changed().unwrap());
        let second = round_trip(addr, &client).await.unwrap();
        assert_ne!(first, second, "new handshakes get the renewed certificate");

        // A broken key keeps the working configuration.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&key, "not a key").unwrap();
        assert!(matches!(
            tls.reload_if_changed(),
            Err(TlsError::NoKey { .. })
        ));
        assert_eq!(round_trip(addr, &client).await.unwrap(), second);
    }

    #[tokio::test]
    async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
        let pki = Pki::new();
        let (cert, key) = pki.leaf("server", "proxy.test");
        let files = TlsFiles {
            cert,
            key,
            client_ca: Some(pki.ca_path()),
        };
        let (addr, metrics) = echo_server(Reloading::load(files, &[b"h2"]).unwrap()).await;
        let with_cert = pki.client(Some(pki.leaf("app", "app.test")));
        round_trip(addr, &with_cert).await.unwrap();
        assert!(
            round_trip(addr, &pki.client(None)).await.is_err(),
            "a client without a certificate is refused"
        );
        let stranger = Pki::new();
        let (c, k) = stranger.leaf("app", "app.test");
        // Trusts our CA for the server, presents a certificate of another CA.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            certificates(&c).unwrap(),
            PrivateKeyDer::from_pem_file(k).unwrap(),
        )
        .unwrap();
        let foreign = tokio_rustls::TlsConnector::from(Arc::new(config));
        assert!(
            round_trip(addr, &foreign).await.is_err(),
            "a certificate from another CA is refused"
        );
        // With TLS 1.3 the client may finish before the server rejects it.
        let failures = || {
            metrics
                .tls_handshake_failures
                .get_or_create(&TlsHandshakeLabels {
                    port: "upstream",
                    reason: "error",
                })
                .get()
        };
        for _ in 0..100 {
            if failures() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(failures(), 2, "both refusals are counted");
    }

    #[tokio::test]
    async fn a_silent_client_times_out_and_is_counted() {
        let pki = Pki::new();
        let (cert, key) = pki.leaf("server", "proxy.test");
        let files = TlsFiles {
            cert,
            key,
            client_ca: None,
        };
        let tls = Reloading::load(files, &[Port::Client.alpn()]).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        let _listener = TlsListener::new(
            tcp,
            tls,
            Duration::from_millis(100),
            Port::Client,
            metrics.clone(),
        );
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0; 1];
        // The server gives up on the handshake and closes the socket.
        let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        let labels = TlsHandshakeLabels {
            port: "client",
            reason: "timeout",
        };
        assert_eq!(
            metrics.tls_handshake_failures.get_or_create(&labels).get(),
            1
        );
    }

    #[test]
    fn load_errors_name_the_file() {
        let pki = Pki::new();
        let (cert, key) = pki.leaf("server", "proxy.test");
        let missing = pki.dir.join("missing.pem");
        let err = |files| Reloading::load(files, &[]).err().unwrap().to_string();
        let e = err(TlsFiles {
            cert: missing.clone(),
            key: key.clone(),
            client_ca: None,
        });
        assert!(e.contains("missing.pem"), "{e}");
        let e = err(TlsFiles {
            cert: key.clone(),
            key: key.clone(),
            client_ca: None,
        });
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = err(TlsFiles {
            cert: cert.clone(),
            key: cert.clone(),
            client_ca: None,
        });
        assert!(e.contains("holds no PEM private key"), "{e}");
        let (_, other_key) = pki.leaf("other", "proxy.test");
        let e = err(TlsFiles {
            cert,
            key: other_key,
            client_ca: None,
        });
        assert!(e.contains("do not form a usable pair"), "{e}");
    }
}
