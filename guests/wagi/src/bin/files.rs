//! Opens the file at guest path `$PATH_INFO` `n=<k>` times (default 100,000) without closing
//! any, stopping at the first error. Body: `opened=<count>` and `error=<io error or none>`.

use std::io::Write;

fn main() {
    let path = std::env::var("PATH_INFO").unwrap_or_default();
    let n: usize = wagi_guests::query_param("n").unwrap_or(100_000);
    let mut files = Vec::new();
    let mut error = String::from("none");
    while files.len() < n {
        match std::fs::File::open(&path) {
            Ok(file) => files.push(file),
            Err(e) => {
                error = e.to_string();
                break;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    write!(out, "content-type: text/plain\n\nopened={}\nerror={error}\n", files.len()).unwrap();
    out.flush().unwrap();
}
