//! End-to-end test harness for Switchboard.
//!
//! Starts the real proxy binary and the sdk's example app servers as child
//! processes on free loopback ports, waits until they are ready, and talks to
//! them the way clients do: over plain HTTP, with the official JavaScript
//! client under Node and Chromium (see `tests/js`), with the Python clients
//! (see `tests/python`), or with the raw SignalR
//! client in [`signalr`] when a test needs control over every byte.
//!
//! The binaries are built by `scripts/test.sh` before the tests run; this
//! crate only locates them (see [`workspace`]).

pub mod app;
pub mod balancer;
pub mod bench_report;
pub mod http;
pub mod node;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod python;
pub mod redis;
pub mod signalr;
pub mod suite;
pub mod workspace;

pub use app::{AppServer, HubEvent};
pub use balancer::Balancer;
pub use process::Process;
pub use proxy::{Proxy, TEST_ACCESS_KEY};
pub use redis::Redis;
