//! Every fuzz target's properties on stable Rust: random inputs from proptest through the same
//! target files (built without the `libfuzzer` feature, each target is a module with a `check`
//! function). CI runs this (`cargo test --manifest-path fuzz/Cargo.toml --no-default-features`);
//! the coverage-guided runs need nightly and cargo-fuzz (`README.md`).
//!
//! `FUZZ_CASES` sets the cases per target (default 2000).
#![allow(unused_attributes)] // each target's `#![no_main]`, which only its own binary needs

#[path = "../fuzz_targets/admission.rs"]
mod admission;
#[path = "../fuzz_targets/allowed_hosts.rs"]
mod allowed_hosts;
#[path = "../fuzz_targets/artifact_entry.rs"]
mod artifact_entry;
#[path = "../fuzz_targets/cgi_output.rs"]
mod cgi_output;
#[path = "../fuzz_targets/env_file.rs"]
mod env_file;
#[path = "../fuzz_targets/modules_toml.rs"]
mod modules_toml;
#[path = "../fuzz_targets/resource_headers.rs"]
mod resource_headers;
#[path = "../fuzz_targets/route_table.rs"]
mod route_table;
#[path = "../fuzz_targets/routes_text.rs"]
mod routes_text;

use proptest::collection::vec;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2000)
}

/// Random bytes, mostly short (as a fuzzer's inputs are), sometimes a few KB.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![4 => vec(any::<u8>(), 0..256), 1 => vec(any::<u8>(), 0..4096)]
}

/// Random text of the characters a parser cares about (separators, quotes, brackets, digits),
/// which random bytes rarely hit.
fn text() -> impl Strategy<Value = Vec<u8>> {
    proptest::string::string_regex("[\\[\\]a-z0-9 =\"'#.:/\\\\\\n\\r\\t,${}_*-]{0,300}")
        .expect("a valid regex")
        .prop_map(String::into_bytes)
}

/// Text or bytes, behind a first byte that picks the input kind of a target whose input is an
/// enum (`Arbitrary` reads the variant first).
fn tagged() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), prop_oneof![bytes(), text()]).prop_map(|(tag, rest)| [vec![tag], rest].concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn admission(input in bytes()) { admission::check(&input) }
    #[test]
    fn allowed_hosts(input in tagged()) { allowed_hosts::check(&input) }
    #[test]
    fn artifact_entry(input in bytes()) { artifact_entry::check(&input) }
    #[test]
    fn cgi_output(input in prop_oneof![bytes(), text()]) { cgi_output::check(&input) }
    #[test]
    fn env_file(input in tagged()) { env_file::check(&input) }
    #[test]
    fn modules_toml(input in tagged()) { modules_toml::check(&input) }
    #[test]
    fn resource_headers(input in tagged()) { resource_headers::check(&input) }
    #[test]
    fn route_table(input in tagged()) { route_table::check(&input) }
    #[test]
    fn routes_text(input in prop_oneof![bytes(), text()]) { routes_text::check(&input) }
}
