//! Fan-out must not allocate per recipient: a send is encoded once per
//! protocol and the shared frame is cloned (a reference count) into each
//! outbox. Counts heap allocations with dhat and fails if a send to 1 000
//! recipients allocates more than a send to 10.

#[path = "../benches/fixture/fanout.rs"]
mod fixture;

use fixture::{GROUP, drain, router, send};
use switchboard_proto::Payload;
use switchboard_proxy::router::Audience;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Heap blocks allocated by one send to `n` recipients (half JSON, half
/// MessagePack) of `audience`, measured after a warm-up send so outboxes
/// already hold their queue storage, as they do on a busy connection.
fn blocks_per_send(n: usize, audience: Audience<'_>) -> u64 {
    let (router, handles) = router(n, n);
    let payload = Payload::json(&b"[1,42,1763800000000000,\"0123456789\"]"[..]);
    let mut scratch = Vec::with_capacity(4);
    assert_eq!(send(&router, audience, &payload), n);
    drain(&handles, &mut scratch);
    let before = dhat::HeapStats::get().total_blocks;
    let delivered = send(&router, audience, &payload);
    let blocks = dhat::HeapStats::get().total_blocks - before;
    assert_eq!(delivered, n);
    drain(&handles, &mut scratch);
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
