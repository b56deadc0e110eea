//! Per-segment checksum throughput: `SegmentHasher` (crc32c per segment plus the whole
//! chunk) over 1 MiB in 64 KiB segments, fed whole and in 16 KiB network-sized pieces.
//!
//! `cargo bench -p oxio-rawx --bench checksum` (add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use oxio_rawx::config::DEFAULT_SEGMENT_BYTES;
use oxio_rawx::format::SegmentHasher;
use std::hint::black_box;

/// Bytes hashed per iteration.
const DATA_BYTES: usize = 1 << 20;
/// Size of the pieces in the streamed variant (a typical socket read).
const PIECE_BYTES: usize = 16 * 1024;

fn checksum(c: &mut Criterion) {
    let data: Vec<u8> = (0..DATA_BYTES as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut group = c.benchmark_group("segment_checksum");
    group.throughput(Throughput::Bytes(DATA_BYTES as u64));
    group.bench_function("1MiB_64KiB_whole", |b| {
        b.iter(|| {
            let mut h = SegmentHasher::new(DEFAULT_SEGMENT_BYTES);
            h.update(black_box(&data));
            black_box(h.finish())
        })
    });
    group.bench_function("1MiB_64KiB_16KiB_pieces", |b| {
        b.iter(|| {
            let mut h = SegmentHasher::new(DEFAULT_SEGMENT_BYTES);
            for piece in black_box(&data).chunks(PIECE_BYTES) {
                h.update(piece);
            }
            black_box(h.finish())
        })
    });
    group.finish();
}

criterion_group!(benches, checksum);
criterion_main!(benches);
