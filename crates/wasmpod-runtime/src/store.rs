//! The one place a request's `Store` is made, for every guest kind: the function's [`Sandbox`]
//! (what it is granted: its volumes and its stderr) becomes a WASI context builder, and the
//! request's limits become the store's resource limiter and epoch callback.
//!
//! Keep store construction here: a different WASI host, or a faster teardown, changes this file
//! and the guest kinds' state types, not the request path.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wasmtime::{Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::limits::{yield_on_epoch, LimitedState};
use crate::{FunctionSpec, GuestLog};

/// What one function's guests are granted, fixed at load: the host directories it may open and
/// where its stderr goes. Nothing else reaches a guest: no host environment, no inherited stdio,
/// no network unless its outbound policy allows it.
pub(crate) struct Sandbox {
    /// The function's name (its route as written), for logs.
    pub(crate) name: Arc<str>,
    volumes: Vec<(String, PathBuf)>,
    pub(crate) log: GuestLog,
    /// Outbound calls refused by its `allowed_hosts`, across its versions.
    pub(crate) denied: Arc<AtomicU64>,
}

impl Sandbox {
    pub(crate) fn new(name: Arc<str>, spec: &FunctionSpec, log: GuestLog, denied: Arc<AtomicU64>) -> Sandbox {
        Sandbox { name, volumes: spec.volumes.clone(), log, denied }
    }

    /// Outbound calls refused so far.
    pub(crate) fn denied(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }

    /// A WASI context builder with this function's grants: its volumes, and its log as stderr.
    /// The guest kind adds its stdin, stdout, argv and environment.
    pub(crate) fn wasi(&self) -> WasiCtxBuilder {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(self.log.clone());
        for (guest, host) in &self.volumes {
            // WAGI's rule: a volume that cannot be opened is logged and the request runs without it.
            if let Err(e) = wasi.preopened_dir(host, guest, FsPerms::ReadWrite) {
                tracing::error!(function = %self.name, volume = %guest, host = %host.display(), "cannot open volume: {e:#}");
            }
        }
        wasi
    }
}

/// A store for one request: `data` (which carries the request's limits) under the limiter that
/// holds the instance to its memory grant, yielding at every epoch tick and sleeping out its CPU
/// quota.
pub(crate) fn new_store<T: LimitedState>(engine: &Engine, data: T) -> Store<T> {
    let mut store = Store::new(engine, data);
    store.limiter(|state| &mut state.limits().memory);
    yield_on_epoch(&mut store);
    store
}
