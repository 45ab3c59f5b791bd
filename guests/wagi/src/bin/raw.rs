//! Copies stdin to stdout verbatim, so a test can produce any output it wants.

use std::io::{Read, Write};

fn main() {
    let mut data = Vec::new();
    std::io::stdin().lock().read_to_end(&mut data).unwrap();
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&data).unwrap();
    stdout.flush().unwrap();
}
