//! `--env-file`: `NAME=VALUE` lines for every guest, read as WAGI reads them.
//!
//! The format (WAGI's env-file reader, made exact):
//! - one `NAME=VALUE` per line, with an optional `export ` before the name; blank lines and lines
//!   starting with `#` are skipped; a CR before a line's LF is dropped;
//! - a name is any text without whitespace, quotes, `#` or `=`;
//! - an unquoted value runs to the end of the line or to a ` #` comment, trimmed;
//! - a value in double quotes may span lines and knows three escapes, `\"`, `\\` and `\n` (a
//!   newline); any other backslash is kept as written;
//! - a value in single quotes is taken literally, newlines included;
//! - after a closing quote only whitespace or a `#` comment may follow.
//!
//! Nothing is substituted: `$HOME` is five characters, never the server's own environment, which
//! must not reach a guest (a `.env` reader that expands variables would hand guests the host's
//! secrets, and mangle every value with a `$` in it).

use std::path::Path;

use crate::ConfigError;

/// Reads an env file (see the module docs for the format); errors name the file and the line.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse_env_file(path, &text)
}

/// [`read_env_file`] on text already in memory; `path` is only used in messages. The pairs come
/// in file order, a repeated name once per line (the caller's merge lets the last one win).
pub fn parse_env_file(path: &Path, text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while !rest.is_empty() {
        let (entry, after, lines) = next_entry(rest).map_err(|message| ConfigError::Invalid {
            file: path.display().to_string(),
            line,
            message,
        })?;
        if let Some(pair) = entry {
            pairs.push(pair);
        }
        rest = after;
        line += lines;
    }
    Ok(pairs)
}

/// Reads one entry (or a blank or comment line) from the start of `text`: the pair, the text
/// after its line, and how many lines it took.
#[allow(clippy::type_complexity)]
fn next_entry(text: &str) -> Result<(Option<(String, String)>, &str, usize), String> {
    let (first, after_first) = split_line(text);
    let trimmed = first.trim_start();
    if trimmed.trim_end().is_empty() || trimmed.starts_with('#') {
        return Ok((None, after_first, 1));
    }
    let statement = trimmed.strip_prefix("export ").map_or(trimmed, str::trim_start);
    let Some((name, value)) = statement.split_once('=') else {
        return Err(format!("expected NAME=VALUE, got {:?}", first.trim()));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err("the name before `=` is empty".to_owned());
    }
    if let Some(bad) = name.chars().find(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '#')) {
        return Err(format!("name {name:?}: {bad:?} is not allowed in a name"));
    }
    let value = value.trim_start();
    // Where `value` starts in `text` (it is a slice of it), to read a quoted value across lines.
    let offset = value.as_ptr() as usize - text.as_ptr() as usize;
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'');
    let Some(quote) = quote else {
        let value = match value.find(" #").or_else(|| value.find("\t#")) {
            Some(comment) => &value[..comment],
            None => value,
        };
        return Ok((Some((name.to_owned(), value.trim().to_owned())), after_first, 1));
    };
    let quoted = &text[offset + 1..];
    let (value, consumed) = if quote == '"' { double_quoted(quoted) } else { single_quoted(quoted) }
        .ok_or_else(|| format!("name {name:?}: the value's {quote} quote is never closed"))?;
    let after_quote = &quoted[consumed..];
    let lines_in_value = quoted[..consumed].matches('\n').count();
    let (tail, after) = split_line(after_quote);
    let tail = tail.trim_start();
    if !(tail.trim_end().is_empty() || tail.starts_with('#')) {
        return Err(format!("name {name:?}: unexpected {:?} after the closing quote", tail.trim_end()));
    }
    Ok((Some((name.to_owned(), value)), after, 1 + lines_in_value))
}

/// The first line of `text` without its line ending (and a CR before it), and the rest.
fn split_line(text: &str) -> (&str, &str) {
    let (line, rest) = text.split_once('\n').unwrap_or((text, ""));
    (line.strip_suffix('\r').unwrap_or(line), rest)
}

