//! Tests that try to break out, against the real server and real guests: host files outside a
//! volume, the host's environment, another function's volume, sockets and outbound HTTP without
//! `allowed_hosts`, another instance's memory; and hostile guests that try to exhaust the pod: a
//! `_routes` that never returns, a huge or non-UTF-8 header block, file descriptors opened in a
//! loop, a module with 100,000 functions or a 100 MB data segment (refused at load by default), a
//! component body that never ends. Each attempt is answered for its own request or function only, and the same pod goes on
//! serving the others (a `/hello` 200 and the metric or log line that shows the cause).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    metric, module, run_wasmpod, start_with_config, wait_for_metric, write_config, Request, Server,
};
use wasmpod_guests as guests;

fn wat(name: &str) -> String {
    guests::wat(name).display().to_string()
}

fn path(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_owned()
}

/// What `/metrics` says for `series`, or 0 when it has no such series yet.
async fn value(server: &Server, series: &str) -> f64 {
    metric(&server.get("/metrics").await.text(), series).unwrap_or(0.0)
}

/// Waits until `file` exists (a guest wrote it).
fn wait_for_file(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !file.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", file.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

const SECRET: &str = "root:x:0:0:planted-secret-4e1f";

#[tokio::test]
async fn host_files_the_environment_and_other_volumes_stay_out_of_reach() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A passwd-like secret outside every volume, and a symlink inside A's volume pointing to it.
    std::fs::write(root.join("passwd"), SECRET).unwrap();
    let (vol_a, vol_b) = (root.join("vol-a"), root.join("vol-b"));
    std::fs::create_dir_all(&vol_a).unwrap();
    std::fs::create_dir_all(&vol_b).unwrap();
    std::fs::write(vol_a.join("a.txt"), "a's file\n").unwrap();
    std::fs::write(vol_b.join("b.txt"), "b's file\n").unwrap();
    std::os::unix::fs::symlink(root.join("passwd"), vol_a.join("link")).unwrap();
    std::os::unix::fs::symlink("../passwd", vol_a.join("relative-link")).unwrap();
    let config = [
        module("/hello", guests::HELLO, ""),
        module("/a/...", guests::VOLUME, &format!("volumes = {{ \"/data\" = {:?} }}", path(&vol_a))),
        module("/b/...", guests::VOLUME, &format!("volumes = {{ \"/data\" = {:?} }}", path(&vol_b))),
        module("/env", guests::ENV, ""),
    ]
    .concat();
    let config = write_config(root, &config);
    // The server's own environment holds a secret; no guest may see it.
    let server = Server::start_with(
        root,
        &["-c", &path(&config)],
        &[("DB_PASSWORD", "hunter2-host-secret"), ("HOME", "/root")],
    );

    // Each function reads its own volume.
    let r = server.get("/a/data/a.txt").await;
    assert_eq!((r.status, r.text().as_str()), (200, "a's file\n"));
    let r = server.get("/b/data/b.txt").await;
    assert_eq!((r.status, r.text().as_str()), (200, "b's file\n"));

    let passwd = root.join("passwd");
    let attempts = [
        // `..` out of the volume.
        "/a/data/../passwd".to_owned(),
        "/a/data/../../../../../../etc/passwd".to_owned(),
        // Absolute host paths: the planted secret and the real /etc/passwd.
        format!("/a{}", passwd.display()),
        "/a/etc/passwd".to_owned(),
        // Symlinks inside the volume pointing out of it (absolute and relative).
        "/a/data/link".to_owned(),
        "/a/data/relative-link".to_owned(),
        // Another function's volume: by its host path, by `..`, and by a name only B's has.
        format!("/a{}", vol_b.join("b.txt").display()),
        "/a/data/../vol-b/b.txt".to_owned(),
        "/a/data/b.txt".to_owned(),
    ];
    for attempt in &attempts {
        let r = server.get(attempt).await;
        let text = r.text();
        assert_eq!(r.status, 404, "{attempt}: {text}");
        assert!(text.starts_with("error: "), "{attempt}: {text}");
        assert!(!text.contains("planted-secret") && !text.contains("b's file"), "{attempt}: {text}");
    }

    // The environment: the CGI variables and nothing of the host's.
    let r = server.get("/env").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.var("REQUEST_METHOD").as_deref(), Some("GET"));
    let text = r.text();
    for leaked in ["hunter2", "DB_PASSWORD", "HOME=", "RUST_LOG"] {
        assert!(!text.contains(leaked), "{leaked} reached the guest:\n{text}");
    }

    assert_eq!(server.get("/hello").await.status, 200);
    let refused = value(&server, "wasmpod_responses_total{function=\"/a/...\",status=\"4xx\"}").await;
    assert_eq!(refused, attempts.len() as f64);
}

