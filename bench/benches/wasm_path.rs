//! The per-request cost of the Wasm path, without HTTP.
//!
//! - `request/{wat,rust}_hello`: `WagiModule::run` as the server calls it — WASI context, store,
//!   instantiation from the prepared `InstancePre`, the call, the parse of stdout.
//! - `prepare_per_request/{wat,rust}_hello`: what WAGI did per request — a new `Linker`, WASI
//!   added to it, instantiation by name resolution — then the same call and parse. The ratio to
//!   `request/*` is what preparing once at load buys.
//! - `wasi_ctx/build`: building the WASI context alone (pipes, argv, env).
//!
//! Every benchmark runs on a tokio current-thread runtime, with the same engine (pooling
//! allocator, epoch interruption) the server uses.

use std::hint::black_box;
use std::path::Path;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method, Uri, Version};
use tokio::runtime::Runtime as TokioRuntime;
use wasmpod_runtime::{EngineOptions, FunctionSpec, Guest, Registry, RequestLimits, Runtime, WagiInput};
use wasmpod_wagi::{build_argv, build_env, parse_output, CgiRequest, RoutePattern};
use wasmtime::{Linker, Module, Store, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

/// The allocator the `wasmpod` binary uses, so the comparison is like for like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The guests measured: (benchmark name, route, module).
fn guests() -> [(&'static str, &'static str, std::path::PathBuf); 2] {
    [
        ("wat_hello", "/", wasmpod_guests::wat("hello.wat")),
        ("rust_hello", "/rust", Path::new(wasmpod_guests::HELLO).to_owned()),
    ]
}

/// The engine the server builds by default, with the benchmark-only knobs the server also takes
/// (`WASMPOD_TUNE_KEEP_RESIDENT` bytes, `WASMPOD_TUNE_PAGEMAP_SCAN` `true`/`false`), so settings
/// can be compared without a rebuild.
fn tuned_options() -> EngineOptions {
    let mut options = EngineOptions::default();
    if let Some(bytes) = std::env::var("WASMPOD_TUNE_KEEP_RESIDENT").ok().and_then(|v| v.parse().ok()) {
        options.keep_resident_bytes = bytes;
    }
    if let Some(scan) = std::env::var("WASMPOD_TUNE_PAGEMAP_SCAN").ok().and_then(|v| v.parse().ok()) {
        options.pagemap_scan = scan;
    }
    options
}

fn benches(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let runtime = Runtime::new(&tuned_options()).expect("wasmpod runtime");
    let specs: Vec<FunctionSpec> =
        guests().into_iter().map(|(_, route, path)| FunctionSpec::new(route, path)).collect();
    let registry = tokio.block_on(runtime.load(&specs, None)).expect("load the hello guests");
    let input = sample_input();

    request(c, &tokio, &registry, &input);
    prepare_per_request(c, &tokio, &runtime, &input);
    wasi_ctx(c, &input);
}

/// A GET of `/` with a handful of curl-like headers, as the server would build it.
fn sample_input() -> WagiInput {
    let uri: Uri = "/?name=bench".parse().expect("uri");
    let mut headers = HeaderMap::new();
    headers.insert("host", "127.0.0.1:3000".parse().expect("header"));
    headers.insert("user-agent", "wrk".parse().expect("header"));
    headers.insert("accept", "*/*".parse().expect("header"));
    let route = RoutePattern::parse("/");
    let cgi = CgiRequest {
        method: &Method::GET,
        uri: &uri,
        version: Version::HTTP_11,
        headers: &headers,
        body_len: 0,
        remote_addr: [127, 0, 0, 1].into(),
        route: &route,
        default_host: wasmpod_wagi::DEFAULT_HOST,
    };
    WagiInput {
        env: build_env(&cgi, &[]),
        argv: build_argv(uri.path(), uri.query(), None),
        body: Bytes::new(),
    }
}

fn request(c: &mut Criterion, tokio: &TokioRuntime, registry: &Registry, input: &WagiInput) {
    let limits = RequestLimits::default();
    let mut group = c.benchmark_group("request");
    for (name, route, _) in guests() {
        let Some(Guest::Wagi(module)) = registry.lookup(route).map(|f| f.guest()) else {
            panic!("{route}: not a loaded WAGI module");
        };
        let outcome = tokio.block_on(module.run(input.clone(), &limits)).expect("hello runs");
        assert_eq!(outcome.response.status, 200, "{name}");
        // The input is cloned per iteration: the server builds a fresh one per request too.
        group.bench_function(name, |b| {
            b.to_async(tokio).iter(|| async {
                let outcome = module.run(input.clone(), &limits).await.expect("hello runs");
                black_box(outcome)
            })
        });
    }
    group.finish();
}

/// Store data for the WAGI-style path: nothing but the WASI context.
struct WasiOnly {
    wasi: WasiP1Ctx,
}

fn prepare_per_request(c: &mut Criterion, tokio: &TokioRuntime, runtime: &Runtime, input: &WagiInput) {
    let engine = runtime.engine();
    let mut group = c.benchmark_group("prepare_per_request");
    for (name, _, path) in guests() {
        // WAGI kept the compiled module; everything after compilation was redone per request.
        let module = Module::from_file(engine, &path).expect("compile");
        let run = || async {
            let mut linker: Linker<WasiOnly> = Linker::new(engine);
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut WasiOnly| &mut s.wasi)
                .expect("add WASI");
            let stdout = MemoryOutputPipe::new(wasmpod_runtime::MAX_STDOUT_BYTES);
            let wasi = wasi_builder(input, stdout.clone()).build_p1();
            let mut store = Store::new(engine, WasiOnly { wasi });
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(|_| {
                Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
            });
            let instance = linker.instantiate_async(&mut store, &module).await.expect("instantiate");
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start").expect("_start");
            if let Err(e) = start.call_async(&mut store, ()).await {
                assert!(e.downcast_ref::<I32Exit>().is_some_and(|exit| exit.0 == 0), "{e:?}");
            }
            drop(store);
            parse_output(stdout.try_into_inner().map(|b| b.freeze()).unwrap_or_default()).expect("parse")
        };
        assert_eq!(tokio.block_on(run()).status, 200, "{name}");
        group.bench_function(name, |b| b.to_async(tokio).iter(|| async { black_box(run().await) }));
    }
    group.finish();
}

fn wasi_ctx(c: &mut Criterion, input: &WagiInput) {
    c.bench_function("wasi_ctx/build", |b| {
        b.iter(|| {
            let stdout = MemoryOutputPipe::new(wasmpod_runtime::MAX_STDOUT_BYTES);
            black_box(wasi_builder(input, stdout).build_p1())
        })
    });
}

/// The WASI context `WagiModule::run` builds per request (no volumes).
fn wasi_builder(input: &WagiInput, stdout: MemoryOutputPipe) -> WasiCtxBuilder {
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdin(MemoryInputPipe::new(input.body.clone())).stdout(stdout).args(&input.argv).envs(&input.env);
    wasi
}

criterion_group!(wasm_path, benches);
criterion_main!(wasm_path);
