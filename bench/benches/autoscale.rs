//! The autoscaling algorithm's cost per service, for a simulator that drives thousands of them.
//!
//! - `autoscale/two_seconds`: what one service costs per decision interval as the controller and a
//!   simulator drive it: two one-second samples recorded and one decision, on an autoscaler whose
//!   60 s window is full, under a load that moves every second (so the windows' sums change).
//! - `autoscale/record`: one sample alone.
//!
//! Multiply `two_seconds` by services x simulated seconds / 2 for a simulation's autoscaling time.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use wasmpod_autoscale::{Autoscaler, Sample, Settings};

fn sample(second: u64) -> Sample {
    // A sawtooth between 2000 and 30000 MB: decisions go up and down, panic comes and goes.
    let memory_mb = 2000.0 + (second % 97) as f64 * 290.0;
    Sample { memory_mb, concurrency: memory_mb / 100.0 }
}

fn autoscale(c: &mut Criterion) {
    let mut group = c.benchmark_group("autoscale");
    let mut autoscaler = Autoscaler::new(Settings::with_capacity(8000.0)).expect("settings");
    let mut second = 0u64;
    let mut ready = 1;
    for _ in 0..120 {
        autoscaler.record(Duration::from_secs(second), sample(second));
        second += 1;
    }
    group.bench_function("two_seconds", |b| {
        b.iter(|| {
            for _ in 0..2 {
                autoscaler.record(Duration::from_secs(second), sample(second));
                second += 1;
            }
            if let Some(decision) = autoscaler.decide(Duration::from_secs(second - 1), ready) {
                ready = decision.desired;
            }
            black_box(ready)
        })
    });
    group.bench_function("record", |b| {
        b.iter(|| {
            autoscaler.record(Duration::from_secs(second), black_box(sample(second)));
            second += 1;
        })
    });
    group.finish();
}

criterion_group!(benches, autoscale);
criterion_main!(benches);