#[tokio::test]
async fn sockets_and_outbound_calls_are_refused_without_allowed_hosts() {
    // A listener the guests try to reach: nothing may connect to it.
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let addr = target.local_addr().unwrap();
    let config = [
        module("/hello", guests::HELLO, ""),
        module("/wagi", guests::OUTBOUND, ""),
        module("/c/...", guests::HTTP_COMPONENT, ""),
    ]
    .concat();
    let (_dir, server) = start_with_config(&config);

    // A WAGI module through `wasi_experimental_http`: WAGI's error 7 (destination not allowed).
    let r = server.get(&format!("/wagi?url=http://{addr}/x")).await;
    assert_eq!((r.status, r.text().trim()), (200, "error 7"));
    support::assert_outbound_denied_logged(&server, "/wagi", &addr.to_string());

    // A component through `wasi:http/outgoing-handler`: HttpRequestDenied.
    let r = server.get(&format!("/c/outbound?url=http://{addr}/x")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());

    // A component through `wasi:sockets`: no address is granted, the connect is refused.
    let r = server.get(&format!("/c/socket?addr={addr}")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("access-denied"), "{}", r.text());

    // No connection ever reached the listener.
    let accepted = target.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a guest connected: {accepted:?}"
    );
    assert_eq!(server.get("/hello").await.status, 200);
    assert_eq!(value(&server, "wasmpod_outbound_denied_total{function=\"/wagi\"}").await, 1.0);
    assert_eq!(value(&server, "wasmpod_outbound_denied_total{function=\"/c/...\"}").await, 1.0);
}

/// The patterns the two tenants write, and the query a `pattern` guest is given: its own and
/// the other's, reversed (so only a leak could put the other's forward in its memory).
const ALPHA: &str = "alpha-tenant-secret-7f3a9c";
const BRAVO: &str = "bravo-tenant-secret-c91e04";

fn pattern_query(mine: &str, other: &str, sync: bool) -> String {
    let rev = |s: &str| s.chars().rev().collect::<String>();
    let sync = if sync { "&sync=/sync" } else { "" };
    format!("?mine={}&other={}{sync}", rev(mine), rev(other))
}

#[tokio::test]
async fn two_tenants_never_see_each_others_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (sync_a, sync_b) = (dir.path().join("sync-a"), dir.path().join("sync-b"));
    std::fs::create_dir_all(&sync_a).unwrap();
    std::fs::create_dir_all(&sync_b).unwrap();
    let volume = |d: &Path| format!("volumes = {{ \"/sync\" = {:?} }}", path(d));
    let config = [
        module("/hello", guests::HELLO, ""),
        module("/alpha", guests::PATTERN, &format!("tenant = \"alpha\"\n{}", volume(&sync_a))),
        module("/bravo", guests::PATTERN, &format!("tenant = \"bravo\"\n{}", volume(&sync_b))),
    ]
    .concat();
    let config = write_config(dir.path(), &config);
    let server = Server::start_in(dir.path(), &["-c", &path(&config)]);

    // Both at once: each writes its pattern and waits; the test lets them go only when both
    // have written, so each scans its memory while the other's pattern is live in the pod.
    let alpha = tokio::spawn(support::send(
        server.addr,
        Request::get(&format!("/alpha{}", pattern_query(ALPHA, BRAVO, true))),
    ));
    let bravo = tokio::spawn(support::send(
        server.addr,
        Request::get(&format!("/bravo{}", pattern_query(BRAVO, ALPHA, true))),
    ));
    let (written_a, written_b) = (sync_a.join("written"), sync_b.join("written"));
    tokio::task::spawn_blocking(move || {
        wait_for_file(&written_a);
        wait_for_file(&written_b);
    })
    .await
    .unwrap();
    std::fs::write(sync_a.join("go"), "").unwrap();
    std::fs::write(sync_b.join("go"), "").unwrap();
    for r in [alpha.await.unwrap(), bravo.await.unwrap()] {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().starts_with("zeroed=true intact=true other_found=false "), "{}", r.text());
    }

    // One after the other: an instance starts zeroed, whichever tenant's instance came before it
    // (the pool hands out the slot the other tenant's instance just left).
    for (name, mine, other) in [("alpha", ALPHA, BRAVO), ("bravo", BRAVO, ALPHA), ("alpha", ALPHA, BRAVO)] {
        let r = server.get(&format!("/{name}{}", pattern_query(mine, other, false))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().starts_with("zeroed=true intact=true other_found=false "), "{name}: {}", r.text());
    }

    // The scan finds a pattern that is there: asked for its own, a guest finds it.
    let r = server.get(&format!("/bravo{}", pattern_query(BRAVO, BRAVO, false))).await;
    assert!(r.text().contains(" other_found=true "), "{}", r.text());

    assert_eq!(server.get("/hello").await.status, 200);
    assert_eq!(value(&server, "wasmpod_tenant_responses_total{tenant=\"alpha\",status=\"2xx\"}").await, 3.0);
    assert_eq!(value(&server, "wasmpod_tenant_responses_total{tenant=\"bravo\",status=\"2xx\"}").await, 3.0);
}

