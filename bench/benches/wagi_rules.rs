//! The pure WAGI steps on the request path, without Wasm.
//!
//! - `parse_output/hello`: the WAT hello's stdout becoming a response.
//! - `route_lookup/table_10k` vs `route_lookup/linear_10k`: finding the function for a deep path
//!   among 10,000 `/fnN/...` routes through `RouteTable` (one hash probe per path segment) and
//!   through WAGI's linear first-match scan. The path hits the last route, the scan's worst case.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use wasmpod_wagi::{parse_output, RoutePattern, RouteTable};

const HELLO_STDOUT: &[u8] = b"content-type: text/html;charset=UTF-8\n\nOh hi world\n";
const ROUTES: usize = 10_000;
const DEEP_PATH: &str = "/fn9999/a/b/c/d/e/f/g";

fn parse(c: &mut Criterion) {
    let stdout = Bytes::from_static(HELLO_STDOUT);
    c.bench_function("parse_output/hello", |b| {
        b.iter(|| black_box(parse_output(black_box(stdout.clone())).expect("parse")))
    });
}

fn route_lookup(c: &mut Criterion) {
    let table: RouteTable<usize> =
        (0..ROUTES).map(|i| (RoutePattern::parse(&format!("/fn{i}/...")), i)).collect();
    let expected = Some(ROUTES - 1);
    assert_eq!(table.lookup(DEEP_PATH).map(|m| *m.target), expected);
    assert_eq!(linear_lookup(&table, DEEP_PATH), expected);

    let mut group = c.benchmark_group("route_lookup");
    group.bench_function("table_10k", |b| {
        b.iter(|| black_box(table.lookup(black_box(DEEP_PATH)).map(|m| *m.target)))
    });
    group.bench_function("linear_10k", |b| b.iter(|| black_box(linear_lookup(&table, black_box(DEEP_PATH)))));
    group.finish();
}

/// WAGI's rule as WAGI implemented it: the first route, in table order, that matches.
fn linear_lookup(table: &RouteTable<usize>, path: &str) -> Option<usize> {
    table.iter().find(|(pattern, _)| pattern.matches(path)).map(|(_, target)| *target)
}

criterion_group!(wagi_rules, parse, route_lookup);
criterion_main!(wagi_rules);
