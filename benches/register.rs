//! S1, the register linearizability check, on generated histories: 8 clients reading and
//! swapping one register, 20% of the swaps' outcomes unknown (10% of all operations), with and
//! without one stale read.
//! Each iteration reads the JSON lines and checks them, as `tenure history check FILE` does.
//!
//! Run: `cargo bench --bench register`. Target: 100,000 operations in at most 5 s (and 1 GB:
//! `cargo run --release --example register_history -- 100000 > h.jsonl` then
//! `/usr/bin/time -f "%e s %M KB" target/release/tenure history check h.jsonl`).

#[path = "shared/register.rs"]
mod generated;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use generated::{generate, Shape};
use tenure::history::register::RegisterHistory;

fn check(c: &mut Criterion) {
    let mut group = c.benchmark_group("register_s1");
    group.sample_size(10);
    for operations in [1_000, 10_000, 100_000] {
        for stale_read in [false, true] {
            let text = generate(Shape {
                operations,
                clients: 8,
                unknown_percent: 20,
                stale_read,
                seed: 1,
            });
            // The verdict is part of the target: a fast wrong answer does not count.
            let verdict = RegisterHistory::from_jsonl(&text)
                .expect("readable")
                .check()
                .expect("supported")
                .verdict;
            assert_eq!(
                verdict.is_err(),
                stale_read,
                "{operations} ops: {verdict:?}"
            );
            let name = match stale_read {
                true => format!("{operations}_ops_one_stale_read"),
                false => format!("{operations}_ops"),
            };
            group.throughput(Throughput::Elements(operations as u64));
            group.bench_function(name, |b| {
                b.iter(|| {
                    let history = RegisterHistory::from_jsonl(black_box(&text)).expect("readable");
                    black_box(history.check().expect("supported").verdict.is_ok())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