#[tokio::test]
async fn a_routes_export_that_never_returns_fails_its_load_only() {
    // In a served folder: the function fails to load after the load timeout, the others serve.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::wat("hello.wat"), dir.path().join("hello.wat")).unwrap();
    std::fs::copy(guests::wat("routes_spin.wat"), dir.path().join("stuck.wat")).unwrap();
    let server = Server::start_in(dir.path(), &[&path(dir.path())]);
    let limit = format!("ran longer than {:?}", wasmpod_runtime::ROUTES_TIMEOUT);
    let log = server.wait_for_log(&limit);
    let line = log.lines().find(|l| l.contains(&limit)).unwrap();
    assert!(
        line.contains("function failed to load") && line.contains("/stuck") && line.contains("\"_routes\""),
        "{line}"
    );
    assert_eq!(server.get("/hello").await.status, 200);
    assert_eq!(server.get("/stuck").await.status, 500);
    drop(server);

    // With a modules.toml, WAGI's start-up rule: a function that cannot load stops the start.
    let dir = tempfile::tempdir().unwrap();
    let config =
        [module("/hello", guests::HELLO, ""), module("/stuck", &wat("routes_spin.wat"), "")].concat();
    let config = write_config(dir.path(), &config);
    let out = run_wasmpod(dir.path(), &["serve", "-c", &path(&config), "-l", "127.0.0.1:0"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("route \"/stuck\"") && stderr.contains(&limit), "{stderr}");
}

#[tokio::test]
async fn a_huge_or_non_utf8_header_block_answers_500_and_sends_nothing() {
    let config = [
        module("/hello", guests::HELLO, ""),
        module("/big", &wat("huge_header.wat"), ""),
        module("/bad", &wat("bad_utf8_header.wat"), ""),
    ]
    .concat();
    let (_dir, server) = start_with_config(&config);

    let r = server.get("/big").await;
    assert_eq!((r.status, r.body.len(), r.header("x-big")), (500, 0, None));
    let limit = format!("more than the limit of {}", wasmpod_wagi::MAX_HEADER_BLOCK_BYTES);
    let log = server.wait_for_log(&limit);
    assert!(
        log.lines().any(|l| l.contains(&limit) && l.contains("/big") && l.contains("request failed")),
        "{log}"
    );

    let r = server.get("/bad").await;
    assert_eq!((r.status, r.body.len(), r.header("x-bad")), (500, 0, None));
    let log = server.wait_for_log("the header block is not UTF-8");
    assert!(log.lines().any(|l| l.contains("not UTF-8") && l.contains("/bad")), "{log}");

    assert_eq!(server.get("/hello").await.status, 200);
    for function in ["/big", "/bad"] {
        let series = format!("wasmpod_guest_errors_total{{function=\"{function}\",kind=\"bad_output\"}}");
        assert_eq!(value(&server, &series).await, 1.0, "{series}");
    }
}

/// The server's open file descriptors.
fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid())).unwrap().count()
}

