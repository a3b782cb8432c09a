//! `testhub`: the conformance app server used by Switchboard's end-to-end
//! tests. It serves hubs `testhub`, `testhub-nowebsockets` (the same
//! methods; the proxy is told to offer it no WebSockets) and `authorizedhub`
//! (negotiate needs an app token from `GET /generateJwtToken`), each with one
//! method per behaviour under test (including the streaming ones of the
//! SignalR client test suites), plus HTTP routes to negotiate, mint tokens,
//! read the connect/disconnect log, invoke a client for a result
//! (`/clientresult/{connectionId}`), check readiness, and the negotiate edges
//! of [`conformance`] (`/redirect`, `/bad-negotiate`, cookies, CORS).
//!
//! ```text
//! SWITCHBOARD_CONNECTION_STRING='Endpoint=http://127.0.0.1:8080;AccessKey=...' \
//!     testhub --listen 127.0.0.1:5001 [--server-id a]
//! ```

mod complex;
mod conformance;
mod scale_out;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context as _;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use clap::Parser;
use complex::ComplexObject;
use futures_util::{StreamExt, stream};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use switchboard_sdk::{
    ConnectionString, Context, Disconnect, Hub, HubContext, HubError, NegotiateOptions,
    NegotiateRequest, Server, UploadStream,
};

const HUB: &str = "testhub";
/// The same hub as [`HUB`], for clients that must not use WebSockets.
const HUB_NO_WEBSOCKETS: &str = "testhub-nowebsockets";
/// The same hub as [`HUB`] behind the app's own authentication.
const HUB_AUTHORIZED: &str = "authorizedhub";

/// The test hub app server.
#[derive(Debug, Parser)]
struct Args {
    /// Address for the HTTP routes (negotiate, token, events, health).
    #[arg(long)]
    listen: SocketAddr,
    /// Name announced to the proxy and returned by `GetServerId`.
    #[arg(long, default_value = "testhub")]
    server_id: String,
    /// The proxy's connection string.
    #[arg(long, env = "SWITCHBOARD_CONNECTION_STRING", hide_env_values = true)]
    connection_string: String,
    /// PEM CA bundle that signed the proxies' upstream certificates
    /// (`https://` server endpoints); default: the system's roots.
    #[arg(long)]
    server_ca: Option<std::path::PathBuf>,
    /// PEM certificate presented to proxies that require client
    /// certificates; needs `--client-key`.
    #[arg(long, requires = "client_key")]
    client_cert: Option<std::path::PathBuf>,
    /// PEM key of `--client-cert`.
    #[arg(long, requires = "client_cert")]
    client_key: Option<std::path::PathBuf>,
}

/// One entry of `GET /events`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    event: &'static str,
    connection_id: String,
    user_id: Option<String>,
}

type Events = Arc<Mutex<Vec<Event>>>;

#[derive(Clone)]
struct AppState {
    server: Server,
    events: Events,
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

    let events = Events::default();
    let mut builder = Server::builder(conn).server_id(args.server_id.clone());
    let read = |path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    if let Some(ca) = &args.server_ca {
        builder = builder.tls_ca_certificate(read(ca)?);
    }
    if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
        builder = builder.tls_identity(read(cert)?, read(key)?);
    }
    for hub in [HUB, HUB_NO_WEBSOCKETS, HUB_AUTHORIZED] {
        builder = builder.hub(test_hub(hub, args.server_id.clone(), events.clone()));
    }
    let server = builder.start();

    let auth = Arc::new(conformance::AppAuth::new());
    let negotiate = {
        let auth = auth.clone();
        server
            .negotiate_routes(move |request| negotiate_options(auth.clone(), request))
            .layer(axum::middleware::map_response(
                conformance::negotiate_cookies,
            ))
    };
    let edges = Router::new()
        .route("/generateJwtToken", get(conformance::generate_jwt_token))
        .route("/redirect/negotiate", post(conformance::redirect))
        .route("/bad-negotiate", any(conformance::bad_negotiate))
        .route("/bad-negotiate/negotiate", any(conformance::bad_negotiate))
        .with_state(conformance::Edges {
            auth,
            negotiator: server.negotiator().clone(),
            redirects: Arc::new(AtomicU64::new(0)),
        });
    let app = Router::new()
        .route("/token", get(token))
        .route("/events", get(list_events))
        .route("/health", get(health))
        .route("/clientresult/{connection_id}", get(client_result))
        .merge(negotiate)
        .with_state(AppState {
            server: server.clone(),
            events,
        })
        .merge(edges)
        .layer(axum::middleware::from_fn(conformance::permissive_cors));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "testhub listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    server.shutdown().await;
    Ok(())
}

