//! Allocates `mb=<n>` MiB (default 1024) in touched 1 MiB chunks; traps if memory runs out. With
//! `ms=<n>`, holds the memory that long before answering (a function that uses memory for a
//! while, as the learned-weights benchmark needs).

use wagi_guests::query_param;

const MIB: usize = 1024 * 1024;

fn main() {
    let mb = query_param("mb").unwrap_or(1024);
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(mb);
    for _ in 0..mb {
        let mut chunk = vec![0u8; MIB];
        for i in (0..MIB).step_by(4096) {
            chunk[i] = 1;
        }
        chunks.push(std::hint::black_box(chunk));
    }
    if let Some(ms) = query_param::<u64>("ms") {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    std::hint::black_box(&chunks);
    print!("content-type: text/plain\n\nallocated {mb} MiB\n");
}
