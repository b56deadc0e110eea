//! MD5 throughput (the S3 ETag of a single-part upload): one message at a time with
//! RustCrypto's `md-5` and with `md5-many`, and N messages of 1 MiB stripes hashed side
//! by side as uploads in flight are (`oxio_sdk::md5_batch::update_side_by_side`;
//! throughput counts the bytes of all N messages).
//!
//! `cargo bench -p oxio-sdk --bench md5` (add `-- --quick` for a short run).

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use md5::Digest;
use md5_many::Md5State;
use oxio_sdk::md5_batch::update_side_by_side;
use std::hint::black_box;

use common::{stripe as message, STRIPE_BYTES};

fn single(c: &mut Criterion) {
    let data = message(0);
    let mut group = c.benchmark_group("md5_single");
    group.throughput(Throughput::Bytes(STRIPE_BYTES as u64));
    group.bench_function("md-5", |b| {
        b.iter(|| black_box(md5::Md5::digest(black_box(&data))))
    });
    group.bench_function("md5-many", |b| {
        b.iter(|| black_box(md5_many::md5(black_box(&data))))
    });
    group.finish();
}

fn batched(c: &mut Criterion) {
    let messages: Vec<Vec<u8>> = (0..16).map(message).collect();
    let mut group = c.benchmark_group("md5_batched");
    for n in [1usize, 2, 4, 8, 16] {
        group.throughput(Throughput::Bytes((n * STRIPE_BYTES) as u64));
        let inputs: Vec<&[u8]> = messages[..n].iter().map(Vec::as_slice).collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &inputs, |b, inputs| {
            let mut states = vec![Md5State::new(); n];
            b.iter(|| update_side_by_side(black_box(&mut states), black_box(inputs)))
        });
    }
    group.finish();
}

criterion_group!(benches, single, batched);
criterion_main!(benches);
