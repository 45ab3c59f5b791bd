//! Probes memory isolation. Grows fresh pages and checks they are zero, fills them with its own
//! pattern (`mine`, given reversed), optionally meets the test at a rendezvous in its volume
//! (`sync=<guest dir>`: writes `written`, waits for `go`), then scans all of its linear memory
//! for another tenant's pattern (`other`, given reversed, so the query string in its memory never
//! holds it forward) and checks its own is intact. Body: `zeroed=<bool> intact=<bool>
//! other_found=<bool> scanned=<bytes>`.

use std::arch::wasm32;
use std::io::Write;

const PAGES: usize = 64;
const PAGE: usize = 65536;

fn param(qs: &str, name: &str) -> String {
    qs.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).unwrap_or("").to_owned()
}

fn main() {
    let qs = std::env::var("QUERY_STRING").unwrap_or_default();
    let mine: Vec<u8> = param(&qs, "mine").bytes().rev().collect();
    let other_reversed = param(&qs, "other").into_bytes();
    assert!(!mine.is_empty() && !other_reversed.is_empty(), "mine= and other= are required");

    // Pages of our own, outside the allocator's: they must come zeroed.
    let first = wasm32::memory_grow(0, PAGES);
    assert!(first != usize::MAX, "memory.grow failed");
    // SAFETY: the pages were just grown for this code alone; nothing else refers to them.
    let region = unsafe { std::slice::from_raw_parts_mut((first * PAGE) as *mut u8, PAGES * PAGE) };
    let zeroed = region.iter().all(|b| *b == 0);
    for (i, b) in region.iter_mut().enumerate() {
        *b = mine[i % mine.len()];
    }

    let sync = param(&qs, "sync");
    if !sync.is_empty() {
        std::fs::write(format!("{sync}/written"), b"").expect("write the rendezvous file");
        while std::fs::metadata(format!("{sync}/go")).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    let intact = region.iter().enumerate().all(|(i, b)| *b == mine[i % mine.len()]);
    let size = wasm32::memory_size(0) * PAGE;
    // SAFETY: every byte from 1 to the end of linear memory is addressable in wasm; only read.
    let all = unsafe { std::slice::from_raw_parts(1 as *const u8, size - 1) };
    let n = other_reversed.len();
    let other_found = all.windows(n).any(|w| w.iter().eq(other_reversed.iter().rev()));

    let mut out = std::io::stdout().lock();
    write!(
        out,
        "content-type: text/plain\n\nzeroed={zeroed} intact={intact} other_found={other_found} scanned={size}\n"
    )
    .unwrap();
    out.flush().unwrap();
}
