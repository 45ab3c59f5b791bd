//! Echoes the request body (stdin) back as `application/octet-stream`.

use std::io::{Read, Write};

fn main() {
    let mut body = Vec::new();
    std::io::stdin().lock().read_to_end(&mut body).unwrap();
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(b"content-type: application/octet-stream\n\n").unwrap();
    stdout.write_all(&body).unwrap();
    stdout.flush().unwrap();
}
