//! Where functions come from, as data: a WAGI `modules.toml`, a folder of `.wasm`/`.wat` files,
//! the `allowed_hosts` rules a function calls out under, and the `--env-file` values guests see.
//! Everything here turns text a user wrote into a [`FunctionSpec`] (or env pairs), or into an
//! error that names the file, the line and the field.
//!
//! This crate must never depend on wasmtime, hyper or tokio: its rules are pure functions of the
//! text (plus the thin `read_*` functions that read the files they are given), so they test in
//! milliseconds and can be fuzzed. It sits before the request path: the runtime loads what it
//! describes.

#![warn(missing_docs)]

mod allowed_hosts;
mod env_file;
mod error;
mod folder;
mod modules_toml;
mod names;
mod settings;
mod sidecar;
mod spec;

pub use allowed_hosts::AllowedHosts;
pub use env_file::{format_env_file, parse_env_file, read_env_file};
pub use error::ConfigError;
pub use folder::{folder_function, is_ignored_name, module_name, read_functions_dir};
pub use modules_toml::{parse_modules_toml, read_modules_toml};
pub use names::{check_name, MAX_NAME_LEN};
pub use sidecar::parse_sidecar;
pub use spec::{FunctionSource, FunctionSpec, Interface, LoadedConfig, TenantSettings};
