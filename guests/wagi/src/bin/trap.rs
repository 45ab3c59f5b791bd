//! Prints a partial response, then traps with a Wasm `unreachable`.

use std::io::Write;

fn main() {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(b"content-type: text/plain\n\npartial\n").unwrap();
    stdout.flush().unwrap();
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}
