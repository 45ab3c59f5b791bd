//! What the five Wasabi benchmark functions share: the size parameter on stdin, the seeded
//! generator their inputs come from, and the one line they print.
//!
//! The functions are plain WASI programs for wasmpod's `raw` interface (stdin in, stdout out). Run
//! under WAGI instead (the CGI variable `GATEWAY_INTERFACE` is set), they print a `text/plain`
//! header block before their line, so they answer under either interface.

use std::io::Read;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seed every function's inputs are generated from: the same input on every call.
pub const SEED: u64 = 42;

/// The size parameter: stdin, trimmed, as a positive decimal integer; `default` when stdin is
/// empty. Anything else stops the program with exit code 2 and the reason on stderr.
pub fn size(default: u64) -> u64 {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        fail(&format!("cannot read the parameter from stdin: {e}"));
    }
    parse_size(&text, default).unwrap_or_else(|reason| fail(&reason))
}

/// The rule behind [`size`], on the text read.
pub fn parse_size(text: &str, default: u64) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(default);
    }
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("the parameter must be empty or a positive integer (the size), not {text:?}")),
    }
}

/// A generator seeded with [`SEED`]: every call of a function sees the same inputs.
pub fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(SEED)
}

/// `len` random ASCII letters and digits.
pub fn alphanumeric(rng: &mut impl Rng, len: usize) -> String {
    rng.sample_iter(rand::distributions::Alphanumeric).take(len).map(char::from).collect()
}

/// Prints the function's one line (after a header block when run as a WAGI guest).
pub fn report(line: &str) {
    if std::env::var_os("GATEWAY_INTERFACE").is_some() {
        print!("content-type: text/plain; charset=utf-8\n\n");
    }
    println!("{line}");
}

/// Stops the program: the reason on stderr, exit code 2 (the server answers 500 and logs it).
pub fn fail(reason: &str) -> ! {
    eprintln!("{reason}");
    std::process::exit(2)
}

/// The first `n` bytes of `bytes` in hex: a fingerprint that shows the work was done.
pub fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_parameter_cases() {
        assert_eq!(parse_size("", 1000), Ok(1000));
        assert_eq!(parse_size(" \n", 1000), Ok(1000));
        assert_eq!(parse_size("10\n", 1000), Ok(10));
        assert!(parse_size("0", 1000).is_err());
        assert!(parse_size("ten", 1000).is_err());
        assert!(parse_size("-3", 1000).is_err());
    }
}
