//! A WAGI `modules.toml`: `[[module]]` tables, WAGI's field names and defaults, plus wasmpod's
//! own fields (`timeout`, `memory_request`, `max_memory`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::names::check_name;
use crate::settings::{line_of, Origin, Settings, SETTINGS_KEYS};
use crate::{ConfigError, FunctionSpec, LoadedConfig, TenantSettings};

/// What `modules.toml` may say. Unknown keys are ignored, as in WAGI, and named in a warning.
#[derive(Debug, Deserialize)]
struct ModulesToml {
    module: Vec<ModuleEntry>,
    /// wasmpod's own: per-tenant caps.
    tenants: Option<BTreeMap<String, Spanned<TenantEntry>>>,
}

/// `[tenants.<name>]`: a typo in a cap must not pass silently, so unknown keys are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    max_inflight_mb: Option<Spanned<u64>>,
    max_queued_mb: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
struct ModuleEntry {
    route: Spanned<String>,
    module: Spanned<String>,
    entrypoint: Option<String>,
    volumes: Option<BTreeMap<String, String>>,
    allowed_hosts: Option<Vec<String>>,
    http_max_concurrency: Option<u32>,
    argv: Option<String>,
    // wasmpod's own settings (see `settings.rs`).
    timeout: Option<Spanned<f64>>,
    memory_request: Option<Spanned<u64>>,
    max_memory: Option<Spanned<u64>>,
    interface: Option<Spanned<String>>,
    env: Option<BTreeMap<String, String>>,
    tenant: Option<Spanned<String>>,
}

const KNOWN_TOP_LEVEL_KEYS: &[&str] = &["module", "tenants"];
/// WAGI's keys (`bindle_server` is WAGI's too: refused through `module`, not warned about).
const WAGI_MODULE_KEYS: &[&str] = &[
    "route",
    "module",
    "entrypoint",
    "volumes",
    "allowed_hosts",
    "http_max_concurrency",
    "argv",
    "bindle_server",
];

/// Reads a WAGI `modules.toml`. Module paths are relative to the working directory (WAGI's rule,
/// so existing configs run unchanged). Errors name the file, the line and the field.
pub fn read_modules_toml(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse_modules_toml(path, &text)
}

/// [`read_modules_toml`] on text already in memory; `path` is only used in messages.
pub fn parse_modules_toml(path: &Path, text: &str) -> Result<LoadedConfig, ConfigError> {
    let file = path.display().to_string();
    let config_error =
        |line: usize, message: String| ConfigError::Invalid { file: file.clone(), line, message };
    let parsed: ModulesToml = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        config_error(line, e.message().to_owned())
    })?;

    let mut loaded = LoadedConfig::default();
    if let Ok(table) = text.parse::<toml::Table>() {
        unknown_keys(&table, &file, &mut loaded.warnings);
    }
    for entry in parsed.module {
        let line = line_of(text, entry.route.span().start);
        let module_line = line_of(text, entry.module.span().start);
        let reference = entry.module.get_ref();
        let module = module_path(reference).map_err(|message| {
            config_error(module_line, format!("route {:?}: field `module`: {message}", entry.route.get_ref()))
        })?;
        let route = entry.route.get_ref().clone();
        let mut spec = FunctionSpec {
            entrypoint: entry.entrypoint.unwrap_or_else(|| "_start".to_owned()),
            volumes: entry
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|(g, h)| (g, PathBuf::from(h)))
                .collect(),
            allowed_hosts: entry.allowed_hosts.unwrap_or_default(),
            http_max_concurrency: entry.http_max_concurrency,
            argv: entry.argv,
            origin: format!("{file}:{line}"),
            ..FunctionSpec::new(route.clone(), module)
        };
        let settings = Settings {
            timeout: entry.timeout,
            memory_request: entry.memory_request,
            max_memory: entry.max_memory,
            interface: entry.interface,
            env: entry.env,
            tenant: entry.tenant,
        };
        let subject = format!("route {route:?}");
        settings.apply(&mut spec, &Origin { file: &file, text, subject: &subject })?;
        loaded.functions.push(spec);
    }
    for (name, entry) in parsed.tenants.unwrap_or_default() {
        let line = line_of(text, entry.span().start);
        check_name(&name).map_err(|why| config_error(line, format!("[tenants.{name}]: {why}")))?;
        let entry = entry.into_inner();
        let megabytes = |field: &str, value: Option<Spanned<u64>>| match value {
            Some(v) if *v.get_ref() == 0 => Err(config_error(
                line_of(text, v.span().start),
                format!("[tenants.{name}]: field `{field}` must be at least 1 (MB)"),
            )),
            Some(v) => Ok(Some(v.into_inner())),
            None => Ok(None),
        };
        loaded.tenants.push(TenantSettings {
            max_inflight_mb: megabytes("max_inflight_mb", entry.max_inflight_mb)?,
            max_queued_mb: megabytes("max_queued_mb", entry.max_queued_mb)?,
            name,
        });
    }
    Ok(loaded)
}

