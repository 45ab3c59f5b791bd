//! Prints a response, then calls `proc_exit` with `code=<n>` (default 0).

use std::io::Write;

fn main() {
    let code = query_param("code").unwrap_or(0);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(b"content-type: text/plain\n\nexiting\n").unwrap();
    stdout.flush().unwrap();
    std::process::exit(code);
}

fn query_param(name: &str) -> Option<i32> {
    let qs = std::env::var("QUERY_STRING").ok()?;
    qs.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}
