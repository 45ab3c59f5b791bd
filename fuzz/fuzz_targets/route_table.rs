//! Route patterns and the route table: a route's text reads back as itself; the table's hashed
//! lookup finds exactly what WAGI's linear first-match scan finds; a matched prefix route splits
//! the path into its base and `PATH_INFO`; `join` puts exactly one `/` between parent and sub-route.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use wasmpod_fuzz::fuzz_target;
use wasmpod_wagi::{RoutePattern, RouteTable};

/// Short paths from a small alphabet, so that routes and paths often meet; sometimes any text.
fn text(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    if u.ratio(1, 8)? {
        return String::arbitrary(u);
    }
    const SEGMENTS: &[&str] = &["", "a", "b", "ab", "...", "%2F", "é", " ", "a.b"];
    let mut path = if u.ratio(7, 8)? { String::from("/") } else { String::new() };
    for i in 0..u.int_in_range(0..=4)? {
        if i > 0 {
            path.push('/');
        }
        path.push_str(u.choose(SEGMENTS)?);
    }
    Ok(path)
}

#[derive(Debug)]
struct Input {
    routes: Vec<String>,
    paths: Vec<String>,
    sub: String,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let routes = (0..u.int_in_range(0..=8)?).map(|_| text(u)).collect::<Result<_, _>>()?;
        let paths = (0..u.int_in_range(1..=8)?).map(|_| text(u)).collect::<Result<_, _>>()?;
        Ok(Input { routes, paths, sub: text(u)? })
    }
}

fuzz_target!(|input: Input| {
    let patterns: Vec<RoutePattern> = input.routes.iter().map(|r| RoutePattern::parse(r)).collect();
    for (text, pattern) in input.routes.iter().zip(&patterns) {
        assert_eq!(&pattern.text(), text);
        assert_eq!(&pattern.to_string(), text);
    }
    let table: RouteTable<usize> = patterns.iter().cloned().zip(0..).collect();
    for path in &input.paths {
        let scan = patterns.iter().position(|p| p.matches(path));
        let found = table.lookup(path);
        assert_eq!(found.as_ref().map(|m| *m.target), scan, "lookup of {path:?} in {:?}", input.routes);
        if let Some(m) = found {
            let info = m.pattern.raw_path_info(path);
            match m.pattern {
                RoutePattern::Exact(_) => assert_eq!(info, ""),
                RoutePattern::Prefix(base) => assert_eq!(format!("{base}{info}"), *path),
            }
        }
    }
    for parent in &patterns {
        let base = match parent {
            RoutePattern::Exact(p) | RoutePattern::Prefix(p) => p.as_str(),
        };
        let expected = format!(
            "{}/{}",
            base.strip_suffix('/').unwrap_or(base),
            input.sub.strip_prefix('/').unwrap_or(&input.sub)
        );
        assert_eq!(parent.join(&input.sub).text(), expected, "{parent:?} + {:?}", input.sub);
    }
});
