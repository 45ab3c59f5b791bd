//! An explicit arrival trace: which function is called when, one call a row.
//!
//! The format is a CSV file with the header `at_ms,function` and one row per call: `at_ms` is the
//! call's arrival in milliseconds from the start of the trace (a non-negative number, fractions
//! allowed; rows need not be sorted), `function` the name of a function of the profiles it is
//! replayed with. `wasmpod simulate pod` replays it through one simulated pod, and the bench's
//! `loadgen --schedule` sends it to a real one (README, "Density and the simulator").

use std::path::Path;

use crate::error::SimError;

/// The header every arrival trace starts with.
pub const TRACE_HEADER: &str = "at_ms,function";

/// One call of an arrival trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceCall {
    /// Arrival, ms from the start of the trace.
    pub at_ms: f64,
    /// The function called.
    pub function: String,
    /// The row's line in its file (1-based; the header is line 1), for error messages.
    pub line: u64,
}

/// Reads an arrival trace, sorted by arrival (rows at the same time keep their file order).
/// Every error names the file, the line and the field.
pub fn load_trace(path: &Path) -> Result<Vec<TraceCall>, SimError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| SimError::Io { path: path.to_path_buf(), source })?;
    parse_trace(&text, path)
}

/// Parses the text of an arrival trace (`path` is for error messages); see [`load_trace`].
pub fn parse_trace(text: &str, path: &Path) -> Result<Vec<TraceCall>, SimError> {
    let bad = |line: u64, field: &str, reason: String| SimError::Input {
        path: path.to_path_buf(),
        line,
        field: field.to_owned(),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut calls = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut header_seen = false;
    loop {
        let more = reader.read_record(&mut record).map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            bad(line, "", e.to_string())
        })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        if !header_seen {
            let header: Vec<&str> = record.iter().map(str::trim).collect();
            if header != ["at_ms", "function"] {
                return Err(bad(
                    line,
                    "header",
                    format!("expected `{TRACE_HEADER}`, got `{}`", header.join(",")),
                ));
            }
            header_seen = true;
            continue;
        }
        if record.len() != 2 {
            return Err(bad(line, "", format!("expected 2 fields (at_ms,function), got {}", record.len())));
        }
        let at = record[0].trim();
        let at_ms: f64 = at.parse().map_err(|_| bad(line, "at_ms", format!("{at:?} is not a number")))?;
        if !(at_ms.is_finite() && at_ms >= 0.0) {
            return Err(bad(line, "at_ms", format!("{at:?} must be a finite number >= 0")));
        }
        let function = record[1].trim();
        if function.is_empty() {
            return Err(bad(line, "function", "empty function name".to_owned()));
        }
        calls.push(TraceCall { at_ms, function: function.to_owned(), line });
    }
    if !header_seen {
        return Err(bad(1, "header", format!("empty file; expected `{TRACE_HEADER}`")));
    }
    calls.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_trace(text, Path::new("t.csv")).unwrap_err().to_string()
    }

    #[test]
    fn reads_rows_in_arrival_order() {
        let calls = parse_trace("at_ms,function\n20,b\n0.5,a\n20,c\n", Path::new("t.csv")).unwrap();
        let got: Vec<(f64, &str, u64)> =
            calls.iter().map(|c| (c.at_ms, c.function.as_str(), c.line)).collect();
        assert_eq!(got, [(0.5, "a", 3), (20.0, "b", 2), (20.0, "c", 4)]);
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        assert_eq!(
            err("at_ms,function\n1,a\nsoon,b\n"),
            "t.csv:3: field \"at_ms\": \"soon\" is not a number"
        );
        assert_eq!(
            err("at_ms,function\n-1,a\n"),
            "t.csv:2: field \"at_ms\": \"-1\" must be a finite number >= 0"
        );
        assert_eq!(err("at_ms,function\n1,\n"), "t.csv:2: field \"function\": empty function name");
        assert_eq!(
            err("at_ms,function\n1,a,x\n"),
            "t.csv:2: field \"\": expected 2 fields (at_ms,function), got 3"
        );
        assert_eq!(
            err("time,fn\n1,a\n"),
            "t.csv:1: field \"header\": expected `at_ms,function`, got `time,fn`"
        );
        assert_eq!(err(""), "t.csv:1: field \"header\": empty file; expected `at_ms,function`");
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.csv");
        let e = load_trace(&path).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", path.display())), "{e}");
    }
}
