//! Fan-out must not allocate per recipient: a send is encoded once per
//! protocol and the shared frame is cloned (a reference count) into each
//! outbox. Counts heap allocations with dhat and fails if a send to 1 000
//! recipients allocates more than a send to 10.

use std::sync::Arc;

use switchboard_proto::Payload;
use switchboard_proxy::connection::handle::{Handle, Meta, Protocol};
use switchboard_proxy::ids::{ConnectionId, NodeId};
use switchboard_proxy::router::frames;
use switchboard_proxy::router::{Audience, Encoded, Router};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const HUB: &str = "bench";
const GROUP: &str = "everyone";

/// Heap blocks allocated by one send to `n` recipients (half JSON, half
/// MessagePack) of `audience`, measured after a warm-up send so outboxes
/// already hold their queue storage, as they do on a busy connection.
fn blocks_per_send(n: usize, audience: Audience<'_>) -> u64 {
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
                1 << 30,
                Meta::default(),
            ));
            router.add(handle.clone());
            router
                .group_add(HUB, GROUP, handle.id.as_str())
                .expect("just added");
            handle
        })
        .collect();
    let payload = Payload::json(&b"[1,42,1763800000000000,\"0123456789\"]"[..]);
    let send = || {
        let encode = |protocol| frames::invocation(protocol, None, "Bench", &payload).ok();
        let mut message = Encoded::new(&encode);
        router.send(HUB, audience, &[], &mut message)
    };
    let mut scratch = Vec::with_capacity(4);
    let mut drain = || {
        for handle in &handles {
            handle.outbox.drain(&mut scratch);
            scratch.clear();
        }
    };
    assert_eq!(send().delivered, n);
    drain();
    let before = dhat::HeapStats::get().total_blocks;
    let delivery = send();
    let blocks = dhat::HeapStats::get().total_blocks - before;
    assert_eq!(delivery.delivered, n);
    drain();
    blocks
}

#[test]
fn fanout_allocations_do_not_grow_with_recipients() {
    let _profiler = dhat::Profiler::builder().testing().build();
    for (name, audience) in [("all", Audience::All), ("group", Audience::Group(GROUP))] {
        let few = blocks_per_send(10, audience);
        let many = blocks_per_send(1_000, audience);
        // Encoding once per protocol takes a few blocks; none may be per recipient.
        dhat::assert!(
            few <= 16,
            "a send to 10 recipients ({name}) allocated {few} blocks"
        );
        dhat::assert_eq!(
            few,
            many,
            "a send ({name}) allocated {few} blocks for 10 recipients but {many} for 1 000"
        );
    }
}
