//! The flags of `wasmpod serve` and `wasmpod run` and their environment twins, end to end: each
//! test starts the real binary and checks what the flag promises in the README's flags table.
//! (The drain and shutdown flags: `knative.rs`; `--cache-dir` with files: `artifact_cache.rs`;
//! `--strict` and `--compile-threads` in reloads: `reload.rs`.)

mod support;

use std::path::{Path, PathBuf};

use support::{
    metric, module, raw_exchange, run_wasmpod, run_wasmpod_with, wait_for_metric, write_config, Request,
    Server,
};
use wasmpod_guests as guests;

/// A server over `config` (a `modules.toml` text) with `args` and `env`, in a fresh directory.
fn serve(config: &str, args: &[&str], env: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), config);
    let mut full = vec!["--config", path.to_str().unwrap()];
    full.extend_from_slice(args);
    let server = Server::start_with(dir.path(), &full, env);
    (dir, server)
}

/// The flags of `wasmpod serve` that have an environment twin, as the README's flags table lists
/// them (the test below checks the table says exactly this).
const TWINS: &[(&str, &str)] = &[
    ("--log-dir", "WAGI_LOG_DIR"),
    ("--timeout", "WASMPOD_TIMEOUT"),
    ("--outbound-connect-timeout", "WASMPOD_OUTBOUND_CONNECT_TIMEOUT"),
    ("--outbound-response-timeout", "WASMPOD_OUTBOUND_RESPONSE_TIMEOUT"),
    ("--shutdown-timeout", "WASMPOD_SHUTDOWN_TIMEOUT"),
    ("--drain-seconds", "WASMPOD_DRAIN_SECONDS"),
    ("--concurrent-resource-request", "CONCURRENT_RESOURCE_REQUEST"),
    ("--queue-depth-resource-units", "QUEUE_DEPTH_RESOURCE_UNITS"),
    ("--resource-utilization-threshold", "RESOURCE_UTILIZATION_THRESHOLD"),
    ("--queue-timeout", "WASMPOD_QUEUE_TIMEOUT"),
    ("--default-memory-request", "WASMPOD_DEFAULT_MEMORY_REQUEST"),
    ("--tenant-max-inflight-mb", "WASMPOD_TENANT_MAX_INFLIGHT_MB"),
    ("--tenant-max-queued-mb", "WASMPOD_TENANT_MAX_QUEUED_MB"),
    ("--admission-weight", "WASMPOD_ADMISSION_WEIGHT"),
    ("--memory-budget", "WASMPOD_MEMORY_BUDGET"),
    ("--memory-high-water-percent", "WASMPOD_MEMORY_HIGH_WATER_PERCENT"),
    ("--max-instances", "WASMPOD_MAX_INSTANCES"),
    ("--pool-warm-slots", "WASMPOD_POOL_WARM_SLOTS"),
    ("--header-read-timeout", "WASMPOD_HEADER_READ_TIMEOUT"),
    ("--max-header-size", "WASMPOD_MAX_HEADER_SIZE"),
    ("--max-connections", "WASMPOD_MAX_CONNECTIONS"),
    ("--max-body-size", "WASMPOD_MAX_BODY_SIZE"),
    ("--max-response-size", "WASMPOD_MAX_RESPONSE_SIZE"),
    ("--body-read-timeout", "WASMPOD_BODY_READ_TIMEOUT"),
    ("--strict", "WASMPOD_STRICT"),
    ("--compile-threads", "WASMPOD_COMPILE_THREADS"),
    ("--admin-listen", "WASMPOD_ADMIN_LISTEN"),
    ("--admin-token-file", "WASMPOD_ADMIN_TOKEN_FILE"),
    ("--max-module-size", "WASMPOD_MAX_MODULE_SIZE"),
    ("--max-module-functions", "WASMPOD_MAX_MODULE_FUNCTIONS"),
    ("--wasmbox-compat", "WASMPOD_WASMBOX_COMPAT"),
    ("--cgroup-cpu", "WASMPOD_CGROUP_CPU"),
    ("--cache-dir", "WASMPOD_CACHE_DIR"),
];

