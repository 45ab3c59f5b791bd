//! The coverage guard: every promise of the README that a name stands for must be named by a test.
//!
//! - Every long flag and every environment variable of every command (`wasmpod serve`, `run`,
//!   `compile`, `autoscale`, `simulate` and `simulate pod`), as the real binary's `--help` lists them, must appear
//!   in a test: a file under `crates/*/tests/`, or the `#[cfg(test)]` part of a file under
//!   `crates/*/src/` (from its first `#[cfg(test)]` to its end).
//! - Every metric the server registers (the families a real server's `/metrics` declares, with a
//!   function loaded so the per-function ones appear) and every metric of the README's metrics
//!   table must appear in an end-to-end test (a file under `crates/*/tests/`): a unit test that
//!   renders values it fed in itself proves nothing about real values reaching the metric.
//! - Likewise every metric the autoscale controller registers (the families its registry
//!   declares), which the README's controller metrics table must list too.
//!
//! A name matches only whole (`--timeout` is not found in `--queue-timeout`). The guard reads
//! this file's own text never: it discovers the names, it does not list them. When it fails, it
//! names each flag, variable or metric no test mentions: write the test that would fail if that
//! promise broke.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use support::{module, run_wasmpod, start_with_config};
use wasmpod_guests as guests;

/// The workspace root (this crate is `crates/wasmpod`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A test file and the text of it that counts as test code.
type TestText = (PathBuf, String);

/// The test text of the workspace: `(end-to-end tests, unit tests)`. End-to-end: each file under
/// `crates/*/tests/` but this one. Unit: each file under `crates/*/src/` from its first
/// `#[cfg(test)]` on.
fn test_texts() -> (Vec<TestText>, Vec<TestText>) {
    let this = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(file!().rsplit('/').next().unwrap());
    let this = this.canonicalize().unwrap();
    let (mut end_to_end, mut unit) = (Vec::new(), Vec::new());
    for krate in std::fs::read_dir(workspace().join("crates")).unwrap() {
        let krate = krate.unwrap().path();
        let mut files = Vec::new();
        rust_files(&krate.join("tests"), &mut files);
        for file in files {
            if file.canonicalize().unwrap() != this {
                let text = std::fs::read_to_string(&file).unwrap();
                end_to_end.push((file, text));
            }
        }
        let mut files = Vec::new();
        rust_files(&krate.join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            if let Some(at) = text.find("#[cfg(test)]") {
                unit.push((file, text[at..].to_owned()));
            }
        }
    }
    assert!(end_to_end.len() >= 10, "the end-to-end tests were not found: {end_to_end:?}");
    (end_to_end, unit)
}

/// Whether `text` names `name` whole: not inside a longer flag, variable or metric name.
fn mentions(text: &str, name: &str) -> bool {
    let part_of_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(part_of_name) && !after.is_some_and(part_of_name)
    })
}

/// The long flags (`--name`) and environment variables (`[env: NAME=...]`) a `--help` lists.
fn flags_and_env(help: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        // Option lines start with `-x, --name` or `--name`; descriptions never do.
        if trimmed.starts_with('-') {
            for word in trimmed.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '<') {
                if let Some(flag) = word.strip_prefix("--") {
                    if !flag.is_empty() && flag.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                        names.insert(format!("--{flag}"));
                    }
                }
            }
        }
        let mut rest = line;
        while let Some(at) = rest.find("[env: ") {
            let var: String =
                rest[at + 6..].chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
            names.insert(var);
            rest = &rest[at + 6..];
        }
    }
    for generic in ["--help", "--version"] {
        names.remove(generic);
    }
    names
}

fn help(command: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = command.split(' ').collect();
    args.push("--help");
    let output = run_wasmpod(dir.path(), &args, b"");
    assert!(output.status.success(), "wasmpod {command} --help: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The metric families a `/metrics` text declares (`# TYPE name kind`), each under the name its
/// samples carry: a counter's samples end in `_total`.
fn metric_families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let (name, kind) = (words.next().unwrap(), words.next().unwrap_or(""));
            if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_owned()
            }
        })
        .collect()
}

/// The metrics the README's metrics table (`| metric | labels | meaning |`) lists.
fn readme_metrics() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let table = readme.split("| metric | labels | meaning |").nth(1).expect("the README's metrics table");
    let mut names = BTreeSet::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let first_cell = row.split('|').nth(1).unwrap();
        for name in first_cell.split('`').skip(1).step_by(2) {
            names.insert(name.to_owned());
        }
    }
    names
}

/// The names in `names` that no text in `texts` mentions. A histogram is mentioned by its
/// samples too (`name_count`, `name_sum`, `name_bucket`).
fn unmentioned<'a>(names: impl IntoIterator<Item = &'a String>, texts: &[&TestText]) -> Vec<String> {
    let mentioned = |name: &str| {
        let forms =
            [name.to_owned(), format!("{name}_count"), format!("{name}_sum"), format!("{name}_bucket")];
        texts.iter().any(|(_, text)| forms.iter().any(|form| mentions(text, form)))
    };
    names.into_iter().filter(|n| !mentioned(n)).cloned().collect()
}

