//! What a request declares about itself in its headers: the memory it needs (`Memory-Request`,
//! Wasabi's contract: its admission weight and its memory grant) and the CPU it may use
//! (`cpu_quota`, WasmBox's contract). Both come from clients, so both parsers take any bytes and
//! never fail: a value that does not read as a sane number counts as not declared.

/// Turns a `Memory-Request` header value (MB, a float) into admission units.
///
/// A positive finite value is rounded *up* to whole MB, so a request is never granted less memory
/// than it declared (Wasabi truncates). A missing, empty, non-UTF-8, unparsable, NaN, infinite,
/// zero or negative value yields `default_units`: zero MB cannot run a module, so `0` is treated
/// as "not declared" rather than as a free pass. Surrounding whitespace is ignored.
pub fn units_from_header(value: Option<&[u8]>, default_units: u64) -> u64 {
    match positive_number(value) {
        // `as` saturates, so an absurd value becomes u64::MAX and is rejected as too large.
        Some(mb) => mb.ceil() as u64,
        None => default_units,
    }
}

/// Turns a `cpu_quota` header value (millicores, a number) into the quota a guest runs under.
///
/// `None` (unthrottled) for a missing, non-UTF-8, unparsable, NaN, infinite or negative value,
/// and for anything below one millicore; a fraction is rounded down, an absurd value saturates
/// at `u32::MAX` (which never throttles). Surrounding whitespace is ignored.
pub fn cpu_quota_from_header(value: Option<&[u8]>) -> Option<u32> {
    let millicores = positive_number(value)?;
    (millicores >= 1.0).then(|| millicores.min(f64::from(u32::MAX)) as u32)
}

/// The header's value as a finite number above zero, if it is one.
fn positive_number(value: Option<&[u8]>) -> Option<f64> {
    let text = std::str::from_utf8(value?).ok()?;
    let number = text.trim().parse::<f64>().ok()?;
    (number.is_finite() && number > 0.0).then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_from_header_rounds_up_and_falls_back_to_the_default() {
        struct Case {
            value: Option<&'static [u8]>,
            units: u64,
        }
        let cases = [
            Case { value: None, units: 200 },
            Case { value: Some(b""), units: 200 },
            Case { value: Some(b"abc"), units: 200 },
            Case { value: Some(b"-5"), units: 200 },
            Case { value: Some(b"0"), units: 200 },
            Case { value: Some(b"1"), units: 1 },
            Case { value: Some(b"1.2"), units: 2 },
            Case { value: Some(b"0.001"), units: 1 },
            Case { value: Some(b"200"), units: 200 },
            Case { value: Some(b" 64 "), units: 64 },
            Case { value: Some(b"nan"), units: 200 },
            Case { value: Some(b"inf"), units: 200 },
            Case { value: Some(b"\xff\xfe"), units: 200 },
            Case { value: Some(b"1e300"), units: u64::MAX },
        ];
        for case in cases {
            assert_eq!(
                units_from_header(case.value, 200),
                case.units,
                "{:?}",
                case.value.map(String::from_utf8_lossy)
            );
        }
    }

    #[test]
    fn cpu_quota_from_header_cases() {
        struct Case {
            value: Option<&'static [u8]>,
            quota: Option<u32>,
        }
        let cases = [
            Case { value: Some(b"250"), quota: Some(250) },
            Case { value: Some(b" 1000 "), quota: Some(1000) },
            Case { value: Some(b"1.9"), quota: Some(1) },
            Case { value: Some(b"0.5"), quota: None },
            Case { value: Some(b"0"), quota: None },
            Case { value: Some(b"-5"), quota: None },
            Case { value: Some(b"lots"), quota: None },
            Case { value: Some(b"inf"), quota: None },
            Case { value: Some(b"\xff"), quota: None },
            Case { value: Some(b"1e300"), quota: Some(u32::MAX) },
            Case { value: None, quota: None },
        ];
        for case in cases {
            assert_eq!(
                cpu_quota_from_header(case.value),
                case.quota,
                "{:?}",
                case.value.map(String::from_utf8_lossy)
            );
        }
    }
}
