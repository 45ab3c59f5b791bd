//! A sidecar file: `<name>.toml` beside `<name>.wasm` in a served folder, holding that function's
//! settings (the folder has no `modules.toml` to hold them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::settings::{line_of, Origin, Settings, SETTINGS_KEYS};
use crate::{ConfigError, FunctionSpec};

#[derive(Debug, Deserialize)]
struct Sidecar {
    timeout: Option<Spanned<f64>>,
    memory_request: Option<Spanned<u64>>,
    max_memory: Option<Spanned<u64>>,
    interface: Option<Spanned<String>>,
    env: Option<BTreeMap<String, String>>,
    tenant: Option<Spanned<String>>,
    volumes: Option<BTreeMap<String, String>>,
    allowed_hosts: Option<Vec<String>>,
}

/// The keys a sidecar may hold beyond the shared settings.
const SIDECAR_KEYS: &[&str] = &["volumes", "allowed_hosts"];

/// Reads the sidecar `text` (from `path`) into `spec`, and returns the warnings worth a log line
/// (unknown keys, which are ignored as in `modules.toml`). A relative volume path is taken from
/// the sidecar's own folder, so a folder can be moved whole.
pub fn parse_sidecar(path: &Path, text: &str, spec: &mut FunctionSpec) -> Result<Vec<String>, ConfigError> {
    let file = path.display().to_string();
    let sidecar: Sidecar = toml::from_str(text).map_err(|e| ConfigError::Invalid {
        file: file.clone(),
        line: e.span().map_or(0, |s| line_of(text, s.start)),
        message: e.message().to_owned(),
    })?;
    let settings = Settings {
        timeout: sidecar.timeout,
        memory_request: sidecar.memory_request,
        max_memory: sidecar.max_memory,
        interface: sidecar.interface,
        env: sidecar.env,
        tenant: sidecar.tenant,
    };
    let subject = format!("sidecar of {:?}", spec.module.display().to_string());
    settings.apply(spec, &Origin { file: &file, text, subject: &subject })?;
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(volumes) = sidecar.volumes {
        spec.volumes =
            volumes.into_iter().map(|(guest, host)| (guest, base.join(PathBuf::from(host)))).collect();
    }
    if let Some(allowed_hosts) = sidecar.allowed_hosts {
        spec.allowed_hosts = allowed_hosts;
    }
    let mut warnings = Vec::new();
    if let Ok(table) = text.parse::<toml::Table>() {
        for key in table.keys() {
            if !SETTINGS_KEYS.contains(&key.as_str()) && !SIDECAR_KEYS.contains(&key.as_str()) {
                warnings.push(format!("{file}: unknown key `{key}` ignored"));
            }
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Interface;
    use std::time::Duration;

    fn parse(text: &str) -> Result<(FunctionSpec, Vec<String>), ConfigError> {
        let mut spec = FunctionSpec::new("/a/...", "/srv/fns/a.wasm");
        let warnings = parse_sidecar(Path::new("/srv/fns/a.toml"), text, &mut spec)?;
        Ok((spec, warnings))
    }

    #[test]
    fn every_setting_is_read() {
        let (spec, warnings) = parse(
            r#"
interface = "raw"
memory_request = 64
max_memory = 128
timeout = 2.5
env = { MODE = "fast" }
volumes = { "/data" = "data", "/abs" = "/var/abs" }
allowed_hosts = ["https://api.example.com"]
colour = "blue"
"#,
        )
        .unwrap();
        assert_eq!(spec.interface, Some(Interface::Raw));
        assert_eq!((spec.memory_request_mb, spec.max_memory_mb), (Some(64), Some(128)));
        assert_eq!(spec.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(spec.env, vec![("MODE".to_owned(), "fast".to_owned())]);
        assert_eq!(
            spec.volumes,
            vec![
                ("/abs".to_owned(), PathBuf::from("/var/abs")),
                ("/data".to_owned(), PathBuf::from("/srv/fns/data")),
            ]
        );
        assert_eq!(spec.allowed_hosts, vec!["https://api.example.com".to_owned()]);
        assert_eq!(warnings, vec!["/srv/fns/a.toml: unknown key `colour` ignored".to_owned()]);
    }

    #[test]
    fn an_empty_sidecar_changes_nothing() {
        let (spec, warnings) = parse("").unwrap();
        assert_eq!(spec, FunctionSpec::new("/a/...", "/srv/fns/a.wasm"));
        assert!(warnings.is_empty());
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        for (text, message) in [
            ("interface = \"cgi\"\n", "/srv/fns/a.toml:1: sidecar of \"/srv/fns/a.wasm\": field `interface`: \"cgi\" is not one of wagi, raw, wasi-http"),
            ("\nmax_memory = 0\n", "/srv/fns/a.toml:2: sidecar of \"/srv/fns/a.wasm\": field `max_memory` must be at least 1 (MB)"),
            ("timeout = \"soon\"\n", "/srv/fns/a.toml:1: invalid type: string \"soon\", expected f64"),
            ("interface = \n", "/srv/fns/a.toml:1: "),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(message), "{text:?}: {err}");
        }
    }
}
