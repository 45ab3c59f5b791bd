//! Writes one line to stderr (the per-route log), then a plain response.

use std::io::Write;

fn main() {
    let mut stderr = std::io::stderr().lock();
    stderr.write_all(b"guest stderr line\n").unwrap();
    stderr.flush().unwrap();
    print!("content-type: text/plain\n\nlogged\n");
}
