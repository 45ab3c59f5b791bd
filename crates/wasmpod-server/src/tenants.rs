//! Tenants on the request path: which tenant a function's requests belong to, that tenant's
//! admission id and series, its own caps, and what one request of it is billed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use wasmpod_admission::{Breaker, TenantId, TenantLimits, DEFAULT_TENANT};
use wasmpod_config::TenantSettings;
use wasmpod_runtime::Function;

use crate::metrics::{Metrics, TenantMetrics};

/// A tenant as the request path needs it, looked up once per request by name.
pub(crate) struct Tenant {
    pub(crate) name: Arc<str>,
    /// Its id in the pod's admission (the default tenant's when admission is off).
    pub(crate) id: TenantId,
    pub(crate) metrics: Arc<TenantMetrics>,
}

/// Every tenant seen, by name. Read per request without a lock; a tenant is added when a
/// function of it loads (or, in the rare race with a reload, by its first request). Tenants are
/// never removed: their admission ids and billing counters outlive their functions.
#[derive(Default)]
pub(crate) struct TenantTable {
    by_name: ArcSwap<HashMap<Arc<str>, Arc<Tenant>>>,
    /// Serialises additions (reads never wait for it).
    adding: Mutex<()>,
    /// Tenants that the configuration gave caps of their own, to give back the defaults when it
    /// no longer does.
    own_caps: Mutex<HashSet<String>>,
}

/// The tenant `function` belongs to: its configured one, or [`DEFAULT_TENANT`].
pub(crate) fn tenant_name(function: &Function) -> &str {
    function.spec().tenant.as_deref().unwrap_or(DEFAULT_TENANT)
}

impl TenantTable {
    /// The tenant of `function`'s requests.
    pub(crate) fn of(
        &self,
        function: &Function,
        breaker: Option<&Breaker>,
        metrics: &Metrics,
    ) -> Arc<Tenant> {
        let name = tenant_name(function);
        if let Some(tenant) = self.by_name.load().get(name) {
            return tenant.clone();
        }
        self.add(name, breaker, metrics)
    }

    /// Makes sure `name` is known: its admission id and its series exist from now on.
    pub(crate) fn add(&self, name: &str, breaker: Option<&Breaker>, metrics: &Metrics) -> Arc<Tenant> {
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.by_name.load_full();
        if let Some(tenant) = current.get(name) {
            return tenant.clone();
        }
        let name: Arc<str> = Arc::from(name);
        let tenant = Arc::new(Tenant {
            id: breaker.map_or(TenantId::DEFAULT, |b| b.tenant(&name)),
            metrics: metrics.tenant(&name),
            name: name.clone(),
        });
        let mut table = HashMap::clone(&current);
        table.insert(name, tenant.clone());
        self.by_name.store(Arc::new(table));
        tenant
    }

    /// Gives each tenant of `settings` its own caps (each cap not given stays `defaults`'), and
    /// the tenants that had caps of their own before but no longer do the `defaults` again.
    pub(crate) fn set_caps(
        &self,
        settings: &[TenantSettings],
        breaker: &Breaker,
        defaults: TenantLimits,
        metrics: &Metrics,
    ) {
        let mut own_caps = self.own_caps.lock().unwrap_or_else(PoisonError::into_inner);
        let mut now = HashSet::new();
        for setting in settings {
            let tenant = self.add(&setting.name, Some(breaker), metrics);
            let limits = TenantLimits {
                max_in_flight_units: setting.max_inflight_mb.unwrap_or(defaults.max_in_flight_units),
                max_queued_units: setting.max_queued_mb.unwrap_or(defaults.max_queued_units),
            };
            breaker.set_tenant_limits(tenant.id, limits);
            tracing::info!(
                tenant = %tenant.name,
                max_inflight_mb = limits.max_in_flight_units,
                max_queued_mb = limits.max_queued_units,
                "tenant caps"
            );
            now.insert(setting.name.clone());
        }
        for gone in own_caps.difference(&now) {
            let tenant = self.add(gone, Some(breaker), metrics);
            breaker.set_tenant_limits(tenant.id, defaults);
            tracing::info!(tenant = %tenant.name, "tenant caps back to the defaults");
        }
        *own_caps = now;
    }
}

/// What one admitted request costs its tenant: its memory grant for as long as it is held, and
/// the CPU time its guest used. Counted into the tenant's series when dropped, so that a request
/// cut short (a client gone, a guest stopped) is billed for what it used too.
pub(crate) struct Usage {
    metrics: Arc<TenantMetrics>,
    memory_mb: u64,
    since: Instant,
    /// The guest's CPU time so far (see `wasmpod_runtime::cpu_metered`).
    pub(crate) cpu: Duration,
}

impl Usage {
    /// Starts billing a grant of `memory_mb` to `tenant`.
    pub(crate) fn start(tenant: &Tenant, memory_mb: u64) -> Usage {
        Usage { metrics: tenant.metrics.clone(), memory_mb, since: Instant::now(), cpu: Duration::ZERO }
    }
}

impl Drop for Usage {
    fn drop(&mut self) {
        self.metrics.add_cpu(self.cpu);
        self.metrics.add_memory(self.memory_mb, self.since.elapsed());
    }
}
