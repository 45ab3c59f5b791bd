//! Sleeps `ms=<n>` milliseconds (default 200) via WASI `poll_oneoff`, reporting wall-clock
//! start and end in milliseconds since the Unix epoch.

use wagi_guests::query_param;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    let ms = query_param("ms").unwrap_or(200);
    let start = now_ms();
    std::thread::sleep(Duration::from_millis(ms));
    let end = now_ms();
    print!("content-type: text/plain\n\nstart={start} end={end}\n");
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}
