//! Route patterns and the first-match-wins route table.

use std::collections::HashMap;

/// A WAGI route: `/foo` matches exactly, `/foo/...` matches `/foo`, `/foo/` and `/foo/<anything>`.
///
/// Matching is on the raw, still percent-encoded request path, as in WAGI: no normalisation of
/// `..` or `//`, and the query is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoutePattern {
    /// Matches one path exactly (a trailing slash is significant).
    Exact(String),
    /// Matches its base, and every path below the base; the base of `/...` is empty.
    Prefix(String),
}

impl RoutePattern {
    /// Reads a route as written in `modules.toml` or printed by `_routes`. Never fails: like WAGI,
    /// a route without a leading slash loads but never matches a request.
    pub fn parse(text: &str) -> RoutePattern {
        match text.strip_suffix("/...") {
            Some(base) => RoutePattern::Prefix(base.to_owned()),
            None => RoutePattern::Exact(text.to_owned()),
        }
    }

    /// Whether `path` (raw, without the query) is served by this route.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            RoutePattern::Exact(p) => p == path,
            RoutePattern::Prefix(base) => {
                path == base || (path.starts_with(base.as_str()) && path[base.len()..].starts_with('/'))
            }
        }
    }

    /// The route as the user wrote it (`X_MATCHED_ROUTE`, metric labels, the log-dir key).
    pub fn text(&self) -> String {
        match self {
            RoutePattern::Exact(p) => p.clone(),
            RoutePattern::Prefix(base) => format!("{base}/..."),
        }
    }

    /// `SCRIPT_NAME`: the route itself, or a prefix route's base (`/` for `/...`).
    pub fn script_name(&self) -> &str {
        match self {
            RoutePattern::Exact(p) => p,
            RoutePattern::Prefix(base) if base.is_empty() => "/",
            RoutePattern::Prefix(base) => base,
        }
    }

    /// The raw `PATH_INFO`: what is left of `path` once the matched base is stripped.
    pub fn raw_path_info<'p>(&self, path: &'p str) -> &'p str {
        match self {
            RoutePattern::Exact(_) => "",
            RoutePattern::Prefix(base) => path.get(base.len()..).unwrap_or(""),
        }
    }

    /// Joins a `_routes` sub-route under this route with exactly one `/` between them, as WAGI does
    /// (`/parent/` + `/exact` is `/parent/exact`; `/a/...` + `/b/...` is the prefix `/a/b`).
    pub fn join(&self, sub: &str) -> RoutePattern {
        let base = match self {
            RoutePattern::Exact(p) => p.as_str(),
            RoutePattern::Prefix(base) => base.as_str(),
        };
        let joined = match (base.ends_with('/'), sub.starts_with('/')) {
            (true, true) => format!("{base}{}", &sub[1..]),
            (false, false) => format!("{base}/{sub}"),
            _ => format!("{base}{sub}"),
        };
        RoutePattern::parse(&joined)
    }
}

impl std::fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoutePattern::Exact(p) => f.write_str(p),
            RoutePattern::Prefix(base) => write!(f, "{base}/..."),
        }
    }
}

/// Routes in precedence order: the first route (in table order) that matches a path wins.
///
/// WAGI scans the table linearly. We keep its answer but find it through two hash maps (exact
/// paths, prefix bases), so a lookup costs one probe per path segment however many routes a pod
/// serves: with 10,000 functions a linear scan would dominate the request.
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    entries: Vec<(RoutePattern, T)>,
    exact: HashMap<String, usize>,
    prefix: HashMap<String, usize>,
}

/// A successful lookup: the route that matched and what it routes to.
#[derive(Debug)]
pub struct RouteMatch<'t, T> {
    /// The pattern that matched (its base decides `PATH_INFO`).
    pub pattern: &'t RoutePattern,
    /// What the route leads to.
    pub target: &'t T,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable { entries: Vec::new(), exact: HashMap::new(), prefix: HashMap::new() }
    }
}

impl<T> RouteTable<T> {
    /// Appends a route with the lowest precedence so far.
    pub fn push(&mut self, pattern: RoutePattern, target: T) {
        let index = self.entries.len();
        match &pattern {
            RoutePattern::Exact(p) => self.exact.entry(p.clone()).or_insert(index),
            RoutePattern::Prefix(base) => self.prefix.entry(base.clone()).or_insert(index),
        };
        self.entries.push((pattern, target));
    }