/// The serve flags table of the README: `(flag, env twin)` for each row that has a twin.
fn readme_env_twins() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let section = readme.split("### `wasmpod serve").nth(1).expect("the serve section");
    let table = section.split("| flag | env | default | meaning |").nth(1).expect("the serve flags table");
    let mut twins = Vec::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        // `\|` is a `|` inside a cell.
        let row = row.replace("\\|", "/");
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let flag = cells[1].split('`').skip(1).step_by(2).find(|f| f.starts_with("--"));
        let env = cells[2].trim_matches('`');
        if let (Some(flag), false) = (flag, env.is_empty()) {
            let flag = flag.split_whitespace().next().unwrap();
            twins.push((flag.to_owned(), env.to_owned()));
        }
    }
    twins
}

/// The lines `--help` prints for `flag`: its own, and its description up to the next flag.
fn flag_help(help: &str, flag: &str) -> String {
    let mut lines = help.lines().skip_while(|l| {
        let l = l.trim_start();
        !(l.starts_with('-') && l.split([' ', ',']).any(|w| w == flag))
    });
    let mut text = lines.next().unwrap_or("").to_owned();
    for line in lines.take_while(|l| !l.trim_start().starts_with('-')) {
        text.push_str(line);
    }
    text
}

/// Every environment twin the README's flags table names is the one the binary reads: `--help`
/// shows it on that flag, and a value the flag refuses, given only through the variable, stops
/// the start with an error naming the flag. (What each flag does is tested below and in the
/// files named in this file's docs, through the flag or its twin.)
#[test]
fn every_env_twin_in_the_readme_is_read_by_its_flag() {
    let twins = readme_env_twins();
    let expected: Vec<(String, String)> = TWINS.iter().map(|(f, e)| (f.to_string(), e.to_string())).collect();
    assert_eq!(twins, expected, "the README's flags table and this test's list differ");
    let dir = tempfile::tempdir().unwrap();
    let help = String::from_utf8(run_wasmpod(dir.path(), &["serve", "--help"], b"").stdout).unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("hello.wasm")).unwrap();
    for &(flag, env) in TWINS {
        // `--help` prints each flag's line, then its description ending in `[env: NAME=]`.
        let shown = flag_help(&help, flag);
        assert!(
            shown.contains(&format!("[env: {env}=")),
            "`{flag}` does not show [env: {env}] in --help:\n{help}"
        );
        // Values any directory flag takes: nothing to refuse; their twins are tested by use below.
        if env == "WAGI_LOG_DIR" || env == "WASMPOD_CACHE_DIR" {
            continue;
        }
        let output =
            run_wasmpod_with(dir.path(), &["serve", ".", "-l", "127.0.0.1:0"], b"", &[(env, "nonsense")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env}=nonsense was accepted: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains("nonsense"), "{env}=nonsense: {stderr}");
    }
}

/// `SERVER_NAME`/`SERVER_PORT` of a request without a `Host` header: `--default-host`, its alias
/// `--hostname`, and the default `localhost:3000`. A `Host` header beats them.
#[tokio::test]
async fn default_host_names_the_server_of_requests_without_a_host_header() {
    let config = module("/env/...", guests::ENV, "");
    let no_host = |version: &str| format!("GET /env/x HTTP/{version}\r\nConnection: close\r\n\r\n");
    let var = |text: &str, name: &str| {
        let prefix = format!("\n{name}=");
        text.split(&prefix).nth(1).map(|rest| rest.lines().next().unwrap_or("").to_owned())
    };
    for (args, name, port) in [
        (&[][..], "localhost", "3000"),
        (&["--default-host", "example.test:8081"][..], "example.test", "8081"),
        (&["--hostname", "alias.test:9"][..], "alias.test", "9"),
    ] {
        let (_dir, server) = serve(&config, args, &[]);
        for version in ["1.0", "1.1"] {
            let text = raw_exchange(server.addr, no_host(version).as_bytes()).await;
            assert!(text.starts_with(&format!("HTTP/{version} 200")), "{args:?}: {text}");
            assert_eq!(var(&text, "SERVER_NAME").as_deref(), Some(name), "{args:?} HTTP/{version}: {text}");
            assert_eq!(var(&text, "SERVER_PORT").as_deref(), Some(port), "{args:?} HTTP/{version}: {text}");
            let url = format!("http://{name}:{port}/env/x");
            assert_eq!(var(&text, "X_FULL_URL").as_deref(), Some(url.as_str()), "{text}");
        }
        let r = server.send(Request::get("/env/x").header("host", "given.test:7")).await;
        assert_eq!(
            (r.var("SERVER_NAME").as_deref(), r.var("SERVER_PORT").as_deref()),
            (Some("given.test"), Some("7"))
        );
    }
}

