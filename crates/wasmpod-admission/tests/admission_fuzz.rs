//! The admission state machine's fuzz target: random event sequences through [`Admission`],
//! checked after every event against its invariants and against a plain reference model.
//!
//! The invariants, checked directly on the state machine's output: units never overflow or go
//! negative (the model counts in `u128`); in-flight units never exceed the capacity, running plus
//! queued never exceed the queue depth, and no tenant ever passes its caps; a request starts only
//! while the CPU and memory gates are open; every request starts in arrival order within its
//! tenant; a weight is never above the declaration; nothing that could start is left waiting
//! ([`Admission::check_invariants`]); and once the gates open and every running request ends,
//! every waiter starts, and all counters return to zero. The fairness order across tenants is
//! checked by comparing every decision, start, expiry and wake-up time with the reference model,
//! which does deficit round robin the plain way (one turn at a time, linear scans).
//!
//! Why proptest here: it runs on stable Rust inside `cargo test`, shrinks a failure to a minimal
//! event sequence that reads as a regression test, and keeps failing seeds in
//! `admission_fuzz.proptest-regressions`. The same harness (`admission_model/`) also runs under
//! libFuzzer (`fuzz/fuzz_targets/admission.rs`), whose coverage feedback steers toward event
//! orders that reach new branches; `.ci/run` runs it briefly, `fuzz/README.md` says how to run it
//! long.
//!
//! `cargo test` runs 256 cases (a few seconds). Run it long with, for example:
//! `PROPTEST_CASES=200000 cargo test -p wasmpod-admission --release --test admission_fuzz`.

mod admission_model;

use admission_model::{Harness, Op, Setup, FUNCTIONS, TENANTS};
use proptest::prelude::*;

fn setup() -> impl Strategy<Value = Setup> {
    (
        1u64..=20,
        0u64..=40,
        1u64..=8,
        prop_oneof![Just(None), (1u64..=25).prop_map(Some)],
        prop_oneof![Just(None), (0u64..=30).prop_map(Some)],
        prop_oneof![Just(None), Just(Some(1.0))],
        prop_oneof![Just(None), Just(Some(1000u64))],
        prop_oneof![Just(None), (1u32..=4).prop_map(Some)],
        prop::bool::weighted(0.1),
    )
        .prop_map(|(capacity, extra, quantum, in_flight, queued, cpu, memory, learn, huge)| {
            Setup::from_parts(capacity, extra, quantum, in_flight, queued, cpu, memory, learn, huge)
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..TENANTS, prop::option::of(0..FUNCTIONS), any::<u64>(), prop::option::weighted(0.3, 0u64..300))
            .prop_map(|(tenant, function, size, timeout_ms)| Op::Arrive { tenant, function, size, timeout_ms }),
        4 => (any::<usize>(), prop::option::of(0u64..=1000)).prop_map(|(pick, peak)| Op::Release { pick, peak }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => prop_oneof![Just(0.5), Just(1.0), Just(2.0)].prop_map(Op::Cpu),
        1 => prop_oneof![Just(0u64), Just(999), Just(1000), Just(5000)].prop_map(Op::Memory),
        2 => (0u64..120).prop_map(Op::Advance),
        1 => Just(Op::Poll),
    ]
}

proptest! {
    #[test]
    fn random_event_sequences_keep_every_invariant(setup in setup(), ops in prop::collection::vec(op(), 1..200)) {
        let mut harness = Harness::new(setup);
        for op in &ops {
            harness.apply(op)?;
        }
        harness.drain()?;
    }
}
