//! A loaded function: its route, its configuration, and the guest behind it, of one of the kinds
//! wasmpod serves.

use std::sync::Arc;

use wasmpod_wagi::RoutePattern;

use crate::{FunctionSpec, HttpComponent, RawProgram, WagiModule};

/// One routable function: a guest prepared once, and the route and settings it serves under.
///
/// Requests hold an `Arc<Function>` for as long as they run, so a function replaced or removed
/// while requests are in flight lives until the last of them ends.
pub struct Function {
    route: RoutePattern,
    name: Arc<str>,
    spec: Arc<FunctionSpec>,
    guest: Guest,
}

/// The kinds of guest a function may be: the server matches on this once per request.
pub enum Guest {
    /// A WAGI module (CGI over stdin/stdout), the default for a core module.
    Wagi(WagiModule),
    /// A plain program (`interface = "raw"`): stdin in, stdout out.
    Raw(RawProgram),
    /// A `wasi:http/incoming-handler` component, told apart by its bytes.
    Http(HttpComponent),
}

impl Function {
    pub(crate) fn new(route: RoutePattern, spec: Arc<FunctionSpec>, guest: Guest) -> Function {
        let name = match &guest {
            Guest::Wagi(module) => module.command.sandbox.name.clone(),
            Guest::Raw(program) => program.command.sandbox.name.clone(),
            Guest::Http(component) => component.sandbox.name.clone(),
        };
        Function { route, name, spec, guest }
    }

    /// The route this function answers (for `_routes` entries, the joined route).
    pub fn route(&self) -> &RoutePattern {
        &self.route
    }

    /// The name used in logs and metric labels: the route as written, never a raw request path.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The function's configuration (limits, memory defaults, where it was declared).
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// The guest, to run a request with.
    pub fn guest(&self) -> &Guest {
        &self.guest
    }

    /// The export a request calls; a component's is `wasi:http/incoming-handler`.
    pub fn entrypoint(&self) -> &str {
        match &self.guest {
            Guest::Wagi(module) => module.command.entrypoint(),
            Guest::Raw(program) => program.command.entrypoint(),
            Guest::Http(_) => crate::wasi_http::INCOMING_HANDLER,
        }
    }

    /// Outbound requests this function was refused by its `allowed_hosts`, since load.
    pub fn outbound_denied(&self) -> u64 {
        match &self.guest {
            Guest::Wagi(module) => module.command.outbound_denied(),
            Guest::Raw(program) => program.command.outbound_denied(),
            Guest::Http(component) => component.outbound_denied(),
        }
    }
}