/// `--timeout` and `WASMPOD_TIMEOUT` stop a guest that has no timeout of its own: 504, the guest
/// timeout counted, the limit named in the log. (A route's own `timeout` beats it: `wagi.rs`.)
#[tokio::test]
async fn the_global_timeout_and_its_env_twin_stop_a_guest() {
    let config = module("/spin", guests::SPIN, "") + &module("/hello", guests::HELLO, "");
    for (args, env) in [(&["--timeout", "1.5"][..], &[][..]), (&[][..], &[("WASMPOD_TIMEOUT", "1.5")][..])] {
        let (_dir, server) = serve(&config, args, env);
        let r = server.get("/spin").await;
        assert_eq!(r.status, 504, "{args:?} {env:?}");
        let log = server.wait_for_log("guest ran past its time limit of 1.5s");
        assert!(log.contains("kind=\"timeout\"") || log.contains("kind=timeout"), "{log}");
        let text = server.get("/metrics").await.text();
        assert_eq!(metric(&text, "wasmpod_timeouts_total{stage=\"guest\"}"), Some(1.0), "{text}");
        assert_eq!(
            metric(&text, "wasmpod_guest_errors_total{function=\"/spin\",kind=\"timeout\"}"),
            Some(1.0)
        );
        assert_eq!(server.get("/hello").await.status, 200, "the server goes on");
    }
}

/// A holder of the whole capacity (its own route timeout is 60 s), and a second request that
/// must queue behind it.
const QUEUE_CONFIG: &str = "[[module]]\nroute = \"/sleep\"\nmodule = \"SLEEP\"\ntimeout = 60.0\n\n\
                            [[module]]\nroute = \"/hello\"\nmodule = \"HELLO\"\n";

fn queue_config() -> String {
    QUEUE_CONFIG.replace("SLEEP", guests::SLEEP).replace("HELLO", guests::HELLO)
}

/// Holds the capacity with a long guest, then sends a request that has to queue behind it; the
/// holder outlasts any queue timeout these tests set by seconds.
async fn queue_behind_holder(
    server: &Server,
) -> (support::Response, tokio::task::JoinHandle<support::Response>) {
    let holder = tokio::spawn(support::send(
        server.addr,
        Request::get("/sleep?ms=6000").header("Memory-Request", "100"),
    ));
    wait_for_metric(server, "wasmpod_inflight_memory_mb", |v| v == 100.0).await;
    let r = server.send(Request::get("/hello").header("Memory-Request", "100")).await;
    (r, holder)
}

/// `--queue-timeout` defaults to `--timeout`: a 1 s `--timeout` makes a queued request give up
/// after a second, well before the holder's 6 s guest ends (which the default 30 s would wait for).
#[tokio::test]
async fn the_queue_timeout_falls_back_to_the_timeout() {
    let args = ["--concurrent-resource-request", "100", "--timeout", "1"];
    let (_dir, server) = serve(&queue_config(), &args, &[]);
    let (r, holder) = queue_behind_holder(&server).await;
    assert_eq!(r.status, 503);
    assert!(r.text().starts_with("queue timeout: waited "), "{}", r.text());
    assert!(!holder.is_finished(), "the queued request gave up while the holder ran");
    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_timeouts_total{stage=\"queue\"}"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "wasmpod_rejected_total{reason=\"queue_timeout\"}"), Some(1.0), "{text}");
    assert_eq!(holder.await.unwrap().status, 200);
}

