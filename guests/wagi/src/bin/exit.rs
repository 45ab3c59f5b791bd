//! Prints a response, then calls `proc_exit` with `code=<n>` (default 0).

use wagi_guests::query_param;

use std::io::Write;

fn main() {
    let code = query_param("code").unwrap_or(0);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(b"content-type: text/plain\n\nexiting\n").unwrap();
    stdout.flush().unwrap();
    std::process::exit(code);
}