#[tokio::test]
async fn files_opened_in_a_loop_stop_at_the_handle_limit_and_are_all_closed_again() {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("f.txt"), "x").unwrap();
    let config = [
        module("/hello", guests::HELLO, ""),
        module("/files/...", guests::FILES, &format!("volumes = {{ \"/data\" = {:?} }}", path(&vol))),
    ]
    .concat();
    let config = write_config(dir.path(), &config);
    let server = Server::start_in(dir.path(), &["-c", &path(&config)]);
    assert_eq!(server.get("/hello").await.status, 200);
    let before = open_fds(&server);

    // A thousand files: all opened (the bound leaves room for what a real program needs).
    let r = server.get("/files/data/f.txt?n=1000").await;
    assert_eq!((r.status, r.text().as_str()), (200, "opened=1000\nerror=none\n"));

    // 100,000: the instance traps at the handle bound (wasmtime-wasi's preview1 traps when its
    // table is full), well short of the pod's descriptors; the request fails alone.
    let r = server.get("/files/data/f.txt?n=100000").await;
    assert_eq!((r.status, r.body.len()), (500, 0), "{}", r.text());
    let log = server.wait_for_log("resource table has no free keys");
    // The error spans lines ("Caused by: ..."); its last names the function and the kind.
    assert!(log.lines().any(|l| l.contains("function=/files/...") && l.contains("kind=\"trap\"")), "{log}");

    // Every descriptor the guest held is closed with its instance; the pod still serves.
    assert_eq!(server.get("/hello").await.status, 200);
    let after = open_fds(&server);
    assert!(after <= before + 2, "the pod holds {after} descriptors, {before} before");
    let trapped = "wasmpod_guest_errors_total{function=\"/files/...\",kind=\"trap\"}";
    assert_eq!(value(&server, trapped).await, 1.0);
}