/// `WASMPOD_QUEUE_TIMEOUT` (the twin of `--queue-timeout`) beats the 30 s `--timeout`.
#[tokio::test]
async fn the_queue_timeout_env_twin_sets_the_wait() {
    let args = ["--concurrent-resource-request", "100"];
    let (_dir, server) = serve(&queue_config(), &args, &[("WASMPOD_QUEUE_TIMEOUT", "0.5")]);
    let (r, holder) = queue_behind_holder(&server).await;
    assert_eq!(r.status, 503);
    assert!(r.text().starts_with("queue timeout: waited "), "{}", r.text());
    assert!(!holder.is_finished());
    assert_eq!(holder.await.unwrap().status, 200);
}

/// `--default-memory-request` is what a request without a valid `Memory-Request` declares (a
/// missing, invalid, zero or negative header alike), unless its function's `memory_request` says
/// otherwise: at a capacity of 250 MB a default of 300 MB is refused with 413, a function
/// declaring 50 MB runs. Also through `WASMPOD_DEFAULT_MEMORY_REQUEST`.
#[tokio::test]
async fn the_default_memory_request_and_the_function_fallback() {
    let config =
        module("/hello", guests::HELLO, "") + &module("/small", guests::HELLO, "memory_request = 50");
    let capacity = ["--concurrent-resource-request", "250"];
    let with_flag = [&capacity[..], &["--default-memory-request", "300"]].concat();
    for (args, env) in
        [(&with_flag[..], &[][..]), (&capacity[..], &[("WASMPOD_DEFAULT_MEMORY_REQUEST", "300")][..])]
    {
        let (_dir, server) = serve(&config, args, env);
        for header in [None, Some("not a number"), Some("0"), Some("-5"), Some("")] {
            let mut request = Request::get("/hello");
            if let Some(value) = header {
                request = request.header("Memory-Request", value);
            }
            let r = server.send(request).await;
            assert_eq!(r.status, 413, "Memory-Request {header:?} declares the default 300 MB: {}", r.text());
            assert!(r.text().contains("exceeds capacity"), "{}", r.text());
        }
        assert_eq!(server.send(Request::get("/hello").header("Memory-Request", "100")).await.status, 200);
        let r = server.send(Request::get("/small").header("Memory-Request", "junk")).await;
        assert_eq!(r.status, 200, "the function's memory_request (50 MB) is its default");
        let text = server.get("/metrics").await.text();
        assert_eq!(metric(&text, "wasmpod_rejected_total{reason=\"too_large\"}"), Some(5.0), "{text}");
    }
}

/// Without `--default-memory-request`, a request without a header declares 200 MB: at a capacity
/// of 150 MB it is refused; at 250 MB it runs.
#[tokio::test]
async fn the_default_memory_request_is_200_mb() {
    let config = module("/hello", guests::HELLO, "");
    let (_dir, server) = serve(&config, &["--concurrent-resource-request", "199"], &[]);
    assert_eq!(server.get("/hello").await.status, 413);
    let (_dir, server) = serve(&config, &["--concurrent-resource-request", "200"], &[]);
    assert_eq!(server.get("/hello").await.status, 200);
}

/// `--no-admission` admits everything at once: two requests each declaring the whole capacity
/// run together, and one declaring more than the capacity runs instead of a 413.
#[tokio::test]
async fn no_admission_admits_everything_at_once() {
    let config = module("/sleep", guests::SLEEP, "") + &module("/hello", guests::HELLO, "");
    let (_dir, server) = serve(&config, &["--concurrent-resource-request", "100", "--no-admission"], &[]);
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(support::send(
                server.addr,
                Request::get("/sleep?ms=3000").header("Memory-Request", "100"),
            ))
        })
        .collect();
    wait_for_metric(&server, "wasmpod_instances_in_use", |v| v == 2.0).await;
    let r = server.send(Request::get("/hello").header("Memory-Request", "5000")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap().status, 200);
    }
    let text = server.get("/metrics").await.text();
    assert_eq!(
        metric(&text, "wasmpod_rejected_total{reason=\"too_large\"}"),
        None,
        "no admission, no refusals: {text}"
    );
}

