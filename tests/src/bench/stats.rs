//! What receivers count: a mergeable latency histogram, per-stream delivery
//! counts (with duplicates and reordering), and how connections ended.
//! Workers fill a [`Window`] and send it to the parent as JSON; the parent
//! merges the windows of all workers.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two: values are kept to within 1/64 (1.6 %).
const SUB_BUCKETS: u64 = 64;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
const BUCKETS: usize = (SUB_BUCKETS as usize) * (65 - SUB_BITS as usize);

/// A log-linear histogram of microsecond values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "SparseHistogram", from = "SparseHistogram")]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

/// The wire form of [`Histogram`]: only the non-empty buckets.
#[derive(Serialize, Deserialize)]
struct SparseHistogram {
    max: u64,
    buckets: Vec<(u32, u64)>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
            count: 0,
            max: 0,
        }
    }
}

impl From<Histogram> for SparseHistogram {
    fn from(h: Histogram) -> Self {
        let buckets = h
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(i, count)| (i as u32, *count))
            .collect();
        Self {
            max: h.max,
            buckets,
        }
    }
}

impl From<SparseHistogram> for Histogram {
    fn from(s: SparseHistogram) -> Self {
        let mut h = Self::default();
        for (i, count) in s.buckets {
            if let Some(bucket) = h.buckets.get_mut(i as usize) {
                *bucket += count;
                h.count += count;
            }
        }
        h.max = s.max;
        h
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - SUB_BITS;
    let sub = (value >> shift) - SUB_BUCKETS;
    (SUB_BUCKETS * (u64::from(shift) + 1) + sub) as usize
}

/// The smallest value that falls into `bucket`.
fn lower_bound(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < SUB_BUCKETS {
        return bucket;
    }
    let shift = bucket / SUB_BUCKETS - 1;
    (SUB_BUCKETS + bucket % SUB_BUCKETS) << shift
}

impl Histogram {
    /// Adds one value.
    pub fn record(&mut self, value: u64) {
        self.buckets[bucket_of(value)] += 1;
        self.count += 1;
        self.max = self.max.max(value);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value at quantile `q` (0..=1), to within the bucket width; the
    /// exact maximum for `q == 1`; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        if q >= 1.0 {
            return self.max;
        }
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return lower_bound(i).min(self.max);
            }
        }
        self.max
    }

    /// p50, p99, p99.9 and max in milliseconds, for reports.
    pub fn summary_ms(&self) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: self.count,
            p50: ms(self.quantile(0.5)),
            p99: ms(self.quantile(0.99)),
            p999: ms(self.quantile(0.999)),
            max: ms(self.quantile(1.0)),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

/// Deliveries of one stream, summed over receivers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamCounts {
    /// Messages received, duplicates included.
    pub received: u64,
    /// Messages whose sequence number the receiver had already seen.
    pub duplicates: u64,
    /// Messages that arrived after one with a higher sequence number.
    pub reordered: u64,
}

impl StreamCounts {
    /// Distinct messages received.
    pub fn unique(&self) -> u64 {
        self.received - self.duplicates
    }

    fn merge(&mut self, other: &Self) {
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
    }
}

/// What a group of receivers saw: per-stream counts and latency.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Part {
    /// Counts by stream id.
    pub streams: BTreeMap<u64, StreamCounts>,
    /// Send-to-receive latency (or round-trip time for echo), microseconds.
    pub latency: Histogram,
    /// Errors seen (wrong echo, undecodable message), with one example.
    pub errors: u64,
    /// The first error's text.
    pub first_error: Option<String>,
}

impl Part {
    /// Adds everything of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (stream, counts) in &other.streams {
            self.streams.entry(*stream).or_default().merge(counts);
        }
        self.latency.merge(&other.latency);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    /// Counts an error, keeping the first one's text.
    pub fn error(&mut self, text: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(text());
        }
    }

    /// Sums the counts of every stream.
    pub fn totals(&self) -> StreamCounts {
        let mut total = StreamCounts::default();
        for counts in self.streams.values() {
            total.merge(counts);
        }
        total
    }
}

