//! The WAGI contract (CGI 1.1 over WASI), as pure functions: route patterns and the route table,
//! the `_routes` text a module prints, the CGI environment and argv a request becomes, and the
//! response a guest's stdout becomes.
//!
//! This crate must stay free of wasmtime, hyper and I/O so that every compatibility rule tests in
//! milliseconds. It sits at both ends of the request path: the router and env builder before the
//! executor, the output parser after it. The rules are WAGI 0.8.1's (the README, "The WAGI
//! contract"); where WAGI 0.8.1 is random or wrong we deviate on purpose, and each deviation is
//! named where it happens.

#![warn(missing_docs)]

mod env;
mod error;
mod output;
mod route;
mod routes_text;

pub use env::{build_argv, build_env, parse_env_flag, CgiEnv, CgiRequest, DEFAULT_HOST};
pub use error::Error;
pub use output::{parse_output, CgiResponse, OutputError, MAX_HEADER_BLOCK_BYTES, MISSING_HEADERS_MESSAGE};
pub use route::{RouteMatch, RoutePattern, RouteTable};
pub use routes_text::{parse_routes_text, DynamicRoute};