/// The `--max-instances` default: one slot per MB of capacity, at most 2048. At the default
/// capacity (8000 MB) that is 2048 slots, and the start-up line says requests under 4 MB could
/// fill the pool first; at 6 MB of capacity there is no such line (6 slots), and three 2 MB
/// requests run at once without exhausting it (admission, not the pool, makes the fourth wait).
#[tokio::test]
async fn the_max_instances_default_follows_the_capacity() {
    let config = module("/sleep", guests::SLEEP, "") + &module("/hello", guests::HELLO, "");
    let (_dir, server) = serve(&config, &[], &[]);
    let log = server.wait_for_log("admission fills the pool before the capacity");
    let line = log.lines().find(|l| l.contains("admission fills the pool")).unwrap();
    assert!(
        line.contains("slots=2048") && line.contains("capacity_mb=8000") && line.contains("under 4 MB"),
        "{line}"
    );
    drop(server);

    let (_dir, server) = serve(&config, &["--concurrent-resource-request", "6"], &[]);
    let sleepers: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(support::send(
                server.addr,
                Request::get("/sleep?ms=2000").header("Memory-Request", "2"),
            ))
        })
        .collect();
    wait_for_metric(&server, "wasmpod_instances_in_use", |v| v == 3.0).await;
    let fourth =
        tokio::spawn(support::send(server.addr, Request::get("/hello").header("Memory-Request", "2")));
    wait_for_metric(&server, "wasmpod_queued_requests", |v| v == 1.0).await;
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap().status, 200);
    }
    assert_eq!(fourth.await.unwrap().status, 200);
    assert!(!server.log().contains("pool exhausted"), "{}", server.log());
    assert!(
        !server.log().contains("admission fills the pool"),
        "6 slots for 6 MB: no warning\n{}",
        server.log()
    );
}

