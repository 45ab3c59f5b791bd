//! Where functions come from, as data: a WAGI `modules.toml`, a folder of `.wasm`/`.wat` files
//! with their sidecar settings, and the `allowed_hosts` rules a function calls out under.
//! Everything here turns text a user wrote into a [`FunctionSpec`], or into an error that names
//! the file, the line and the field.
//!
//! This crate must never depend on wasmtime, hyper or tokio: its rules are pure functions of the
//! text (plus the thin `read_*` functions that read the files they are given), so they test in
//! milliseconds and can be fuzzed. It sits before the request path: the runtime loads what it
//! describes.

#![warn(missing_docs)]

mod allowed_hosts;
mod error;
mod folder;
mod modules_toml;
mod names;
mod settings;
mod sidecar;
mod spec;

pub use allowed_hosts::AllowedHosts;
pub use error::ConfigError;
pub use folder::{folder_function, is_ignored_name, module_name, read_functions_dir};
pub use modules_toml::{parse_modules_toml, read_modules_toml};
pub use names::{check_name, MAX_NAME_LEN};
pub use sidecar::parse_sidecar;
pub use spec::{FunctionSource, FunctionSpec, Interface, LoadedConfig, TenantSettings};