#[test]
fn whole_name_matching() {
    assert!(mentions(r#"&["--timeout", "1"]"#, "--timeout"));
    assert!(!mentions(r#"&["--queue-timeout", "1"]"#, "--timeout"));
    assert!(!mentions("--timeouts", "--timeout"));
    assert!(mentions("(\"WASMPOD_TIMEOUT\", \"1\")", "WASMPOD_TIMEOUT"));
    assert!(!mentions("WASMPOD_TIMEOUT_X", "WASMPOD_TIMEOUT"));
    assert!(mentions("wasmpod_timeouts_total{stage=\"guest\"}", "wasmpod_timeouts_total"));
    assert!(!mentions("wasmpod_queued_requests_total", "wasmpod_queued_requests"));
}

#[test]
fn help_parsing_finds_flags_and_env_twins() {
    let help = "Options:\n  -c, --config <MODULES_TOML>\n          A WAGI modules.toml\n      --timeout <SECONDS>\n          \
                How long --not-a-flag [env: WASMPOD_TIMEOUT=] [default: 30]\n  -h, --help\n";
    let names: Vec<String> = flags_and_env(help).into_iter().collect();
    assert_eq!(names, ["--config", "--timeout", "WASMPOD_TIMEOUT"]);
}

/// The commands whose flags the guard reads.
const COMMANDS: &[&str] = &["serve", "run", "compile", "autoscale", "simulate", "simulate pod"];

/// Every flag and environment variable of every command is named by a test.
#[test]
fn every_flag_and_env_variable_is_named_by_a_test() {
    let (end_to_end, unit) = test_texts();
    let texts: Vec<&TestText> = end_to_end.iter().chain(&unit).collect();
    let mut missing = Vec::new();
    for command in COMMANDS {
        let mut names = flags_and_env(&help(command));
        assert!(names.len() >= 2, "no flags found in `wasmpod {command} --help`:\n{names:?}");
        if *command == "serve" {
            // The README documents `--hostname` as an alias of `--default-host` (hidden from `--help`).
            names.insert("--hostname".to_owned());
        }
        missing
            .extend(unmentioned(&names, &texts).into_iter().map(|name| format!("wasmpod {command}: {name}")));
    }
    assert!(
        missing.is_empty(),
        "flags and environment variables that no test names (write a test that fails when each \
         breaks):\n  {}",
        missing.join("\n  ")
    );
}

/// Every metric the server registers, and every metric the README lists, is named by an
/// end-to-end test.
#[tokio::test]
async fn every_metric_is_named_by_an_end_to_end_test() {
    let (_dir, server) = start_with_config(&module("/hello", guests::HELLO, ""));
    assert_eq!(server.get("/hello").await.status, 200);
    let registered = metric_families(&server.get("/metrics").await.text());
    assert!(registered.contains("wasmpod_request_duration_seconds"), "{registered:?}");
    let documented = readme_metrics();
    assert!(documented.len() >= 15, "the README's metrics table was not read: {documented:?}");
    let undocumented: Vec<&String> = registered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "metrics the server registers that the README does not list: {undocumented:?}"
    );

    let (end_to_end, _) = test_texts();
    let texts: Vec<&TestText> = end_to_end.iter().collect();
    let missing = unmentioned(registered.union(&documented), &texts);
    assert!(
        missing.is_empty(),
        "metrics that no end-to-end test (crates/*/tests/) names: write a test where a real \
         request makes each one move:\n  {}",
        missing.join("\n  ")
    );
}

/// The metrics the README's table of controller metrics (`| metric | meaning |`) lists.
fn readme_controller_metrics() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let table = readme.split("| metric | meaning |").nth(1).expect("the README's controller metrics table");
    let mut names = BTreeSet::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let first_cell = row.split('|').nth(1).unwrap();
        for name in first_cell.split('`').skip(1).step_by(2) {
            names.insert(name.to_owned());
        }
    }
    names
}

/// Every metric the autoscale controller registers is listed in the README and named by an
/// end-to-end test.
#[test]
fn every_controller_metric_is_documented_and_named_by_an_end_to_end_test() {
    let registered =
        metric_families(&wasmpod_controller::ControllerMetrics::new("demo", "superpod").encode());
    assert!(registered.contains("wasmpod_autoscaler_desired_pods"), "{registered:?}");
    let documented = readme_controller_metrics();
    assert_eq!(
        registered, documented,
        "the controller's metrics (left) and the README's table of them (right) differ"
    );
    let (end_to_end, _) = test_texts();
    let texts: Vec<&TestText> = end_to_end.iter().collect();
    let missing = unmentioned(&registered, &texts);
    assert!(
        missing.is_empty(),
        "controller metrics that no end-to-end test (crates/*/tests/) names: write a test where \
         the real controller makes each one move:\n  {}",
        missing.join("\n  ")
    );
}
