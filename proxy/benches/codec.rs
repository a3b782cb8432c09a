//! Codec micro-benchmarks: encoding a server-to-client invocation in each
//! hub protocol (what fan-out does once per protocol per message),
//! decoding client invocations, and converting JSON arguments to
//! MessagePack (what MessagePack recipients of an app server's send need).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchboard_proxy::protocol::{json, messagepack, transcode};

/// Payload sizes the broadcast scenario uses.
const SIZES: [usize; 2] = [100, 2048];

/// JSON arguments `[stream, seq, sentMicros, "x…"]` with `size` bytes of padding.
fn arguments(size: usize) -> Vec<u8> {
    format!("[1,42,1763800000000000,\"{}\"]", "x".repeat(size)).into_bytes()
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_invocation");
    for size in SIZES {
        let json_args = arguments(size);
        let pack_args = transcode::json_to_messagepack(&json_args).expect("valid JSON");
        group.throughput(Throughput::Bytes(json_args.len() as u64));
        group.bench_with_input(BenchmarkId::new("json", size), &json_args, |b, args| {
            b.iter(|| json::invocation(None, black_box("Bench"), black_box(args)));
        });
        group.bench_with_input(
            BenchmarkId::new("messagepack", size),
            &pack_args,
            |b, args| b.iter(|| messagepack::invocation(None, black_box("Bench"), black_box(args))),
        );
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_invocation");
    for size in SIZES {
        let json_args = arguments(size);
        let json_frame = json::invocation(Some("7"), "Echo", &json_args);
        let pack_args = transcode::json_to_messagepack(&json_args).expect("valid JSON");
        let pack_frame = messagepack::invocation(Some("7"), "Echo", &pack_args);
        group.throughput(Throughput::Bytes(json_frame.len() as u64));
        group.bench_with_input(BenchmarkId::new("json", size), &json_frame, |b, frame| {
            b.iter(|| {
                let mut decoder = json::Decoder::new(1 << 20);
                decoder.push(black_box(frame)).expect("fits");
                decoder.next_message().expect("valid").expect("complete")
            });
        });
        group.bench_with_input(
            BenchmarkId::new("messagepack", size),
            &pack_frame,
            |b, frame| {
                b.iter(|| {
                    let mut decoder = messagepack::Decoder::new(1 << 20);
                    decoder.push(black_box(frame)).expect("fits");
                    decoder.next_message().expect("valid").expect("complete")
                });
            },
        );
    }
    group.finish();
}

fn convert(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_to_messagepack");
    for size in SIZES {
        let args = arguments(size);
        group.throughput(Throughput::Bytes(args.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &args, |b, args| {
            b.iter(|| transcode::json_to_messagepack(black_box(args)).expect("valid JSON"));
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode, convert);
criterion_main!(benches);
