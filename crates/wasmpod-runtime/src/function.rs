//! A loaded function: its route, its configuration, and the guest behind it, of one of the kinds
//! wasmpod serves (or the reason it has none).

use std::sync::Arc;

use wasmpod_wagi::RoutePattern;

use crate::store::Sandbox;
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
    /// A function that could not be loaded (and had no earlier version to keep): its route
    /// answers 500, and the reason is logged with each request. WAGI's rule for a missing
    /// entrypoint, and wasmpod's for every load failure after start.
    Failed(Arc<str>),
}

impl Function {
    pub(crate) fn new(route: RoutePattern, spec: Arc<FunctionSpec>, guest: Guest) -> Function {
        let name = Arc::from(route.text().as_str());
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

    /// Why the function cannot serve, when it cannot.
    pub fn load_error(&self) -> Option<&str> {
        match &self.guest {
            Guest::Failed(reason) => Some(reason),
            _ => None,
        }
    }

    /// The export a request calls; a component's is `wasi:http/incoming-handler`.
    pub fn entrypoint(&self) -> &str {
        match &self.guest {
            Guest::Wagi(module) => module.command.entrypoint(),
            Guest::Raw(program) => program.command.entrypoint(),
            Guest::Http(_) => crate::wasi_http::INCOMING_HANDLER,
            Guest::Failed(_) => &self.spec.entrypoint,
        }
    }

    /// Outbound requests this function was refused by its `allowed_hosts`, across its versions.
    pub fn outbound_denied(&self) -> u64 {
        self.sandbox().map_or(0, Sandbox::denied)
    }

    pub(crate) fn sandbox(&self) -> Option<&Sandbox> {
        match &self.guest {
            Guest::Wagi(module) => Some(&module.command.sandbox),
            Guest::Raw(program) => Some(&program.command.sandbox),
            Guest::Http(component) => Some(&component.sandbox),
            Guest::Failed(_) => None,
        }
    }
}
