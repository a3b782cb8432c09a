//! Router fan-out micro-benchmarks: one app-server send queued for every
//! recipient (to all of a hub, and to one group), half the recipients on
//! JSON and half on MessagePack, so each send is encoded twice and the
//! frames are shared. Only the send is timed; the outboxes are drained
//! between iterations, as connection writers would.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchboard_proto::Payload;
use switchboard_proxy::connection::handle::{Handle, Meta, Protocol};
use switchboard_proxy::connection::outbox::Frame;
use switchboard_proxy::ids::{ConnectionId, NodeId};
use switchboard_proxy::router::frames;
use switchboard_proxy::router::{Audience, Encoded, Router};

const HUB: &str = "bench";
const GROUP: &str = "g";
/// Group members in the group benchmark.
const GROUP_SIZE: usize = 100;

/// A router with `n` connections to [`HUB`], the first [`GROUP_SIZE`] in [`GROUP`].
fn router(n: usize) -> (Router, Vec<Arc<Handle>>) {
    let router = Router::new();
    let node = NodeId::random();
    let handles: Vec<Arc<Handle>> = (0..n)
        .map(|i| {
            let protocol = if i % 2 == 0 {
                Protocol::Json
            } else {
                Protocol::MessagePack
            };
            let handle = Arc::new(Handle::new(
                ConnectionId::random(&node),
                HUB.into(),
                None,
                protocol,
                usize::MAX / 2,
                Meta::default(),
            ));
            router.add(handle.clone());
            if i < GROUP_SIZE {
                router
                    .group_add(HUB, GROUP, handle.id.as_str())
                    .expect("just added");
            }
            handle
        })
        .collect();
    (router, handles)
}

fn send(router: &Router, audience: Audience<'_>, payload: &Payload) -> usize {
    let encode = |protocol| frames::invocation(protocol, None, "Bench", payload).ok();
    let mut message = Encoded::new(&encode);
    router.send(HUB, audience, &[], &mut message).delivered
}

fn drain(handles: &[Arc<Handle>], scratch: &mut Vec<Frame>) {
    for handle in handles {
        handle.outbox.drain(scratch);
        scratch.clear();
    }
}

fn fanout(c: &mut Criterion) {
    let payload = Payload::json(format!("[1,42,1763800000000000,\"{}\"]", "x".repeat(100)));
    let mut group = c.benchmark_group("fanout_100_bytes");
    for n in [1_000, 10_000] {
        let (router, handles) = router(n);
        let mut scratch = Vec::new();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("all", n), |b| {
            b.iter_custom(|iterations| {
                let mut spent = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    black_box(send(&router, Audience::All, &payload));
                    spent += started.elapsed();
                    drain(&handles, &mut scratch);
                }
                spent
            });
        });
    }
    let (router, handles) = router(1_000);
    let mut scratch = Vec::new();
    group.throughput(Throughput::Elements(GROUP_SIZE as u64));
    group.bench_function(BenchmarkId::new("group", GROUP_SIZE), |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                black_box(send(&router, Audience::Group(GROUP), &payload));
                spent += started.elapsed();
                drain(&handles[..GROUP_SIZE], &mut scratch);
            }
            spent
        });
    });
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