    /// The first route that matches `path`, if any.
    pub fn lookup(&self, path: &str) -> Option<RouteMatch<'_, T>> {
        let mut best = self.exact.get(path).copied();
        let mut consider = |index: Option<&usize>| {
            if let Some(&i) = index {
                best = Some(best.map_or(i, |b| b.min(i)));
            }
        };
        consider(self.prefix.get(path));
        for (i, _) in path.match_indices('/') {
            consider(self.prefix.get(&path[..i]));
        }
        best.map(|i| {
            let (pattern, target) = &self.entries[i];
            RouteMatch { pattern, target }
        })
    }

    /// Every route in precedence order.
    pub fn iter(&self) -> impl Iterator<Item = (&RoutePattern, &T)> {
        self.entries.iter().map(|(p, t)| (p, t))
    }

    /// How many routes the table holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<T> FromIterator<(RoutePattern, T)> for RouteTable<T> {
    fn from_iter<I: IntoIterator<Item = (RoutePattern, T)>>(iter: I) -> Self {
        let mut table = RouteTable::default();
        for (pattern, target) in iter {
            table.push(pattern, target);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        route: &'static str,
        path: &'static str,
        matches: bool,
    }

    #[test]
    fn patterns_match_as_wagi_does() {
        let cases = [
            Case { route: "/foo", path: "/foo", matches: true },
            Case { route: "/foo", path: "/foo/", matches: false },
            Case { route: "/foo/", path: "/foo", matches: false },
            Case { route: "/foo", path: "/foobar", matches: false },
            Case { route: "/foo/...", path: "/foo", matches: true },
            Case { route: "/foo/...", path: "/foo/", matches: true },
            Case { route: "/foo/...", path: "/foo/a/b", matches: true },
            Case { route: "/foo/...", path: "/foobar", matches: false },
            Case { route: "/foo/...", path: "/fo", matches: false },
            Case { route: "/...", path: "/", matches: true },
            Case { route: "/...", path: "/anything/at/all", matches: true },
            Case { route: "x", path: "/x", matches: false },
            Case { route: "/a%20b", path: "/a%20b", matches: true },
            Case { route: "/a b", path: "/a%20b", matches: false },
        ];
        for case in cases {
            let pattern = RoutePattern::parse(case.route);
            assert_eq!(pattern.matches(case.path), case.matches, "{} vs {}", case.route, case.path);
            let table: RouteTable<()> = [(pattern, ())].into_iter().collect();
            assert_eq!(
                table.lookup(case.path).is_some(),
                case.matches,
                "table {} vs {}",
                case.route,
                case.path
            );
        }
    }

    #[test]
    fn first_match_in_table_order_wins_over_more_specific() {
        let table: RouteTable<u32> = [
            (RoutePattern::parse("/..."), 1),
            (RoutePattern::parse("/shadowed"), 2),
            (RoutePattern::parse("/shadowed/..."), 3),
        ]
        .into_iter()
        .collect();
        assert_eq!(*table.lookup("/shadowed").map(|m| m.target).unwrap(), 1);
        assert_eq!(*table.lookup("/other").map(|m| m.target).unwrap(), 1);
    }

    #[test]
    fn later_specific_routes_win_only_when_listed_first() {
        let table: RouteTable<u32> = [
            (RoutePattern::parse("/a/b/..."), 1),
            (RoutePattern::parse("/a"), 2),
            (RoutePattern::parse("/a/..."), 3),
            (RoutePattern::parse("/a/b/c"), 4),
        ]
        .into_iter()
        .collect();
        let target = |p: &str| table.lookup(p).map(|m| *m.target);
        assert_eq!(target("/a/b/c"), Some(1));
        assert_eq!(target("/a"), Some(2));
        assert_eq!(target("/a/x"), Some(3));
        assert_eq!(target("/a/"), Some(3));
        assert_eq!(target("/b"), None);
    }

    #[test]
    fn duplicate_routes_keep_the_first() {
        let table: RouteTable<u32> =
            [(RoutePattern::parse("/x"), 1), (RoutePattern::parse("/x"), 2)].into_iter().collect();
        assert_eq!(table.lookup("/x").map(|m| *m.target), Some(1));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn script_name_and_path_info_follow_the_matched_base() {
        struct Case {
            route: &'static str,
            path: &'static str,
            script_name: &'static str,
            path_info: &'static str,
        }
        let cases = [
            Case { route: "/test", path: "/test", script_name: "/test", path_info: "" },
            Case {
                route: "/test/...",
                path: "/test/fizz/buzz",
                script_name: "/test",
                path_info: "/fizz/buzz",
            },
            Case { route: "/test/...", path: "/test", script_name: "/test", path_info: "" },
            Case { route: "/test/...", path: "/test/", script_name: "/test", path_info: "/" },
            Case { route: "/...", path: "/", script_name: "/", path_info: "/" },
            Case { route: "/...", path: "/x/y", script_name: "/", path_info: "/x/y" },
        ];
        for case in cases {
            let pattern = RoutePattern::parse(case.route);
            assert_eq!(pattern.script_name(), case.script_name, "{}", case.route);
            assert_eq!(pattern.raw_path_info(case.path), case.path_info, "{} {}", case.route, case.path);
        }
    }

    #[test]
    fn sub_routes_join_with_exactly_one_slash() {
        let cases = [
            ("/exactparentslash/", "/exact", "/exactparentslash/exact"),
            ("/exactparent", "/exact", "/exactparent/exact"),
            ("/exactparent", "exact", "/exactparent/exact"),
            ("/", "/exact", "/exact"),
            ("/wildcardparent/...", "/wildcard/...", "/wildcardparent/wildcard/..."),
            ("/wildcardparent/...", "/exact", "/wildcardparent/exact"),
            ("/...", "/one", "/one"),
            ("/...", "two/...", "/two/..."),
        ];
        for (parent, sub, joined) in cases {
            assert_eq!(RoutePattern::parse(parent).join(sub).text(), joined, "{parent} + {sub}");
        }
    }

    #[test]
    fn text_round_trips() {
        for text in ["/", "/a", "/a/", "/...", "/a/...", "x"] {
            assert_eq!(RoutePattern::parse(text).text(), text);
            assert_eq!(RoutePattern::parse(text).to_string(), text);
        }
    }

    #[test]
    fn lookup_scales_to_many_routes() {
        let table: RouteTable<usize> =
            (0..10_000).map(|i| (RoutePattern::parse(&format!("/fn{i}/...")), i)).collect();
        assert_eq!(table.lookup("/fn9999/x").map(|m| *m.target), Some(9999));
        assert!(table.lookup("/fn10000").is_none());
    }
}
