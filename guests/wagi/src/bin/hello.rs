//! Minimal WAGI guest: a fixed plain-text response.

fn main() {
    print!("content-type: text/plain\n\nhello world\n");
}
