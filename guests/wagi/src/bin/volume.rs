//! Returns the contents of the file at guest path `$PATH_INFO`, or a 404 with the I/O error.

use std::io::Write;

fn main() {
    let path = std::env::var("PATH_INFO").unwrap_or_default();
    let mut stdout = std::io::stdout().lock();
    match std::fs::read(&path) {
        Ok(data) => {
            stdout.write_all(b"content-type: text/plain\n\n").unwrap();
            stdout.write_all(&data).unwrap();
        }
        Err(e) => {
            write!(stdout, "status: 404\ncontent-type: text/plain\n\nerror: {e}").unwrap();
        }
    }
    stdout.flush().unwrap();
}
