//! `chat`: a small chat room served through Switchboard.
//!
//! Serves the page at `/`, the official SignalR browser bundle at
//! `/signalr.js` and `POST /chat/negotiate`; the hub `chat` runs here while
//! the proxy holds the browsers' connections.
//!
//! ```text
//! npm install --prefix sdk/examples/chat
//! SWITCHBOARD_CONNECTION_STRING='Endpoint=http://localhost:8080;AccessKey=...' \
//!     chat --listen 127.0.0.1:5000
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use switchboard_sdk::{ConnectionString, Context, Hub, NegotiateOptions, Server};

const PAGE: &str = include_str!("index.html");

/// The chat example app server.
#[derive(Debug, Parser)]
struct Args {
    /// Address for the page and the negotiate route.
    #[arg(long, default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
    /// The official browser bundle of `@microsoft/signalr`.
    #[arg(
        long,
        default_value = "sdk/examples/chat/node_modules/@microsoft/signalr/dist/browser/signalr.min.js"
    )]
    signalr_js: PathBuf,
    /// The proxy's connection string.
    #[arg(long, env = "SWITCHBOARD_CONNECTION_STRING", hide_env_values = true)]
    connection_string: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let conn = ConnectionString::parse(&args.connection_string)
        .context("SWITCHBOARD_CONNECTION_STRING")?;
    if !args.signalr_js.is_file() {
        tracing::warn!(
            path = %args.signalr_js.display(),
            "SignalR browser bundle not found; run `npm install --prefix sdk/examples/chat` or pass --signalr-js"
        );
    }

    let server = Server::builder(conn).hub(chat_hub()).start();
    // Everyone may chat: the name is chosen in the page, not authenticated.
    let negotiate = server.negotiate_routes(|_request| async { Ok(NegotiateOptions::new()) });
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/signalr.js", get(signalr_js))
        .with_state(Arc::new(args.signalr_js))
        .merge(negotiate);

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "chat listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    server.shutdown().await;
    Ok(())
}

fn chat_hub() -> Hub {
    Hub::builder("chat")
        .method(
            "SendMessage",
            |ctx: Context, (user, message): (String, String)| async move {
                ctx.clients()
                    .all()
                    .send("ReceiveMessage", (user, message))
                    .await
            },
        )
        .method(
            "JoinGroup",
            |ctx: Context, (group,): (String,)| async move { ctx.groups().join(&group).await },
        )
        .method(
            "LeaveGroup",
            |ctx: Context, (group,): (String,)| async move { ctx.groups().leave(&group).await },
        )
        .method(
            "SendToGroup",
            |ctx: Context, (group, user, message): (String, String, String)| async move {
                ctx.clients()
                    .group(group)
                    .send("ReceiveMessage", (user, message))
                    .await
            },
        )
        .build()
}

/// Read per request so installing the package needs no restart.
async fn signalr_js(State(path): State<Arc<PathBuf>>) -> Response {
    match tokio::fs::read(path.as_path()).await {
        Ok(bundle) => (
            [(
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            )],
            bundle,
        )
            .into_response(),
        Err(err) => (
            StatusCode::NOT_FOUND,
            format!(
                "cannot read {}: {err}; run `npm install --prefix sdk/examples/chat`",
                path.display()
            ),
        )
            .into_response(),
    }
}