/// Turns a `module` reference into a path: a plain path or a `file://` URL. Registry references
/// (`oci:`, `bindle:`) and other schemes are refused by name.
fn module_path(reference: &str) -> Result<PathBuf, String> {
    if let Some(path) = reference.strip_prefix("file://") {
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        return Ok(PathBuf::from(decoded.as_ref()));
    }
    if reference.starts_with("oci:") || reference.starts_with("bindle:") {
        return Err(format!("{reference:?}: oci: and bindle: references are not supported; use a file path"));
    }
    if let Some((scheme, _)) = reference.split_once("://") {
        return Err(format!("{reference:?}: unknown scheme {scheme:?}"));
    }
    Ok(PathBuf::from(reference))
}

fn unknown_keys(table: &toml::Table, file: &str, warnings: &mut Vec<String>) {
    for key in table.keys().filter(|k| !KNOWN_TOP_LEVEL_KEYS.contains(&k.as_str())) {
        warnings.push(format!("{file}: unknown key `{key}` ignored"));
    }
    let Some(toml::Value::Array(modules)) = table.get("module") else { return };
    for (index, module) in modules.iter().enumerate() {
        let Some(module) = module.as_table() else { continue };
        let known =
            |k: &&String| WAGI_MODULE_KEYS.contains(&k.as_str()) || SETTINGS_KEYS.contains(&k.as_str());
        for key in module.keys().filter(|k| !known(k)) {
            warnings.push(format!("{file}: [[module]] #{}: unknown key `{key}` ignored", index + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Interface, TenantSettings};
    use std::time::Duration;

    fn parse(text: &str) -> Result<LoadedConfig, ConfigError> {
        parse_modules_toml(Path::new("modules.toml"), text)
    }

    #[test]
    fn wagi_fields_are_read_with_wagi_defaults() {
        let loaded = parse(
            r#"
default_host = "localhost:3000"

[[module]]
route = "/"
module = "examples/hello.wat"

[[module]]
route = "/env/..."
module = "file:///opt/env.wasm"
entrypoint = "main2"
volumes = { "/data" = "/srv/data" }
allowed_hosts = ["https://api.example.com"]
http_max_concurrency = 2
argv = "${SCRIPT_NAME} ${ARGS}"
repository = "reserved"
timeout = 1.5
memory_request = 64
max_memory = 128
interface = "raw"
env = { GREETING = "hi" }
"#,
        )
        .unwrap();
        assert_eq!(loaded.functions.len(), 2);
        let first = &loaded.functions[0];
        assert_eq!(first.route, "/");
        assert_eq!(first.module, PathBuf::from("examples/hello.wat"));
        assert_eq!(first.entrypoint, "_start");
        assert_eq!(first.origin, "modules.toml:5");
        let second = &loaded.functions[1];
        assert_eq!(second.module, PathBuf::from("/opt/env.wasm"));
        assert_eq!(second.entrypoint, "main2");
        assert_eq!(second.volumes, vec![("/data".to_owned(), PathBuf::from("/srv/data"))]);
        assert_eq!(second.allowed_hosts, vec!["https://api.example.com".to_owned()]);
        assert_eq!(second.http_max_concurrency, Some(2));
        assert_eq!(second.argv.as_deref(), Some("${SCRIPT_NAME} ${ARGS}"));
        assert_eq!(second.timeout, Some(Duration::from_millis(1500)));
        assert_eq!((second.memory_request_mb, second.max_memory_mb), (Some(64), Some(128)));
        assert_eq!((first.memory_request_mb, first.max_memory_mb), (None, None));
        assert_eq!((first.interface, second.interface), (None, Some(Interface::Raw)));
        assert_eq!(second.env, vec![("GREETING".to_owned(), "hi".to_owned())]);
        assert_eq!(
            loaded.warnings,
            vec![
                "modules.toml: unknown key `default_host` ignored".to_owned(),
                "modules.toml: [[module]] #2: unknown key `repository` ignored".to_owned(),
            ]
        );
    }

    #[test]
    fn tenants_and_their_caps_are_read() {
        let loaded = parse(
            r#"
[[module]]
route = "/a"
module = "a.wasm"
tenant = "acme"

[[module]]
route = "/b"
module = "b.wasm"

[tenants.acme]
max_inflight_mb = 1000
max_queued_mb = 500

[tenants.beta]
max_queued_mb = 10
"#,
        )
        .unwrap();
        let tenants: Vec<_> = loaded.functions.iter().map(|f| f.tenant.as_deref()).collect();
        assert_eq!(tenants, vec![Some("acme"), None]);
        assert_eq!(
            loaded.tenants,
            vec![
                TenantSettings { name: "acme".into(), max_inflight_mb: Some(1000), max_queued_mb: Some(500) },
                TenantSettings { name: "beta".into(), max_inflight_mb: None, max_queued_mb: Some(10) },
            ]
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        struct Case {
            text: &'static str,
            message: &'static str,
        }
        let cases = [
            Case { text: "", message: "modules.toml:1: missing field `module`" },
            Case { text: "[[module]]\nroute = \"/a\"\n", message: "modules.toml:1: missing field `module`" },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = 7\n",
                message: "modules.toml:3: invalid type: integer `7`, expected a string",
            },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"oci:foo/bar:1.0\"\n",
                message: "modules.toml:3: route \"/a\": field `module`: \"oci:foo/bar:1.0\": oci: and bindle: references are not supported; use a file path",
            },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"https://x/y.wasm\"\n",
                message: "modules.toml:3: route \"/a\": field `module`: \"https://x/y.wasm\": unknown scheme \"https\"",
            },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"a.wasm\"\ntimeout = -1.0\n",
                message: "modules.toml:4: route \"/a\": field `timeout` must be a positive number of seconds",
            },
            // Found by the `modules_toml` fuzz target: a timeout that rounds to 0 ns was
            // accepted, and one too large for a `Duration` panicked.
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"a.wasm\"\ntimeout = 1e-300\n",
                message: "modules.toml:4: route \"/a\": field `timeout` must be a positive number of seconds",
            },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"a.wasm\"\ntimeout = 1e300\n",
                message: "modules.toml:4: route \"/a\": field `timeout` must be a positive number of seconds",
            },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"a.wasm\"\nmax_memory = 0\n",
                message: "modules.toml:4: route \"/a\": field `max_memory` must be at least 1 (MB)",
            },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"a.wasm\"\ninterface = \"cgi\"\n",
                message: "modules.toml:4: route \"/a\": field `interface`: \"cgi\" is not one of wagi, raw, wasi-http",
            },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"a.wasm\"\ntenant = \"../etc\"\n",
                message: "modules.toml:4: route \"/a\": field `tenant`: \"../etc\" must start with",
            },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"a.wasm\"\n[tenants.acme]\nmax_queued_mb = 0\n",
                message: "modules.toml:5: [tenants.acme]: field `max_queued_mb` must be at least 1 (MB)",
            },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"a.wasm\"\n[tenants.acme]\nmax_inflight = 3\n",
                message: "modules.toml:5: unknown field `max_inflight`",
            },
            Case {
                text: "[[module]]\nroute = \"/a\"\nmodule = \"a.wasm\"\n[tenants.Acme]\nmax_queued_mb = 1\n",
                message: "modules.toml:4: [tenants.Acme]: \"Acme\" must start with",
            },
            Case { text: "[[module]\n", message: "modules.toml:1: " },
        ];
        for case in cases {
            let err = parse(case.text).unwrap_err().to_string();
            assert!(err.starts_with(case.message), "{:?}: got {err:?}", case.text);
        }
    }
}
