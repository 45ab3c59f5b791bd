//! What a request declares: `Memory-Request` (MB) and `cpu_quota` (millicores), from any bytes a
//! client can send. Never panics; a memory grant is never zero and never below what was declared
//! (up to 2^53 MB, where a float still holds every integer); a quota is never zero; and every
//! whole number written in decimal (with whitespace around it) reads back as itself.
#![no_main]

use arbitrary::Arbitrary;
use wasmpod_admission::{cpu_quota_from_header, units_from_header};
use wasmpod_fuzz::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    value: Option<&'a [u8]>,
    default_units: u64,
    number: u64,
    fraction: bool,
    padding: (u8, u8),
}

const EXACT_IN_F64: u64 = 1 << 53;

fn pad(text: String, (before, after): (u8, u8)) -> String {
    let space = |n: u8| " \t".repeat(usize::from(n % 3));
    format!("{}{text}{}", space(before), space(after))
}

fuzz_target!(|input: Input<'_>| {
    let default_units = input.default_units.max(1);
    let units = units_from_header(input.value, default_units);
    assert!(units >= 1, "a zero grant");
    let declared = input
        .value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|mb| mb.is_finite() && *mb > 0.0 && *mb <= EXACT_IN_F64 as f64);
    if let Some(mb) = declared {
        assert!(units as f64 >= mb, "{mb} MB declared, {units} granted");
    }
    if let Some(quota) = cpu_quota_from_header(input.value) {
        assert!(quota >= 1);
    }

    // Halves are exact in a float only below 2^52.
    let n = input.number % if input.fraction { EXACT_IN_F64 / 2 } else { EXACT_IN_F64 } + 1;
    let written = pad(if input.fraction { format!("{}.5", n - 1) } else { n.to_string() }, input.padding);
    assert_eq!(units_from_header(Some(written.as_bytes()), default_units), n, "{written:?}");
    let millicores = u32::try_from(input.number % u64::from(u32::MAX)).unwrap_or(0) + 1;
    let written = pad(millicores.to_string(), input.padding);
    assert_eq!(cpu_quota_from_header(Some(written.as_bytes())), Some(millicores), "{written:?}");
});
