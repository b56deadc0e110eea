//! Erasure coding throughput: `StripeEncoder::encode` and `reconstruct` with 0, 1 and 2
//! lost data shards, for 4+2 and 8+4 over 1 MiB stripes.
//!
//! `cargo bench -p oxio-sdk --bench ec` (add `-- --quick` for a short run).

mod common;

use bytes::Bytes;
use common::STRIPE_BYTES;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use oxio_sdk::ec::{reconstruct, Geometry, StripeEncoder};
use std::hint::black_box;

/// The geometries measured, as (k, m).
const GEOMETRIES: [(usize, usize); 2] = [(4, 2), (8, 4)];

fn stripe() -> Bytes {
    common::stripe(0).into()
}

fn encode(c: &mut Criterion) {
    let data = stripe();
    let mut group = c.benchmark_group("ec_encode");
    group.throughput(Throughput::Bytes(STRIPE_BYTES as u64));
    for (k, m) in GEOMETRIES {
        let geo = Geometry {
            k,
            m,
            stripe_bytes: STRIPE_BYTES,
        };
        let mut enc = StripeEncoder::new(geo);
        group.bench_function(BenchmarkId::from_parameter(format!("{k}+{m}")), |b| {
            b.iter(|| black_box(enc.encode(black_box(&data)).unwrap()))
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let data = stripe();
    let mut group = c.benchmark_group("ec_reconstruct");
    group.throughput(Throughput::Bytes(STRIPE_BYTES as u64));
    for (k, m) in GEOMETRIES {
        let geo = Geometry {
            k,
            m,
            stripe_bytes: STRIPE_BYTES,
        };
        let shards = StripeEncoder::new(geo).encode(&data).unwrap();
        let shard_len = geo.shard_len(STRIPE_BYTES);
        for lost in 0..=2usize {
            // Lose the first `lost` data shards: the decoder must rebuild them.
            let partial: Vec<Option<Vec<u8>>> = shards
                .iter()
                .enumerate()
                .map(|(j, s)| (j >= lost).then(|| s.to_vec()))
                .collect();
            let id = BenchmarkId::new(format!("{k}+{m}"), format!("lost{lost}"));
            group.bench_with_input(id, &partial, |b, partial| {
                b.iter(|| black_box(reconstruct(geo, shard_len, black_box(partial)).unwrap()))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
