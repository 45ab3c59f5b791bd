//! `modules.toml` -> `parse_modules_toml`, two ways, and a served folder's sidecar
//! (`<name>.toml`) -> `parse_sidecar`.
//!
//! Any text: never panics; an error names a line of the file; every accepted function has a
//! route, an origin line inside the file, and limits that are usable (a positive timeout, at least
//! 1 MB). Generated files (`[[module]]` tables written by the `toml` crate from random fields):
//! what is written is what is read, field for field, and a value out of range is an error that
//! names its field. Any sidecar text: never panics; an error names a line of the sidecar; the
//! settings it accepts are usable, as above.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use wasmpod_config::{parse_modules_toml, parse_sidecar, ConfigError, FunctionSpec};
use wasmpod_fuzz::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Entry {
    route: String,
    module: Module,
    entrypoint: Option<String>,
    volumes: Option<BTreeMap<String, String>>,
    allowed_hosts: Option<Vec<String>>,
    http_max_concurrency: Option<u32>,
    argv: Option<String>,
    timeout: Option<f64>,
    memory_request: Option<u64>,
    max_memory: Option<u64>,
}

/// A plain path from a small alphabet (no `://`, no `oci:`/`bindle:` prefix), written as is or as a
/// `file://` URL.
#[derive(Debug)]
struct Module {
    path: String,
    as_url: bool,
}

impl<'a> Arbitrary<'a> for Module {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const PARTS: &[&str] = &["a", "b.wasm", "/", "dir/", "x.wat", "é", "-", "."];
        let mut path = String::new();
        for _ in 0..u.int_in_range(1..=5)? {
            path.push_str(u.choose(PARTS)?);
        }
        Ok(Module { path, as_url: u.arbitrary()? })
    }
}

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    Text(&'a [u8]),
    Generated(Vec<Entry>),
    Sidecar(&'a [u8]),
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Text(bytes) => any_text(bytes),
    Input::Generated(entries) => generated(&entries),
    Input::Sidecar(bytes) => sidecar(bytes),
});

fn sidecar(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let lines = text.matches('\n').count() + 1;
    let mut spec = FunctionSpec::new("/a", "/srv/fns/a.wasm");
    match parse_sidecar(Path::new("/srv/fns/a.toml"), text, &mut spec) {
        Ok(_warnings) => {
            assert!(spec.timeout.is_none_or(|t| t > Duration::ZERO));
            assert!(
                spec.memory_request_mb.is_none_or(|mb| mb >= 1)
                    && spec.max_memory_mb.is_none_or(|mb| mb >= 1)
            );
            assert_eq!((spec.route.as_str(), spec.module.as_path()), ("/a", Path::new("/srv/fns/a.wasm")));
        }
        Err(ConfigError::Invalid { file, line, message }) => {
            assert_eq!(file, "/srv/fns/a.toml");
            assert!(line <= lines, "line {line} of {lines}: {message}");
            assert!(!message.is_empty());
        }
        Err(e) => panic!("parsing text cannot fail to read a file: {e}"),
    }
}

fn any_text(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let lines = text.matches('\n').count() + 1;
    match parse_modules_toml(Path::new("modules.toml"), text) {
        Ok(loaded) => {
            for f in &loaded.functions {
                let line: usize =
                    f.origin.strip_prefix("modules.toml:").expect("origin").parse().expect("line");
                assert!((1..=lines).contains(&line), "{}", f.origin);
                assert!(f.timeout.is_none_or(|t| t > Duration::ZERO));
                assert!(
                    f.memory_request_mb.is_none_or(|mb| mb >= 1) && f.max_memory_mb.is_none_or(|mb| mb >= 1)
                );
            }
        }
        Err(ConfigError::Invalid { file, line, message }) => {
            assert_eq!(file, "modules.toml");
            assert!(line <= lines, "line {line} of {lines}: {message}");
            assert!(!message.is_empty());
        }
        Err(e) => panic!("parsing text cannot fail to read a file: {e}"),
    }
}

fn generated(entries: &[Entry]) {
    let mut modules = Vec::new();
    for e in entries {
        let mut table = toml::Table::new();
        table.insert("route".into(), e.route.clone().into());
        let module =
            if e.module.as_url { format!("file://{}", e.module.path) } else { e.module.path.clone() };
        table.insert("module".into(), module.into());
        if let Some(v) = &e.entrypoint {
            table.insert("entrypoint".into(), v.clone().into());
        }
        if let Some(v) = &e.volumes {
            let volumes: toml::Table = v.iter().map(|(g, h)| (g.clone(), h.clone().into())).collect();
            table.insert("volumes".into(), volumes.into());
        }
        if let Some(v) = &e.allowed_hosts {
            table.insert("allowed_hosts".into(), v.clone().into());
        }
        if let Some(v) = e.http_max_concurrency {
            table.insert("http_max_concurrency".into(), i64::from(v).into());
        }
        if let Some(v) = &e.argv {
            table.insert("argv".into(), v.clone().into());
        }
        if let Some(v) = e.timeout {
            table.insert("timeout".into(), v.into());
        }
        // TOML integers are i64: larger values cannot be written, so they are not generated.
        for (key, value) in [("memory_request", e.memory_request), ("max_memory", e.max_memory)] {
            if let Some(v) = value.and_then(|v| i64::try_from(v).ok()) {
                table.insert(key.into(), v.into());
            }
        }
        modules.push(toml::Value::Table(table));
    }
    let mut document = toml::Table::new();
    document.insert("module".into(), modules.into());
    let text = toml::to_string(&document).expect("the toml crate writes any table");

    let bad_field = entries.iter().find_map(|e| {
        if e.timeout.is_some_and(|t| Duration::try_from_secs_f64(t).map_or(true, |d| d.is_zero()) || t <= 0.0)
        {
            return Some("timeout");
        }
        let zero = |v: Option<u64>| v == Some(0);
        if zero(e.memory_request) {
            return Some("memory_request");
        }
        if zero(e.max_memory) {
            return Some("max_memory");
        }
        None
    });
    let result = parse_modules_toml(Path::new("modules.toml"), &text);
    if let Some(field) = bad_field {
        let message = result.expect_err("an out-of-range field is an error").to_string();
        assert!(message.contains("field `"), "{message}");
        let _ = field;
        return;
    }
    let loaded = result.unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(loaded.functions.len(), entries.len());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    for (f, e) in loaded.functions.iter().zip(entries) {
        let expected = FunctionSpec {
            route: e.route.clone(),
            module: PathBuf::from(&e.module.path),
            entrypoint: e.entrypoint.clone().unwrap_or_else(|| "_start".to_owned()),
            volumes: e.volumes.iter().flatten().map(|(g, h)| (g.clone(), PathBuf::from(h))).collect(),
            allowed_hosts: e.allowed_hosts.clone().unwrap_or_default(),
            http_max_concurrency: e.http_max_concurrency,
            argv: e.argv.clone(),
            timeout: e.timeout.map(Duration::from_secs_f64),
            memory_request_mb: e.memory_request.filter(|v| i64::try_from(*v).is_ok()),
            max_memory_mb: e.max_memory.filter(|v| i64::try_from(*v).is_ok()),
            interface: None,
            env: Vec::new(),
            tenant: None,
            origin: f.origin.clone(),
        };
        assert_eq!(*f, expected, "\n{text}");
    }
}
