//! Router fan-out micro-benchmarks: one app-server send queued for every
//! recipient (to all of a hub, and to one group), half the recipients on
//! JSON and half on MessagePack, so each send is encoded twice and the
//! frames are shared. Only the send is timed; the outboxes are drained
//! between iterations, as connection writers would.

#[path = "fixture/fanout.rs"]
mod fixture;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Bencher, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fixture::{GROUP, drain, router, send};
use switchboard_proto::Payload;
use switchboard_proxy::router::Audience;

/// Group members in the group benchmark.
const GROUP_SIZE: usize = 100;

fn fanout(c: &mut Criterion) {
    let payload = Payload::json(format!("[1,42,1763800000000000,\"{}\"]", "x".repeat(100)));
    let mut group = c.benchmark_group("fanout_100_bytes");
    let mut scratch = Vec::new();
    for n in [1_000, 10_000] {
        let (router, handles) = router(n, GROUP_SIZE);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("all", n), |b| {
            timed(
                b,
                || send(&router, Audience::All, &payload),
                || drain(&handles, &mut scratch),
            );
        });
    }
    let (router, handles) = router(1_000, GROUP_SIZE);
    group.throughput(Throughput::Elements(GROUP_SIZE as u64));
    group.bench_function(BenchmarkId::new("group", GROUP_SIZE), |b| {
        timed(
            b,
            || send(&router, Audience::Group(GROUP), &payload),
            || drain(&handles[..GROUP_SIZE], &mut scratch),
        );
    });
    group.finish();
}

/// Times `send` alone; `drain` empties the outboxes after each one.
fn timed(b: &mut Bencher, mut send: impl FnMut() -> usize, mut drain: impl FnMut()) {
    b.iter_custom(|iterations| {
        let mut spent = Duration::ZERO;
        for _ in 0..iterations {
            let started = Instant::now();
            black_box(send());
            spent += started.elapsed();
            drain();
        }
        spent
    });
}

criterion_group!(benches, fanout);
criterion_main!(benches);