/// `WASMPOD_MAX_INSTANCES` sets the pool: one slot, so a second request while the first runs finds
/// the pool exhausted (503, counted).
#[tokio::test]
async fn the_max_instances_env_twin_sizes_the_pool() {
    let config = module("/sleep", guests::SLEEP, "") + &module("/hello", guests::HELLO, "");
    let (_dir, server) = serve(&config, &[], &[("WASMPOD_MAX_INSTANCES", "1")]);
    let holder = tokio::spawn(support::send(
        server.addr,
        Request::get("/sleep?ms=3000").header("Memory-Request", "10"),
    ));
    wait_for_metric(&server, "wasmpod_instances_in_use", |v| v == 1.0).await;
    let r = server.send(Request::get("/hello").header("Memory-Request", "10")).await;
    assert_eq!(r.status, 503);
    server.wait_for_log("pool exhausted");
    let text = server.get("/metrics").await.text();
    assert_eq!(
        metric(&text, "wasmpod_guest_errors_total{function=\"/hello\",kind=\"pool_exhausted\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(holder.await.unwrap().status, 200);
}

/// The admission settings' twins (Knative's names) reach the breaker: `/metrics` shows them.
#[tokio::test]
async fn the_admission_env_twins_set_capacity_and_depth() {
    let config = module("/hello", guests::HELLO, "");
    let env = [("CONCURRENT_RESOURCE_REQUEST", "1234"), ("QUEUE_DEPTH_RESOURCE_UNITS", "2345")];
    let (_dir, server) = serve(&config, &[], &env);
    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_capacity_memory_mb"), Some(1234.0), "{text}");
    assert_eq!(metric(&text, "wasmpod_queue_depth_memory_mb"), Some(2345.0), "{text}");
    assert_eq!(server.send(Request::get("/hello").header("Memory-Request", "1235")).await.status, 413);
}

/// `WASMPOD_WASMBOX_COMPAT` turns WasmBox compatibility on like `--wasmbox-compat`; `WASMPOD_STRICT`
/// refuses a start with a broken function like `--strict`.
#[tokio::test]
async fn the_wasmbox_compat_and_strict_env_twins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::wasabi::SCRYPT, dir.path().join("scrypt.wasm")).unwrap();
    std::fs::write(dir.path().join("scrypt.toml"), "interface = \"raw\"\n").unwrap();
    let server = Server::start_with(dir.path(), &["."], &[("WASMPOD_WASMBOX_COMPAT", "true")]);
    let r = server.send(Request::post("/scrypt.wasm", r#"{"parameter": "1"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("WASM output: "), "{}", r.text());
    drop(server);

    std::fs::write(dir.path().join("broken.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();
    let output = run_wasmpod_with(
        dir.path(),
        &["serve", ".", "-l", "127.0.0.1:0"],
        b"",
        &[("WASMPOD_STRICT", "true")],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("broken.wasm"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `WAGI_LOG_DIR` is `--log-dir`: guest stderr goes to the route's file.
#[tokio::test]
async fn the_log_dir_env_twin_writes_guest_stderr_files() {
    let logs = tempfile::tempdir().unwrap();
    let config = module("/stderr", guests::STDERR, "");
    let (_dir, server) = serve(&config, &[], &[("WAGI_LOG_DIR", logs.path().to_str().unwrap())]);
    assert_eq!(server.get("/stderr").await.status, 200);
    let path = wasmpod_runtime::log_file_path(logs.path(), "/stderr");
    wait_for_file_containing(&server, &path, "guest stderr line").await;
}

/// Waits until the file at `path` contains `needle`, polling as the server's other work goes on.
async fn wait_for_file_containing(server: &Server, path: &Path, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(path).unwrap_or_default().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never contained {needle:?}:\n{}",
            path.display(),
            server.log()
        );
        // Each round trip to the server is the wait: the file is written as the guest runs.
        let _ = server.get("/healthz").await;
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        }
        out.push(path);
    }
    out
}

/// "Off unless given, so a server writes no files it was not asked to": without `--cache-dir`
/// (and its twin unset) a server that compiled and ran modules, and a `wasmpod run`, leave its
/// working directory, `HOME`, `TMPDIR` and `XDG_CACHE_HOME` as they were; with
/// `WASMPOD_CACHE_DIR` the cache fills.
#[tokio::test]
async fn no_cache_dir_means_no_files_written() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(guests::HELLO, work.join("hello.wasm")).unwrap();
    std::fs::copy(guests::wat("hello.wat"), work.join("page.wat")).unwrap();
    let watched = ["home", "tmp", "cache"].map(|d| root.path().join(d));
    for dir in &watched {
        std::fs::create_dir_all(dir).unwrap();
    }
    let env = [
        ("HOME", watched[0].to_str().unwrap()),
        ("TMPDIR", watched[1].to_str().unwrap()),
        ("XDG_CACHE_HOME", watched[2].to_str().unwrap()),
    ];
    let before = files_under(root.path());
    let server = Server::start_with(&work, &["."], &env);
    assert_eq!(server.get("/hello").await.text(), "hello world\n");
    assert_eq!(server.get("/page").await.text(), "Oh hi world\n");
    drop(server);
    let output = run_wasmpod_with(&work, &["run", "hello.wasm"], b"", &env);
    assert!(output.status.success());
    assert_eq!(files_under(root.path()), before, "a server without --cache-dir wrote files");

    let cache = root.path().join("asked");
    let cache_env = [&env[..], &[("WASMPOD_CACHE_DIR", cache.to_str().unwrap())]].concat();
    let server = Server::start_with(&work, &["."], &cache_env);
    assert_eq!(server.get("/hello").await.status, 200);
    assert!(!files_under(&cache).is_empty(), "WASMPOD_CACHE_DIR fills the cache");
}

/// `wasmpod run --entrypoint` calls that export.
#[test]
fn run_entrypoint_calls_that_export() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_wasmpod(dir.path(), &["run", guests::ENTRYPOINTS, "--entrypoint", "alpha"], b"");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        String::from_utf8_lossy(&output.stdout).ends_with("\n\nalpha\n"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let output = run_wasmpod(dir.path(), &["run", guests::ENTRYPOINTS, "--entrypoint", "nope"], b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("\"nope\""),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `wasmpod run --env-file` feeds the guest its `NAME=VALUE` lines (`-e` beats them).
#[test]
fn run_env_file_feeds_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vars.env");
    std::fs::write(&file, "FROM_FILE=yes\nBOTH=file\n").unwrap();
    let output = run_wasmpod(
        dir.path(),
        &["run", guests::ENV, "--env-file", file.to_str().unwrap(), "-e", "BOTH=flag"],
        b"",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("\nFROM_FILE=yes\n") && stdout.contains("\nBOTH=flag\n"), "{stdout}");
}

/// `wasmpod run --timeout` stops the guest: 504, and the command exits 1 (a 5xx). Exit code 1 on
/// every 5xx (a trap's 500 too), 0 on a 4xx the guest chose.
#[test]
fn run_timeout_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_wasmpod(dir.path(), &["run", guests::SPIN, "--timeout", "1"], b"");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("HTTP/1.1 504"), "{stdout}");
    assert_eq!(output.status.code(), Some(1), "a 5xx exits 1");

    let output = run_wasmpod(dir.path(), &["run", guests::TRAP], b"");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("HTTP/1.1 500"));
    assert_eq!(output.status.code(), Some(1));

    let output = run_wasmpod(
        dir.path(),
        &["run", guests::RAW, "--method", "POST"],
        b"status: 404\ncontent-type: text/plain\n\nnot here\n",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("HTTP/1.1 404"), "{stdout}");
    assert_eq!(output.status.code(), Some(0), "only a 5xx fails the command");
}

/// `--resource-utilization-threshold` (and `RESOURCE_UTILIZATION_THRESHOLD`) gates admission on
/// the pod's CPU as the real sampler measures it: at a threshold no machine with anything running
/// stays under (a millionth of a core), a request with the whole capacity free is held until its
/// queue timeout; at 64 cores, the same request runs at once.
#[tokio::test]
async fn the_cpu_threshold_holds_requests_while_the_pod_is_above_it() {
    let config = module("/hello", guests::HELLO, "");
    let tiny = ["--resource-utilization-threshold", "0.000001", "--queue-timeout", "1"];
    let tiny_env = [("RESOURCE_UTILIZATION_THRESHOLD", "0.000001"), ("WASMPOD_QUEUE_TIMEOUT", "1")];
    for (args, env) in [(&tiny[..], &[][..]), (&[][..], &tiny_env[..])] {
        let (_dir, server) = serve(&config, args, env);
        // The sampler has measured some CPU use (serving these scrapes is some).
        wait_for_metric(&server, "wasmpod_cpu_utilization_cores", |v| v > 0.000001).await;
        let r = server.send(Request::get("/hello").header("Memory-Request", "10")).await;
        assert_eq!(r.status, 503, "{args:?} {env:?}");
        assert!(r.text().starts_with("queue timeout: waited "), "{}", r.text());
        let text = server.get("/metrics").await.text();
        assert_eq!(metric(&text, "wasmpod_inflight_memory_mb"), Some(0.0), "the capacity was free: {text}");
        assert_eq!(metric(&text, "wasmpod_rejected_total{reason=\"queue_timeout\"}"), Some(1.0), "{text}");
    }
    let (_dir, server) = serve(&config, &["--resource-utilization-threshold", "64"], &[]);
    assert_eq!(server.send(Request::get("/hello").header("Memory-Request", "10")).await.status, 200);
}

/// `wasmpod run --interface` says how the request speaks to the guest: a WAGI module run as a raw
/// program answers its whole stdout as the body; a core module cannot speak `wasi-http`.
/// `--header` sets a request header.
#[test]
fn run_interface_and_header() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_wasmpod(dir.path(), &["run", guests::HELLO, "--interface", "raw"], b"");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("content-type: text/plain; charset=utf-8\n"), "{stdout}");
    assert!(
        stdout.ends_with("\n\ncontent-type: text/plain\n\nhello world\n"),
        "the CGI headers are body: {stdout}"
    );

    let output = run_wasmpod(dir.path(), &["run", guests::HELLO, "--interface", "wasi-http"], b"");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wasi-http"), "{stderr}");

    let output = run_wasmpod(dir.path(), &["run", guests::ENV, "--header", "X-Given: by flag"], b"");
    assert!(String::from_utf8_lossy(&output.stdout).contains("\nHTTP_X_GIVEN=by flag\n"));
}
