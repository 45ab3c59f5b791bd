//! scrypt over random 64-character strings (default 1,000; the parameter sets the count):
//! log2 N = 10, r = 1, p = 1, a 32-byte key, each string its own salt.

use scrypt::{scrypt, Params};
use wasabi_guests::{alphanumeric, fail, hex_prefix, report, rng, size};

const LOG_N: u8 = 10;
const OUTPUT_BYTES: usize = 32;

fn main() {
    let count = size(1000);
    let params =
        Params::new(LOG_N, 1, 1, OUTPUT_BYTES).unwrap_or_else(|e| fail(&format!("scrypt params: {e}")));
    let mut rng = rng();
    let mut key = [0u8; OUTPUT_BYTES];
    let mut folded = [0u8; OUTPUT_BYTES];
    for _ in 0..count {
        let password = alphanumeric(&mut rng, 64);
        scrypt(password.as_bytes(), password.as_bytes(), &params, &mut key)
            .unwrap_or_else(|e| fail(&format!("scrypt: {e}")));
        for (f, k) in folded.iter_mut().zip(key) {
            *f ^= k;
        }
    }
    report(&format!(
        "SCRYPT Executed: {count} strings of 64 characters hashed (log2 N = {LOG_N}, r = 1, p = 1, \
         {OUTPUT_BYTES} bytes), xor of keys {}",
        hex_prefix(&folded, 8)
    ));
}
