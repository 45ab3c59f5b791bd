//! The table a module's `_routes` export prints: one `<path> <entrypoint>` per line.

use crate::Error;

/// One line of a `_routes` table, not yet joined to its parent route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicRoute {
    /// The path as printed, to be joined under the module's route.
    pub path: String,
    /// The export a request to that path calls.
    pub entrypoint: String,
}

/// Reads what `_routes` printed. Blank lines are skipped; an empty table or a line that is not
/// exactly two whitespace-separated fields is an error that names the line, because WAGI refuses
/// to start on either and a silently dropped route is worse than a loud one.
pub fn parse_routes_text(stdout: &[u8]) -> Result<Vec<DynamicRoute>, Error> {
    let text = std::str::from_utf8(stdout).map_err(|_| Error::RoutesTextNotUtf8)?;
    if text.trim().is_empty() {
        return Err(Error::EmptyRoutesText);
    }
    let mut routes = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (Some(path), Some(entrypoint), None) => {
                routes.push(DynamicRoute { path: path.to_owned(), entrypoint: entrypoint.to_owned() })
            }
            _ => {
                return Err(Error::MalformedRoutesLine { line: index + 1, text: line.to_owned() });
            }
        }
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, entrypoint: &str) -> DynamicRoute {
        DynamicRoute { path: path.into(), entrypoint: entrypoint.into() }
    }

    #[test]
    fn routes_text_cases() {
        struct Case {
            text: &'static str,
            expected: Result<Vec<DynamicRoute>, Error>,
        }
        let cases = [
            Case {
                text: "/one one\n/two/... two\n",
                expected: Ok(vec![route("/one", "one"), route("/two/...", "two")]),
            },
            Case { text: "\n  /a   a  \n\n/b\tb", expected: Ok(vec![route("/a", "a"), route("/b", "b")]) },
            Case { text: "/main _start\r\n", expected: Ok(vec![route("/main", "_start")]) },
            Case { text: "", expected: Err(Error::EmptyRoutesText) },
            Case { text: " \n\n", expected: Err(Error::EmptyRoutesText) },
            Case {
                text: "/a a\n/b\n",
                expected: Err(Error::MalformedRoutesLine { line: 2, text: "/b".into() }),
            },
            Case {
                text: "/a a extra\n",
                expected: Err(Error::MalformedRoutesLine { line: 1, text: "/a a extra".into() }),
            },
        ];
        for case in cases {
            assert_eq!(parse_routes_text(case.text.as_bytes()), case.expected, "{:?}", case.text);
        }
    }

    #[test]
    fn routes_text_must_be_utf8() {
        assert_eq!(parse_routes_text(b"/a \xff\n"), Err(Error::RoutesTextNotUtf8));
    }

    #[test]
    fn malformed_line_error_names_the_line() {
        let err = parse_routes_text(b"/ok ok\n/bad\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "export \"_routes\" line 2: expected \"<path> <entrypoint>\", got \"/bad\""
        );
    }
}
