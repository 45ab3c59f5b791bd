//! `--env` and `--env-file`: the values every guest sees.

use std::path::PathBuf;

use anyhow::Context;

/// Merges `--env-file` files (in order) and then `--env` values: a later value for the same name
/// wins, so `--env` beats every file (WAGI's rule).
pub fn user_env(env: &[String], env_files: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut set = |name: String, value: String| match merged.iter_mut().find(|(n, _)| *n == name) {
        Some(existing) => existing.1 = value,
        None => merged.push((name, value)),
    };
    for file in env_files {
        let pairs = wasmpod_config::read_env_file(file).context("--env-file")?;
        for (name, value) in pairs {
            set(name, value);
        }
    }
    for text in env {
        let (name, value) = wasmpod_wagi::parse_env_flag(text).context("--env")?;
        set(name, value);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_flags_beat_env_files_and_later_files_beat_earlier() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.env");
        let second = dir.path().join("second.env");
        std::fs::write(&first, "# comment\nA=from-first\nB=from-first\nQUOTED=\"two words\"\n").unwrap();
        std::fs::write(&second, "B=from-second\nC=from-second\n").unwrap();
        let env = user_env(&["C=from-flag".into(), "D='single'".into()], &[first, second]).unwrap();
        assert_eq!(
            env,
            [
                ("A", "from-first"),
                ("B", "from-second"),
                ("QUOTED", "two words"),
                ("C", "from-flag"),
                ("D", "single")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn bad_env_values_are_errors_that_name_the_flag() {
        let err = user_env(&["NOEQUALS".into()], &[]).unwrap_err();
        assert!(format!("{err:#}").contains("--env"), "{err:#}");
        let err = user_env(&[], &[PathBuf::from("/no/such/file.env")]).unwrap_err();
        assert!(format!("{err:#}").contains("/no/such/file.env"), "{err:#}");
    }
}
