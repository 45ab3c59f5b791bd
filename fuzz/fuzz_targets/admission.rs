//! The admission state machine under libFuzzer: random pod settings and event sequences, checked
//! after every event against the invariants and the reference model of the crate's property test
//! (`crates/wasmpod-admission/tests/admission_model/`, compiled here from the same file): units
//! never negative or above capacity, running plus queued never above the queue depth, tenant caps
//! kept, arrival order within a tenant, fair order across tenants as the model computes it, and
//! every grant released once the pod drains.
#![no_main]

#[path = "../../crates/wasmpod-admission/tests/admission_model/mod.rs"]
mod admission_model;

use admission_model::{Harness, Op, Setup, FUNCTIONS, TENANTS};
use arbitrary::{Arbitrary, Unstructured};
use wasmpod_fuzz::fuzz_target;

/// Draws a setup over the same ranges as the property test's strategy.
fn setup(u: &mut Unstructured<'_>) -> arbitrary::Result<Setup> {
    let option = |u: &mut Unstructured<'_>| u.arbitrary::<bool>();
    let in_flight = if option(u)? { Some(u.int_in_range(1..=25)?) } else { None };
    let queued = if option(u)? { Some(u.int_in_range(0..=30)?) } else { None };
    let cpu = if option(u)? { Some(1.0) } else { None };
    let memory = if option(u)? { Some(1000) } else { None };
    let learn = if option(u)? { Some(u.int_in_range(1..=4)?) } else { None };
    Ok(Setup::from_parts(
        u.int_in_range(1..=20)?,
        u.int_in_range(0..=40)?,
        u.int_in_range(1..=8)?,
        in_flight,
        queued,
        cpu,
        memory,
        learn,
        u.ratio(1, 10)?,
    ))
}

/// Draws one event with the property test's weights (6 arrive, 4 release, 2 advance, 1 each other).
fn op(u: &mut Unstructured<'_>) -> arbitrary::Result<Op> {
    Ok(match u.int_in_range(0..=15)? {
        0..=5 => Op::Arrive {
            tenant: u.int_in_range(0..=TENANTS - 1)?,
            function: if u.arbitrary()? { Some(u.int_in_range(0..=FUNCTIONS - 1)?) } else { None },
            size: u.arbitrary()?,
            timeout_ms: if u.ratio(3, 10)? { Some(u.int_in_range(0..=299)?) } else { None },
        },
        6..=9 => Op::Release {
            pick: u.arbitrary()?,
            peak: if u.arbitrary()? { Some(u.int_in_range(0..=1000)?) } else { None },
        },
        10 => Op::Cancel { pick: u.arbitrary()? },
        11 => Op::Cpu(*u.choose(&[0.5, 1.0, 2.0])?),
        12 => Op::Memory(*u.choose(&[0, 999, 1000, 5000])?),
        13 | 14 => Op::Advance(u.int_in_range(0..=119)?),
        _ => Op::Poll,
    })
}

struct Input {
    setup: Setup,
    ops: Vec<Op>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "setup = {:?}, ops = {:?}", self.setup, self.ops)
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let setup = setup(u)?;
        let mut ops = Vec::new();
        while ops.len() < 400 && !u.is_empty() {
            ops.push(op(u)?);
        }
        Ok(Input { setup, ops })
    }
}

fuzz_target!(|input: Input| {
    let mut harness = Harness::new(input.setup);
    for op in &input.ops {
        if let Err(e) = harness.apply(op) {
            panic!("{e}\nafter {op:?}");
        }
    }
    if let Err(e) = harness.drain() {
        panic!("{e}");
    }
});
