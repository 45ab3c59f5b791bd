//! Which names may name a tenant (and, through the admin API, a function): short, lower-case,
//! safe as a folder name, a URL segment and a metric label, with no way to climb out of a folder.

/// The longest name accepted.
pub const MAX_NAME_LEN: usize = 63;

/// Checks a tenant or function name against `[a-z0-9][a-z0-9._-]{0,62}`: a lower-case letter
/// or digit, then up to 62 lower-case letters, digits, `.`, `_` or `-`. Such a name cannot be
/// `.`, `..`, hidden, contain a `/`, or need escaping anywhere it is used. The error says why,
/// for a person.
pub fn check_name(name: &str) -> Result<(), String> {
    let Some(first) = name.bytes().next() else {
        return Err("a name may not be empty".to_owned());
    };
    if name.len() > MAX_NAME_LEN {
        return Err(format!("{name:?} is longer than {MAX_NAME_LEN} characters"));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(format!("{name:?} must start with a lower-case letter or a digit"));
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-');
    if !name.bytes().all(allowed) {
        return Err(format!("{name:?} may hold only lower-case letters, digits, `.`, `_` and `-`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["a", "acme", "0", "team-1", "a.b_c-d", &"x".repeat(63)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            (".", "must start"),
            ("..", "must start"),
            (".hidden", "must start"),
            ("-x", "must start"),
            ("Acme", "must start"),
            ("acMe", "only lower-case"),
            ("a/b", "only lower-case"),
            ("a b", "only lower-case"),
            ("a\0", "only lower-case"),
            ("é", "must start"),
            (&"x".repeat(64), "longer than 63"),
        ] {
            let err = check_name(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