/// For `authorizedhub` the user is the one named by the app token in
/// `Authorization: Bearer`, and negotiate answers 401 without a valid one.
/// For the other hubs the user comes from the `user` query parameter, as in
/// `withUrl("http://APP/testhub?user=alice")`; none means anonymous. A
/// `numRedirects` query parameter (left by `/redirect`) becomes a claim of
/// the same name, which `GetNumRedirects` reads back.
async fn negotiate_options(
    auth: Arc<conformance::AppAuth>,
    request: NegotiateRequest,
) -> Result<NegotiateOptions, axum::response::Response> {
    let mut options = NegotiateOptions::new();
    if request.hub().eq_ignore_ascii_case(HUB_AUTHORIZED) {
        let Some(user) = auth.user(request.headers()) else {
            return Err((
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            )
                .into_response());
        };
        options = options.user_id(user);
    } else if let Some(user) = request.query_param("user").filter(|user| !user.is_empty()) {
        options = options.user_id(user);
    }
    if let Some(count) = request
        .query_param("numRedirects")
        .and_then(|count| count.parse::<u64>().ok())
    {
        options = options.claim("numRedirects", count);
    }
    Ok(options)
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    hub: Option<String>,
    user: Option<String>,
    lifetime: Option<i64>,
}

/// `GET /token?hub=H&user=U&lifetime=SECS`: a client token as plain text.
async fn token(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
) -> impl IntoResponse {
    let mut options = NegotiateOptions::new();
    if let Some(user) = query.user.filter(|user| !user.is_empty()) {
        options = options.user_id(user);
    }
    if let Some(lifetime) = query.lifetime {
        options = options.lifetime_secs(lifetime);
    }
    let hub = query.hub.unwrap_or_else(|| HUB.to_owned());
    match state.server.negotiator().client_token(&hub, &options) {
        Ok(token) => (StatusCode::OK, token),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

async fn list_events(State(state): State<AppState>) -> Json<Vec<Event>> {
    Json(state.events.lock().clone())
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    if state.server.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "linking to the proxy")
    }
}

/// `GET /clientresult/{connectionId}`: invokes that client's `Result`
/// method and answers with its integer result, or the error text.
async fn client_result(
    State(state): State<AppState>,
    Path(connection_id): Path<String>,
) -> impl IntoResponse {
    let Some(hub) = state.server.hub(HUB) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "hub not served".to_owned(),
        );
    };
    let answer = hub
        .clients()
        .client(connection_id)
        .invoke::<i64>("Result", ())
        .await;
    match answer {
        Ok(value) => (StatusCode::OK, value.to_string()),
        Err(err) => (StatusCode::OK, err.to_string()),
    }
}

/// Tells the caller `StreamCanceled` when dropped, which happens when its
/// stream is cancelled (or the connection goes away).
struct NotifyCanceled {
    hub: HubContext,
    connection_id: String,
}

impl Drop for NotifyCanceled {
    fn drop(&mut self) {
        let caller = self
            .hub
            .clients()
            .client(std::mem::take(&mut self.connection_id));
        tokio::spawn(async move {
            if let Err(err) = caller.send("StreamCanceled", ()).await {
                tracing::debug!(error = %err, "cannot send StreamCanceled");
            }
        });
    }
}

