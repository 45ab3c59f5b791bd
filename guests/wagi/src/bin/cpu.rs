//! CPU-bound: `iters=<n>` (default 50_000_000) rounds of xorshift64 with no WASI calls.

use wagi_guests::query_param;

fn main() {
    let iters = query_param("iters").unwrap_or(50_000_000);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = std::hint::black_box(x);
    }
    print!("content-type: text/plain\n\nresult={x}\n");
}