/// Everything workers report for a measurement window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Window {
    /// Clients receiving normally.
    pub healthy: Part,
    /// Clients told to stop reading (the slow-consumer scenario).
    pub slow: Part,
    /// How connections ended during the window, by description, and for
    /// the slow clients separately.
    pub ended: BTreeMap<String, u64>,
    /// Ends of slow clients, by description.
    pub slow_ended: BTreeMap<String, u64>,
}

impl Window {
    /// Adds everything of `other`.
    pub fn merge(&mut self, other: &Self) {
        self.healthy.merge(&other.healthy);
        self.slow.merge(&other.slow);
        for (why, n) in &other.ended {
            *self.ended.entry(why.clone()).or_default() += n;
        }
        for (why, n) in &other.slow_ended {
            *self.slow_ended.entry(why.clone()).or_default() += n;
        }
    }
}

/// One receiver's view of the sequence numbers it got, per stream.
#[derive(Debug, Default)]
pub struct SequenceTracker {
    streams: HashMap<u64, Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    highest: Option<u64>,
    /// Bit `seq` set once `seq` arrived.
    bits: Vec<u64>,
}

/// How one arrival relates to what came before on its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A new sequence number, in order.
    InOrder,
    /// A new sequence number lower than one already seen.
    Reordered,
    /// A sequence number already seen.
    Duplicate,
}

impl SequenceTracker {
    /// Notes `seq` on `stream`.
    pub fn note(&mut self, stream: u64, seq: u64) -> Arrival {
        let seen = self.streams.entry(stream).or_default();
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if seen.bits.len() <= word {
            seen.bits.resize(word + 1, 0);
        }
        if seen.bits[word] & (1 << bit) != 0 {
            return Arrival::Duplicate;
        }
        seen.bits[word] |= 1 << bit;
        match seen.highest {
            Some(highest) if seq < highest => Arrival::Reordered,
            _ => {
                seen.highest = Some(seq);
                Arrival::InOrder
            }
        }
    }
}

impl Part {
    /// Records one arrival on `stream` with its latency.
    pub fn arrival(&mut self, stream: u64, arrival: Arrival, latency_us: u64) {
        let counts = self.streams.entry(stream).or_default();
        counts.received += 1;
        match arrival {
            Arrival::InOrder => {}
            Arrival::Reordered => counts.reordered += 1,
            Arrival::Duplicate => counts.duplicates += 1,
        }
        self.latency.record(latency_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for value in (0..2_000_000u64).step_by(97) {
            let b = bucket_of(value);
            assert!(b >= last, "bucket of {value} went back");
            last = b;
            let low = lower_bound(b);
            assert!(low <= value, "{value} below its bucket's bound {low}");
            assert!(value - low <= value / 64 + 1, "{value} too far from {low}");
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_a_uniform_run() {
        let mut h = Histogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((4900..=5000).contains(&p50), "p50 {p50}");
        assert!((9750..=9900).contains(&p99), "p99 {p99}");
        assert_eq!(h.quantile(1.0), 10_000);
        let round: Histogram = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(round.count(), 10_000);
        assert_eq!(round.quantile(0.99), p99);
    }

    #[test]
    fn tracker_tells_duplicates_from_reordering() {
        let mut t = SequenceTracker::default();
        assert_eq!(t.note(1, 0), Arrival::InOrder);
        assert_eq!(t.note(1, 2), Arrival::InOrder);
        assert_eq!(t.note(1, 1), Arrival::Reordered);
        assert_eq!(t.note(1, 2), Arrival::Duplicate);
        assert_eq!(t.note(2, 0), Arrival::InOrder);
        assert_eq!(t.note(1, 300), Arrival::InOrder);
    }
}