/// Wasm binary encoding: an unsigned LEB128.
fn leb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    leb(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// A WAGI module that answers `content-type: text/plain`, `ok`, with `extra_functions` empty
/// functions beside its `_start`, and a data segment of `data_bytes` (`x`) at 64 KiB in a memory
/// just large enough for it.
fn generated_module(extra_functions: u32, data_bytes: usize) -> Vec<u8> {
    let output = b"content-type: text/plain\n\nok\n";
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    // Types: 0 = (i32 i32 i32 i32) -> i32 (fd_write), 1 = () -> ().
    section(1, &[2, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f, 0x60, 0, 0], &mut m);
    let mut imports = vec![1];
    for name in [&b"wasi_snapshot_preview1"[..], b"fd_write"] {
        leb(name.len() as u64, &mut imports);
        imports.extend_from_slice(name);
    }
    imports.extend_from_slice(&[0, 0]);
    section(2, &imports, &mut m);
    let mut functions = Vec::new();
    leb(u64::from(extra_functions) + 1, &mut functions);
    functions.extend(std::iter::repeat_n(1, extra_functions as usize + 1));
    section(3, &functions, &mut m);
    let pages = (65536 + data_bytes).div_ceil(65536) as u64;
    let mut memory = vec![1, 0];
    leb(pages, &mut memory);
    section(5, &memory, &mut m);
    // Exports: `_start` (function 1, after the import) and `memory`.
    let mut exports = vec![2, 6];
    exports.extend_from_slice(b"_start");
    exports.extend_from_slice(&[0, 1, 6]);
    exports.extend_from_slice(b"memory");
    exports.extend_from_slice(&[2, 0]);
    section(7, &exports, &mut m);
    // _start: iovec at 0 = (16, len); fd_write(1, 0, 1, 8); drop. The others: empty bodies.
    let mut start = vec![0];
    for (addr, value) in [(0, 16), (4, output.len() as u64)] {
        start.extend_from_slice(&[0x41, addr, 0x41]);
        leb(value, &mut start);
        start.extend_from_slice(&[0x36, 2, 0]);
    }
    start.extend_from_slice(&[0x41, 1, 0x41, 0, 0x41, 1, 0x41, 8, 0x10, 0, 0x1a, 0x0b]);
    let mut code = Vec::new();
    leb(u64::from(extra_functions) + 1, &mut code);
    leb(start.len() as u64, &mut code);
    code.extend_from_slice(&start);
    for _ in 0..extra_functions {
        code.extend_from_slice(&[2, 0, 0x0b]);
    }
    section(10, &code, &mut m);
    // Data: the output at 16, and `data_bytes` of `x` at 64 KiB.
    let mut data = vec![1 + u8::from(data_bytes > 0), 0, 0x41, 16, 0x0b];
    leb(output.len() as u64, &mut data);
    data.extend_from_slice(output);
    if data_bytes > 0 {
        data.extend_from_slice(&[0, 0x41, 0x80, 0x80, 0x04, 0x0b]);
        leb(data_bytes as u64, &mut data);
        data.resize(data.len() + data_bytes, b'x');
    }
    section(11, &data, &mut m);
    m
}

#[tokio::test]
async fn a_module_with_100k_functions_or_a_100_mb_data_segment_is_held_to_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::wat("hello.wat"), dir.path().join("hello.wat")).unwrap();
    std::fs::write(dir.path().join("many.wasm"), generated_module(100_000, 0)).unwrap();
    std::fs::write(dir.path().join("big.wasm"), generated_module(0, 100 << 20)).unwrap();

    // Under the default load limits (50,000 functions, 64 MB files), neither is compiled: each
    // is refused before the compiler sees it, naming the module and its figure; the rest serve.
    let server = Server::start_in(dir.path(), &[&path(dir.path())]);
    let refused = |needle: &str| {
        let log = server.wait_for_log(needle);
        log.lines().find(|l| l.contains(needle)).unwrap().to_owned()
    };
    let many = refused("(--max-module-functions)");
    assert!(
        many.contains("many.wasm") && many.contains("defines 100001 functions, over the limit of 50000"),
        "{many}"
    );
    let big = refused("(--max-module-size)");
    assert!(big.contains("big.wasm") && big.contains("over the limit of 67108864 bytes"), "{big}");
    assert_eq!(server.get("/many").await.status, 500);
    assert_eq!(server.get("/big").await.status, 500);
    assert_eq!(server.get("/hello").await.status, 200);
    drop(server);

    // With the size limit raised, the 100 MB data segment loads, and it needs a 100 MB memory at
    // instantiation: a request granted less is refused before the guest runs, naming the
    // function and the grant. (100,000 functions are valid Wasm, so a raised
    // --max-module-functions compiles them: 50 s in a debug build, which this test does not spend.)
    std::fs::remove_file(dir.path().join("many.wasm")).unwrap();
    let server = Server::start_in(dir.path(), &[&path(dir.path()), "--max-module-size", "209715200"]);
    let r = server.send(Request::get("/big").header("Memory-Request", "64")).await;
    assert_eq!((r.status, r.body.len()), (500, 0));
    let log = server.wait_for_log("memory limit of 64 MB exceeded");
    let line = log.lines().find(|l| l.contains("memory limit of 64 MB exceeded")).unwrap();
    assert!(line.contains("instantiation failed") && line.contains("function=/big/..."), "{line}");
    // Granted enough, it runs.
    let r = server.send(Request::get("/big").header("Memory-Request", "256")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));

    assert_eq!(server.get("/hello").await.status, 200);
    assert_eq!(value(&server, "wasmpod_inflight_memory_mb").await, 0.0);
    let failed = "wasmpod_guest_errors_total{function=\"/big/...\",kind=\"instantiate\"}";
    assert_eq!(value(&server, failed).await, 1.0);
}

#[tokio::test]
async fn a_component_body_that_never_ends_is_cut_at_the_timeout() {
    let config =
        [module("/hello", guests::HELLO, ""), module("/c/...", guests::HTTP_COMPONENT, "timeout = 2.0")]
            .concat();
    let (_dir, server) = start_with_config(&config);

    // The response head arrives (200, `partial` flushed); the body never ends.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::get("/c/stall")
        .header("host", server.addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    // While it stalls, others are served.
    assert_eq!(server.get("/hello").await.status, 200);
    // At the route's timeout the body ends with an error, not as if complete.
    let body = http_body_util::BodyExt::collect(response.into_body()).await;
    assert!(body.is_err(), "a stalled body must not end cleanly");
    server.wait_for_log("time limit of 2s");

    assert_eq!(server.get("/hello").await.status, 200);
    wait_for_metric(&server, "wasmpod_instances_in_use", |n| n == 0.0).await;
    wait_for_metric(&server, "wasmpod_guest_errors_total{function=\"/c/...\",kind=\"timeout\"}", |n| {
        n == 1.0
    })
    .await;
}
