//! The one place a request's `Store` is made, for every guest kind: the function's [`Sandbox`]
//! (what it is granted: its volumes and its stderr) becomes a WASI context builder, and the
//! request's limits become the store's resource limiter and epoch callback; the WASI handle table
//! of every guest kind is bounded here too.
//!
//! Keep store construction here: a different WASI host, or a faster teardown, changes this file
//! and the guest kinds' state types, not the request path.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::limits::{yield_on_epoch, LimitedState};
use crate::{FunctionSpec, GuestLog};

/// The most handles one instance's WASI host may hold at once: open files and directories,
/// streams, pollables and, for a component, `wasi:http` resources. Every open file is a host file
/// descriptor, and the process's descriptors are shared by every tenant and every connection, so a
/// guest that opens files in a loop is stopped at this bound (wasmtime-wasi traps when the table is
/// full: the request fails with 500) instead of exhausting the pod's descriptors. Without it the
/// bound was wasmtime's default of 1,000,000 handles, more than the pod's descriptor limit.
pub const MAX_GUEST_HANDLES: usize = 1024;

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

/// The preview1 context of `wasi`, its handle table held to [`MAX_GUEST_HANDLES`].
pub(crate) fn bounded_p1(mut wasi: WasiCtxBuilder) -> WasiP1Ctx {
    let mut ctx = wasi.build_p1();
    wasmtime_wasi::WasiView::ctx(&mut ctx).table.set_max_capacity(MAX_GUEST_HANDLES);
    ctx
}

/// A resource table held to [`MAX_GUEST_HANDLES`].
pub(crate) fn bounded_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_GUEST_HANDLES);
    table
}
