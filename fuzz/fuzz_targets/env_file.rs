//! `--env-file` -> `parse_env_file`, two ways. Any text: never panics; accepted names are
//! non-empty and free of whitespace, quotes, `#` and `=`; an error names a line of the file.
//! Generated pairs written by `format_env_file` read back as the same pairs, byte for byte: in
//! particular `$NAME` is never expanded from the server's environment.
#![no_main]

use std::path::Path;

use arbitrary::Arbitrary;
use wasmpod_config::{format_env_file, parse_env_file, ConfigError};
use wasmpod_fuzz::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    Text(&'a [u8]),
    Pairs(Vec<(String, String)>),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '#' | '='))
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Text(bytes) => {
        let Ok(text) = std::str::from_utf8(bytes) else { return };
        let lines = text.matches('\n').count() + 1;
        match parse_env_file(Path::new("vars.env"), text) {
            Ok(pairs) => {
                for (name, _) in &pairs {
                    assert!(valid_name(name), "accepted name {name:?}");
                }
            }
            Err(ConfigError::Invalid { line, .. }) => {
                assert!((1..=lines).contains(&line), "line {line} of {lines}")
            }
            Err(e) => panic!("parsing text cannot fail to read a file: {e}"),
        }
    }
    Input::Pairs(pairs) => {
        let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(n, _)| valid_name(n)).collect();
        let text = format_env_file(&pairs);
        let read = parse_env_file(Path::new("vars.env"), &text).unwrap_or_else(|e| panic!("{e}\n{text:?}"));
        assert_eq!(read, pairs, "\n{text:?}");
    }
});
