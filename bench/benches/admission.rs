//! Admission on the request path, without Wasm or HTTP.
//!
//! - `admission/breaker_uncontended`: `Breaker::acquire` and the grant's drop with nothing queued:
//!   what every request pays on a pod with room (one lock each way, no allocation).
//! - `admission/breaker_queued_handoff`: a request that queues behind a full pod and is started by
//!   a release: its waiter's allocation, its wake-up and the release's scheduling.
//! - `admission/core_arrive_release`: the sans-IO `Admission` alone, one request in and out: what
//!   the cluster simulator pays per simulated request.
//! - `admission/core_fair_16_tenants`: one release and one arrival through deficit round robin with
//!   16 tenants always waiting.

use std::collections::VecDeque;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use wasmpod_admission::{
    Admission, Admitted, Breaker, BreakerConfig, Decision, Event, Request, TenantId, TenantLimits, Ticket,
};

fn breaker(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let breaker = Breaker::new(BreakerConfig::default(), None).expect("config");
    let mut group = c.benchmark_group("admission");
    group.bench_function("breaker_uncontended", |b| {
        b.to_async(&runtime).iter(|| async {
            let grant = breaker.acquire(Ticket::new(200)).await.expect("admitted");
            black_box(grant.units());
        })
    });

    let full = Breaker::new(BreakerConfig { capacity_units: 200, ..BreakerConfig::default() }, None)
        .expect("config");
    let mut context = Context::from_waker(Waker::noop());
    let mut holder = Some(full.acquire(Ticket::new(200)).now_or_never().expect("admitted"));
    group.bench_function("breaker_queued_handoff", |b| {
        b.iter(|| {
            let mut waiter = pin!(full.acquire(Ticket::new(200)));
            assert!(waiter.as_mut().poll(&mut context).is_pending());
            drop(holder.take());
            let Poll::Ready(grant) = waiter.as_mut().poll(&mut context) else { panic!("not started") };
            holder = Some(grant.expect("admitted"));
        })
    });
    group.finish();
}

fn core(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission");
    let mut admission: Admission<u32> = Admission::new(BreakerConfig::default()).expect("config");
    let request = Request { tenant: TenantId::DEFAULT, function: None, memory_mb: 200, queue_timeout: None };
    group.bench_function("core_arrive_release", |b| {
        b.iter(|| {
            let Decision::Started(admitted) = admission.arrive(Duration::ZERO, black_box(request), || 0)
            else {
                panic!("not started")
            };
            admission.release(Duration::ZERO, admitted, None);
        })
    });

    let config = BreakerConfig {
        capacity_units: 1000,
        queue_depth_units: 100_000,
        tenant_limits: TenantLimits::UNLIMITED,
        ..BreakerConfig::default()
    };
    let mut admission: Admission<u32> = Admission::new(config).expect("config");
    let tenants: Vec<TenantId> = (0..16).map(|t| admission.tenant(&format!("t{t}"))).collect();
    let mut running: VecDeque<Admitted> = VecDeque::new();
    let mut next = 0usize;
    let mut arrive = |admission: &mut Admission<u32>, running: &mut VecDeque<Admitted>| {
        let tenant = tenants[next % tenants.len()];
        // 50 to 350 MB, so turns carry credit over.
        let memory_mb = 50 + (next as u64 * 37) % 300;
        next += 1;
        let request = Request { tenant, function: None, memory_mb, queue_timeout: None };
        if let Decision::Started(admitted) = admission.arrive(Duration::ZERO, request, || 0) {
            running.push_back(admitted);
        }
    };
    for _ in 0..200 {
        arrive(&mut admission, &mut running);
    }
    group.bench_function("core_fair_16_tenants", |b| {
        b.iter(|| {
            if let Some(admitted) = running.pop_front() {
                admission.release(Duration::ZERO, admitted, None);
            }
            while let Some(Event::Started { admitted, .. }) = admission.next_event() {
                running.push_back(admitted);
            }
            arrive(&mut admission, &mut running);
        })
    });
    group.finish();
}

/// Polls a future once; admission with room is ready at once.
trait NowOrNever: Future + Sized {
    fn now_or_never(self) -> Self::Output {
        match pin!(self).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("expected to be ready at once"),
        }
    }
}

impl<F: Future> NowOrNever for F {}

criterion_group!(benches, breaker, core);
criterion_main!(benches);
