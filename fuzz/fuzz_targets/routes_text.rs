//! What a module's `_routes` export prints -> `parse_routes_text`: never panics; an accepted
//! table is not empty, each route and entrypoint is one word, and printing the table back as
//! `<path> <entrypoint>` lines reads as the same table.
#![no_main]

use wasmpod_fuzz::fuzz_target;
use wasmpod_wagi::parse_routes_text;

fuzz_target!(|stdout: &[u8]| {
    let Ok(routes) = parse_routes_text(stdout) else { return };
    assert!(!routes.is_empty());
    for route in &routes {
        for word in [&route.path, &route.entrypoint] {
            assert!(!word.is_empty() && !word.contains(char::is_whitespace), "{route:?}");
        }
    }
    let printed: String = routes.iter().map(|r| format!("{} {}\n", r.path, r.entrypoint)).collect();
    assert_eq!(parse_routes_text(printed.as_bytes()).expect("a printed table parses"), routes);
});
