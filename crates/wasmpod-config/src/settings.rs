//! wasmpod's own per-function settings, read the same way from a `[[module]]` table in
//! `modules.toml` and from a sidecar file in a served folder, with the same rules and messages.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use crate::names::check_name;
use crate::{ConfigError, FunctionSpec, Interface};

/// The settings as deserialized, each with its place in the text for error messages.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    /// Seconds (float) the guest may run.
    pub(crate) timeout: Option<Spanned<f64>>,
    /// Default `Memory-Request` in MB.
    pub(crate) memory_request: Option<Spanned<u64>>,
    /// Ceiling on the memory grant in MB.
    pub(crate) max_memory: Option<Spanned<u64>>,
    /// `wagi`, `raw` or `wasi-http`.
    pub(crate) interface: Option<Spanned<String>>,
    /// Environment variables for the guest.
    pub(crate) env: Option<BTreeMap<String, String>>,
    /// The tenant the function belongs to.
    pub(crate) tenant: Option<Spanned<String>>,
}

/// The keys [`Settings`] reads, for the unknown-key warnings.
pub(crate) const SETTINGS_KEYS: &[&str] =
    &["timeout", "memory_request", "max_memory", "interface", "env", "tenant"];

/// Where a setting was written, to word its errors: the file's text, its name, and what the
/// settings belong to (`route "/a"`, `sidecar of "a.wasm"`).
pub(crate) struct Origin<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
    pub(crate) subject: &'a str,
}

impl Origin<'_> {
    pub(crate) fn error(&self, offset: usize, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            line: line_of(self.text, offset),
            message: format!("{}: {message}", self.subject),
        }
    }
}

impl Settings {
    /// Checks every value and writes it into `spec`, or names the first bad field and its line.
    pub(crate) fn apply(self, spec: &mut FunctionSpec, origin: &Origin<'_>) -> Result<(), ConfigError> {
        if let Some(t) = self.timeout {
            // Zero after rounding to nanoseconds (every request would time out at once) or too
            // large for a `Duration` (which would panic) is as wrong as a negative number.
            match Duration::try_from_secs_f64(*t.get_ref()) {
                Ok(duration) if !duration.is_zero() => spec.timeout = Some(duration),
                _ => {
                    return Err(origin.error(
                        t.span().start,
                        "field `timeout` must be a positive number of seconds".into(),
                    ));
                }
            }
        }
        let megabytes = |field: &str, value: Option<Spanned<u64>>| match value {
            Some(v) if *v.get_ref() == 0 => {
                Err(origin.error(v.span().start, format!("field `{field}` must be at least 1 (MB)")))
            }
            Some(v) => Ok(Some(v.into_inner())),
            None => Ok(None),
        };
        spec.memory_request_mb = megabytes("memory_request", self.memory_request)?.or(spec.memory_request_mb);
        spec.max_memory_mb = megabytes("max_memory", self.max_memory)?.or(spec.max_memory_mb);
        if let Some(interface) = self.interface {
            let Some(parsed) = Interface::parse(interface.get_ref()) else {
                return Err(origin.error(
                    interface.span().start,
                    format!(
                        "field `interface`: {:?} is not one of {}",
                        interface.get_ref(),
                        Interface::NAMES.join(", ")
                    ),
                ));
            };
            spec.interface = Some(parsed);
        }
        if let Some(env) = self.env {
            spec.env = env.into_iter().collect();
        }
        if let Some(tenant) = self.tenant {
            if let Err(why) = check_name(tenant.get_ref()) {
                return Err(origin.error(tenant.span().start, format!("field `tenant`: {why}")));
            }
            spec.tenant = Some(tenant.into_inner());
        }
        Ok(())
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |before| before.matches('\n').count() + 1)
}