/// A double-quoted value's text (after the opening quote): the value and the bytes consumed,
/// closing quote included; `None` if it never closes.
fn double_quoted(text: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, i + 1)),
            '\\' => match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return None,
            },
            c => value.push(c),
        }
    }
    None
}

/// A single-quoted value's text (after the opening quote), literally.
fn single_quoted(text: &str) -> Option<(String, usize)> {
    let end = text.find('\'')?;
    Some((text[..end].to_owned(), end + 1))
}

/// Writes `pairs` in this format, each value double-quoted: what [`parse_env_file`] reads back as
/// the same pairs. For tests, fuzzing and tools that generate env files.
pub fn format_env_file(pairs: &[(String, String)]) -> String {
    let mut text = String::new();
    for (name, value) in pairs {
        text.push_str(name);
        text.push_str("=\"");
        for c in value.chars() {
            match c {
                '"' => text.push_str("\\\""),
                '\\' => text.push_str("\\\\"),
                '\n' => text.push_str("\\n"),
                c => text.push(c),
            }
        }
        text.push_str("\"\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
        parse_env_file(Path::new("vars.env"), text)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn env_file_cases() {
        struct Case {
            text: &'static str,
            pairs: &'static [(&'static str, &'static str)],
        }
        let cases = [
            Case { text: "A=1\nB=two\n", pairs: &[("A", "1"), ("B", "two")] },
            Case { text: "# comment\n\n  \nA=1", pairs: &[("A", "1")] },
            Case { text: "export A=1\r\nB = 2 \r\n", pairs: &[("A", "1"), ("B", "2")] },
            Case { text: "A=\n", pairs: &[("A", "")] },
            Case { text: "A=x # note\nB=y#not-a-comment\n", pairs: &[("A", "x"), ("B", "y#not-a-comment")] },
            Case { text: "A=two words\n", pairs: &[("A", "two words")] },
            Case { text: "A=\"two words\"  # note\n", pairs: &[("A", "two words")] },
            Case { text: "A=\"q\\\"uote \\\\ nl\\n x\\t\"\n", pairs: &[("A", "q\"uote \\ nl\n x\\t")] },
            Case { text: "A='lit\\n $X \"'\n", pairs: &[("A", "lit\\n $X \"")] },
            Case { text: "A=\"line1\nline2\"\nB=3\n", pairs: &[("A", "line1\nline2"), ("B", "3")] },
            Case { text: "A=$HOME\nB=\"${PATH}\"\n", pairs: &[("A", "$HOME"), ("B", "${PATH}")] },
            Case { text: "A=1\nA=2\n", pairs: &[("A", "1"), ("A", "2")] },
            Case { text: "π=💖\n", pairs: &[("π", "💖")] },
            Case { text: "URL=http://x/?a=b&c=d\n", pairs: &[("URL", "http://x/?a=b&c=d")] },
        ];
        for case in cases {
            assert_eq!(parse(case.text).unwrap(), pairs(case.pairs), "{:?}", case.text);
        }
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let cases = [
            ("A=1\nnot a pair\n", "vars.env:2: expected NAME=VALUE, got \"not a pair\""),
            ("=1\n", "vars.env:1: the name before `=` is empty"),
            ("A B=1\n", "vars.env:1: name \"A B\": ' ' is not allowed in a name"),
            ("A=\"open\nB=2\n", "vars.env:1: name \"A\": the value's \" quote is never closed"),
            ("A='x' y\n", "vars.env:1: name \"A\": unexpected \"y\" after the closing quote"),
            ("A=\"1\n2\"\nB\n", "vars.env:3: expected NAME=VALUE, got \"B\""),
        ];
        for (text, message) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), message, "{text:?}");
        }
    }

    #[test]
    fn formatted_pairs_read_back_unchanged() {
        let written = pairs(&[("A", "plain"), ("B", "q\"uote\\back\nslash\\n"), ("C", ""), ("D", " # x ")]);
        assert_eq!(parse(&format_env_file(&written)).unwrap(), written);
    }
}
