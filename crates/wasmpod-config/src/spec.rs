//! [`FunctionSpec`]: one function as configured, the unit the runtime loads.

use std::path::PathBuf;
use std::time::Duration;

/// One function as configured, before anything is compiled: the unit the registry loads.
///
/// Build one with [`FunctionSpec::new`] (WAGI's defaults) or get them from
/// [`crate::read_modules_toml`] and [`crate::read_functions_dir`].
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// The route as written (`/hello/...`).
    pub route: String,
    /// The module file (`.wasm` or `.wat`), resolved against the server's working directory.
    pub module: PathBuf,
    /// The export called per request.
    pub entrypoint: String,
    /// Guest path -> host directory, granted as WASI preopens.
    pub volumes: Vec<(String, PathBuf)>,
    /// Outbound HTTP allow-list, as written (parsed by [`crate::AllowedHosts::parse`] at load).
    pub allowed_hosts: Vec<String>,
    /// WAGI modules: outbound responses one request may hold open at once.
    pub http_max_concurrency: Option<u32>,
    /// argv template with `${SCRIPT_NAME}` and `${ARGS}`.
    pub argv: Option<String>,
    /// Per-route guest time limit; `None` uses the server's `--timeout`.
    pub timeout: Option<Duration>,
    /// MB a request to this function declares when it sends no valid `Memory-Request`
    /// (`None`: the server's `--default-memory-request`).
    pub memory_request_mb: Option<u64>,
    /// Ceiling on any grant to this function, in MB, whatever the request declares.
    pub max_memory_mb: Option<u64>,
    /// How requests speak to the guest; `None`: told by the file (a component is `wasi-http`, a
    /// core module `wagi`).
    pub interface: Option<Interface>,
    /// Environment variables this function's guests get, over the server's `--env` values (and
    /// under the CGI variables of a WAGI request).
    pub env: Vec<(String, String)>,
    /// The tenant the function belongs to: its caps, its fair share of admission and its
    /// metrics. `None`: the default tenant (a `modules.toml` entry without `tenant`). A served
    /// folder always names one (see [`crate::read_functions_dir`]).
    pub tenant: Option<String>,
    /// Where this function was declared (`modules.toml:12`, or the module's path), for error
    /// messages.
    pub origin: String,
}

impl FunctionSpec {
    /// A function with WAGI's defaults for everything but its route and module.
    pub fn new(route: impl Into<String>, module: impl Into<PathBuf>) -> FunctionSpec {
        let module = module.into();
        FunctionSpec {
            route: route.into(),
            origin: module.display().to_string(),
            module,
            entrypoint: "_start".to_owned(),
            volumes: Vec::new(),
            allowed_hosts: Vec::new(),
            http_max_concurrency: None,
            argv: None,
            timeout: None,
            memory_request_mb: None,
            max_memory_mb: None,
            interface: None,
            env: Vec::new(),
            tenant: None,
        }
    }
}

/// How requests speak to a function's guest (`interface = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// WAGI: CGI variables and the body in, a header block and the body out. The default for a
    /// core module.
    Wagi,
    /// A plain program (WasmBox style): the body (or a JSON `parameter`) on stdin, stdout is the
    /// response body.
    Raw,
    /// A `wasi:http/incoming-handler` component. The default for a component.
    WasiHttp,
}

impl Interface {
    /// Every value, as written in a configuration.
    pub const NAMES: &'static [&'static str] = &["wagi", "raw", "wasi-http"];

    /// Reads the configuration value (`wagi`, `raw`, `wasi-http`).
    pub fn parse(text: &str) -> Option<Interface> {
        match text {
            "wagi" => Some(Interface::Wagi),
            "raw" => Some(Interface::Raw),
            "wasi-http" => Some(Interface::WasiHttp),
            _ => None,
        }
    }

    /// The value as written in a configuration.
    pub fn name(self) -> &'static str {
        match self {
            Interface::Wagi => "wagi",
            Interface::Raw => "raw",
            Interface::WasiHttp => "wasi-http",
        }
    }
}

/// Where a pod's functions come from: read at start and again on every reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionSource {
    /// A served folder ([`crate::read_functions_dir`]).
    Folder(PathBuf),
    /// A WAGI `modules.toml` ([`crate::read_modules_toml`]).
    ModulesToml(PathBuf),
}

impl FunctionSource {
    /// Reads the functions it describes now.
    pub fn read(&self) -> Result<LoadedConfig, crate::ConfigError> {
        match self {
            FunctionSource::Folder(dir) => crate::read_functions_dir(dir),
            FunctionSource::ModulesToml(file) => crate::read_modules_toml(file),
        }
    }

    /// The folder or the file.
    pub fn path(&self) -> &std::path::Path {
        match self {
            FunctionSource::Folder(path) | FunctionSource::ModulesToml(path) => path,
        }
    }
}

/// The result of reading a configuration: the functions, the tenants' own caps, and the warnings
/// worth a log line (unknown keys, an empty folder).
#[derive(Debug, Default)]
pub struct LoadedConfig {
    /// Every function, in the order the configuration lists them (which is WAGI's precedence).
    pub functions: Vec<FunctionSpec>,
    /// Tenants with caps of their own (`[tenants.<name>]` in `modules.toml`), by name.
    pub tenants: Vec<TenantSettings>,
    /// One line each, ready to log.
    pub warnings: Vec<String>,
}

/// A tenant's own caps (`[tenants.<name>]` in `modules.toml`): each one given replaces the
/// server's default (`--tenant-max-inflight-mb`, `--tenant-max-queued-mb`) for that tenant, so
/// that an operator can give one customer more room, or less, than the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSettings {
    /// The tenant.
    pub name: String,
    /// MB of its requests that may run at once.
    pub max_inflight_mb: Option<u64>,
    /// MB of its requests that may wait for admission at once.
    pub max_queued_mb: Option<u64>,
}
