//! `wasmpod`: serve WebAssembly functions over HTTP (WAGI-compatible), or run one request.
//!
//! This binary only wires the crates together: flags and environment in, a loaded registry and a
//! running server out. Every rule lives in a library crate.

mod cli;
mod env_flags;
mod fd_limit;
mod simulate;
mod simulate_pod;

use std::process::ExitCode;

use clap::Parser;

/// Every request allocates small, short-lived objects on many threads (WASI contexts, stores,
/// headers); glibc's malloc showed as ~15% of a hello-world profile, mimalloc is built for this.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`), as in WAGI.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,cranelift=warn,wasmtime=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
