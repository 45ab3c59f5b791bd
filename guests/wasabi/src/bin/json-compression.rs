//! LZ4 then base64 over random 100-character records (default 200,000; the parameter sets the
//! count). All records, then all encoded results, are held at once, as a batch job would.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use wasabi_guests::{alphanumeric, report, rng, size};

const RECORD_CHARS: usize = 100;

fn main() {
    let count = size(200_000);
    let mut rng = rng();
    let records: Vec<String> = (0..count).map(|_| alphanumeric(&mut rng, RECORD_CHARS)).collect();
    let encoded: Vec<String> =
        records.iter().map(|r| STANDARD.encode(lz4_flex::compress_prepend_size(r.as_bytes()))).collect();
    let input: usize = records.iter().map(String::len).sum();
    let output: usize = encoded.iter().map(String::len).sum();
    report(&format!(
        "JSON-COMPRESSION Executed: {count} records of {RECORD_CHARS} characters ({input} bytes) \
         compressed with LZ4 and encoded in base64 ({output} bytes)"
    ));
}
