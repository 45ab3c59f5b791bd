//! The loaded functions behind their routes: what the router looks a request up in.

use std::sync::Arc;

use wasmpod_wagi::{RouteMatch, RouteTable};

use crate::Function;

/// The loaded functions behind their routes, in WAGI's precedence order. Built by
/// [`crate::Runtime::load`]; read-only once built.
#[derive(Default)]
pub struct Registry {
    routes: RouteTable<Arc<Function>>,
}

impl Registry {
    /// Adds `function` after every function already there (lower precedence).
    pub(crate) fn push(&mut self, function: Arc<Function>) {
        self.routes.push(function.route().clone(), function);
    }

    /// The function that serves `path` (raw, without the query), if any.
    pub fn lookup(&self, path: &str) -> Option<&Arc<Function>> {
        self.routes.lookup(path).map(|RouteMatch { target, .. }| target)
    }

    /// Every function in precedence order.
    pub fn functions(&self) -> impl Iterator<Item = &Arc<Function>> {
        self.routes.iter().map(|(_, f)| f)
    }

    /// How many routes are loaded (a module with `_routes` counts once per route).
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no function is loaded.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