fn test_hub(name: &str, server_id: String, events: Events) -> Hub {
    let connected = events.clone();
    scale_out::methods(Hub::builder(name))
        .on_connected(move |ctx: Context| {
            record(&connected, "connected", &ctx);
            async {}
        })
        .on_disconnected(move |ctx: Context, _: Disconnect| {
            record(&events, "disconnected", &ctx);
            async {}
        })
        .method("Echo", |_ctx: Context, (s,): (String,)| async move {
            Ok::<_, HubError>(s)
        })
        .method("GetCallerConnectionId", |ctx: Context, (): ()| async move {
            Ok::<_, HubError>(ctx.connection_id().to_owned())
        })
        .method("GetUserId", |ctx: Context, (): ()| async move {
            Ok::<_, HubError>(ctx.user_id().map(str::to_owned))
        })
        .method("ReturnNull", |_ctx: Context, (): ()| async move {
            Ok::<Option<String>, HubError>(None)
        })
        .method("DoNothing", |_ctx: Context, (): ()| async move {})
        .method(
            "ThrowException",
            |_ctx: Context, (msg,): (String,)| async move { Err::<(), _>(HubError::new(msg)) },
        )
        .method("SendToAll", |ctx: Context, (msg,): (String,)| async move {
            ctx.clients().all().send("Receive", (msg,)).await
        })
        .method(
            "SendToOthers",
            |ctx: Context, (msg,): (String,)| async move {
                ctx.clients().others().send("Receive", (msg,)).await
            },
        )
        .method(
            "SendToAllExcept",
            |ctx: Context, (msg, ids): (String, Vec<String>)| async move {
                ctx.clients().all_except(ids).send("Receive", (msg,)).await
            },
        )
        .method(
            "SendToCaller",
            |ctx: Context, (msg,): (String,)| async move {
                ctx.clients().caller().send("Receive", (msg,)).await
            },
        )
        .method(
            "SendToConnection",
            |ctx: Context, (id, msg): (String, String)| async move {
                ctx.clients().client(id).send("Receive", (msg,)).await
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
            |ctx: Context, (group, msg): (String, String)| async move {
                ctx.clients().group(group).send("Receive", (msg,)).await
            },
        )
        .method(
            "SendToOthersInGroup",
            |ctx: Context, (group, msg): (String, String)| async move {
                ctx.clients()
                    .others_in_group(group)
                    .send("Receive", (msg,))
                    .await
            },
        )
        .method(
            "SendToUser",
            |ctx: Context, (user, msg): (String, String)| async move {
                ctx.clients().user(user).send("Receive", (msg,)).await
            },
        )
        .method(
            "Flood",
            |ctx: Context, (count, size): (u64, usize)| async move {
                let all = ctx.clients().all();
                let payload = "x".repeat(size);
                for _ in 0..count {
                    all.send("Receive", (&payload,)).await?;
                }
                Ok::<_, HubError>(count)
            },
        )
        .stream_method("Stream", |_ctx: Context, (): ()| async {
            Ok::<_, HubError>(stream::iter(["a", "b", "c"].map(Ok::<_, HubError>)))
        })
        .stream_method("InfiniteStream", |ctx: Context, (): ()| async move {
            let notify = NotifyCanceled {
                hub: ctx.hub().clone(),
                connection_id: ctx.connection_id().to_owned(),
            };
            // Never yields; ends only when cancelled, which drops `notify`.
            let items = stream::pending::<Result<String, HubError>>().map(move |item| {
                let _ = &notify;
                item
            });
            Ok::<_, HubError>(items)
        })
        .stream_method("EmptyStream", |_ctx: Context, (): ()| async {
            Ok::<_, HubError>(stream::empty::<Result<i32, HubError>>())
        })
        .stream_method(
            "StreamThrowException",
            |_ctx: Context, (msg,): (String,)| async move {
                Err::<stream::Empty<Result<String, HubError>>, _>(HubError::new(msg))
            },
        )
        .method(
            "StreamingConcat",
            |_ctx: Context, (mut parts,): (UploadStream<String>,)| async move {
                let mut text = String::new();
                while let Some(part) = parts.next().await {
                    text.push_str(&part?);
                }
                Ok::<_, HubError>(text)
            },
        )
        .method(
            "InvokeClient",
            |ctx: Context, (target,): (String,)| async move {
                ctx.clients()
                    .caller()
                    .invoke::<serde_json::Value>(&target, ())
                    .await
                    .map_err(|err| HubError::new(err.to_string()))
            },
        )
        .method("GetServerId", move |_ctx: Context, (): ()| {
            let server_id = server_id.clone();
            async move { Ok::<_, HubError>(server_id) }
        })
        .method("GetNumRedirects", |ctx: Context, (): ()| async move {
            num_redirects(&ctx).ok_or_else(|| HubError::new("the client was not redirected"))
        })
        .method(
            "InvokeWithString",
            |ctx: Context, (message,): (String,)| async move {
                ctx.clients().caller().send("Message", (message,)).await
            },
        )
        .method(
            "SendCustomObject",
            |ctx: Context, (object,): (CustomObject,)| async move {
                ctx.clients().caller().send("CustomObject", (object,)).await
            },
        )
        .method(
            "GetActiveTransportName",
            |ctx: Context, (): ()| async move {
                Ok::<_, HubError>(ctx.connection().transport().to_owned())
            },
        )
        .method(
            "EchoComplexObject",
            |_ctx: Context, (object,): (ComplexObject,)| async move { Ok::<_, HubError>(object) },
        )
        .method("SendComplexObject", |_ctx: Context, (): ()| async move {
            Ok::<_, HubError>(ComplexObject::sample())
        })
        .method("GetContentTypeHeader", |ctx: Context, (): ()| async move {
            Ok::<_, HubError>(header(&ctx, "content-type"))
        })
        .method("GetHeader", |ctx: Context, (name,): (String,)| async move {
            Ok::<_, HubError>(header(&ctx, &name))
        })
        .method("GetCookie", |ctx: Context, (name,): (String,)| async move {
            Ok::<_, HubError>(cookie(&ctx, &name))
        })
        .build()
}

/// The argument of `SendCustomObject`, named as .NET clients name it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CustomObject {
    name: String,
    value: i64,
}

/// `numRedirects` from the connect URL's query (a redirect with a token
/// puts it there), else from the token's claims (a redirect to this app's
/// negotiate leaves it in the query that negotiate turns into a claim).
fn num_redirects(ctx: &Context) -> Option<u64> {
    let from_query = ctx.connection().query().split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "numRedirects").then(|| value.parse().ok())?
    });
    from_query.or_else(|| ctx.claims().get("numRedirects")?.as_u64())
}

/// A request header the proxy passed on; `None` when it did not.
fn header(ctx: &Context, name: &str) -> Option<String> {
    ctx.connection()
        .headers()
        .get(&name.to_ascii_lowercase())
        .cloned()
}

/// A cookie from the `Cookie` header, if the proxy passed that on.
fn cookie(ctx: &Context, name: &str) -> Option<String> {
    header(ctx, "cookie")?.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

fn record(events: &Events, event: &'static str, ctx: &Context) {
    events.lock().push(Event {
        event,
        connection_id: ctx.connection_id().to_owned(),
        user_id: ctx.user_id().map(str::to_owned),
    });
}
