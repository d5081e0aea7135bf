//! Criterion benchmark of the sample generator behind `billrun generate` and the
//! capacity runs: events written per second, for the few-large-customers shape and the
//! telecom shape (a few events per account). It replaces a throughput "test" that timed
//! one run and asserted nothing.
//!
//! `cargo bench -p billrun-benches --bench generate`.
#![allow(missing_docs)]

use billrun_samples::{GenerateOptions, generate};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const EVENTS: u64 = 200_000;

fn generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    for customers in [1_000, 100_000] {
        group.bench_function(
            BenchmarkId::new("events", format!("{EVENTS}/{customers}")),
            |b| {
                b.iter(|| {
                    let dir = tempfile::tempdir().expect("temporary folder");
                    let options = GenerateOptions {
                        customers,
                        events: EVENTS,
                        out: dir.path().to_path_buf(),
                        ..GenerateOptions::default()
                    };
                    let summary = generate(&options, &|_| {}).expect("generated");
                    // A run that wrote less would be fast and wrong.
                    assert_eq!(summary.events_written, EVENTS);
                    summary
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, generation);
criterion_main!(benches);
