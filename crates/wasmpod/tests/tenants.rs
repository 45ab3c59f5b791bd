//! Tenants end to end: the folder layout and the `tenant` key give each function its tenant, the
//! tenant's caps and fair share hold on the real server, and its series say what it used.
//!
//! The test of record is [`a_flooding_tenant_gets_fast_503s_and_a_light_one_never_notices`]:
//! one tenant floods the pod at ten times its capacity while another sends a light, steady load.
//! Every step waits on `/metrics`, never on a sleep.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use support::{metric, wait_for_metric, Request, Server};
use wasmpod_guests as guests;

/// Copies a built guest into a served folder as `<dest>` (`tenant/name.wasm`).
fn install(dir: &Path, guest: &str, dest: &str) {
    let dest = dir.join(dest);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(guest, dest).unwrap();
}

/// A client that keeps its connection, as a load generator does: a flood of a few thousand
/// requests must not run the machine out of ephemeral ports.
struct Client {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client { addr, sender: None }
    }

    /// GET `path` declaring `memory_mb`: the status and the body.
    async fn get(&mut self, path: &str, memory_mb: u64) -> (u16, String) {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().unwrap();
        sender.ready().await.expect("connection ready");
        let request = http::Request::get(path)
            .header("host", self.addr.to_string())
            .header("memory-request", memory_mb.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.expect("response");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

async fn scrape(server: &Server) -> String {
    server.get("/metrics").await.text()
}

/// Tenant A may run 5 requests of 100 MB (500 MB) and queue 2 (200 MB); 50 clients keep 50 of
/// its requests outstanding, ten times what it may run. Tenant B sends 20 requests one after the
/// other while the flood goes on. B must get 20 answers of 200, none refused; A's requests
/// beyond its caps must be refused at once, without waiting for any of its requests to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooding_tenant_gets_fast_503s_and_a_light_one_never_notices() {
    const A_SLEEP_MS: u64 = 2000;
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), guests::SLEEP, "a/sleep.wasm");
    install(dir.path(), guests::SLEEP, "b/sleep.wasm");
    let server = Server::start_in(
        dir.path(),
        &[
            dir.path().to_str().unwrap(),
            "--concurrent-resource-request",
            "1000",
            "--queue-depth-resource-units",
            "2000",
            "--tenant-max-inflight-mb",
            "500",
            "--tenant-max-queued-mb",
            "200",
        ],
    );

    // The flood: 50 clients, each sending again as soon as it is answered, until told to stop
    // (bounded, should the stop never come).
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for _ in 0..50 {
        let (addr, stop) = (server.addr, stop.clone());
        flood.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) && answers.len() < 5000 {
                let started = Instant::now();
                let (status, body) = client.get(&format!("/a/sleep?ms={A_SLEEP_MS}"), 100).await;
                answers.push((status, body, started.elapsed()));
            }
            answers
        }));
    }

    // The flood is in full swing: A runs and queues all it may, and is being refused.
    wait_for_metric(&server, "wasmpod_tenant_inflight_memory_mb{tenant=\"a\"}", |mb| mb == 500.0).await;
    wait_for_metric(&server, "wasmpod_tenant_queued_memory_mb{tenant=\"a\"}", |mb| mb == 200.0).await;
    let refused_a = "wasmpod_tenant_rejected_total{tenant=\"a\",reason=\"tenant_queue_full\"}";
    wait_for_metric(&server, refused_a, |n| n >= 1.0).await;
    let refused_before = metric(&scrape(&server).await, refused_a).unwrap();

    // B's light, steady load, during the flood.
    let mut b = Client::new(server.addr);
    for i in 0..20 {
        let (status, body) = b.get("/b/sleep?ms=10", 100).await;
        assert_eq!(status, 200, "B's request {i} was answered {status}: {body}");
        assert!(body.starts_with("start="), "{body}");
    }
    let text = scrape(&server).await;
    let refused_after = metric(&text, refused_a).unwrap();
    assert!(refused_after > refused_before, "A was still flooding while B ran:\n{text}");

    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut refused) = (0, 0);
    for task in flood {
        for (status, body, elapsed) in task.await.unwrap() {
            match status {
                200 => ok += 1,
                503 => {
                    refused += 1;
                    assert!(body.contains("tenant \"a\" queue full"), "{body}");
                    // Refused without waiting for a release: sooner than any A request can end.
                    assert!(
                        elapsed < Duration::from_millis(A_SLEEP_MS),
                        "a refusal took {elapsed:?}, as long as a request of A runs"
                    );
                }
                other => panic!("A got {other}: {body}"),
            }
        }
    }
    assert!(ok >= 5, "A's capped share ran: {ok} answered 200");
    assert!(refused > 0);

    let text = scrape(&server).await;
    assert_eq!(
        metric(&text, "wasmpod_tenant_responses_total{tenant=\"b\",status=\"2xx\"}"),
        Some(20.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "wasmpod_tenant_responses_total{tenant=\"b\",status=\"5xx\"}"),
        Some(0.0),
        "{text}"
    );
    for reason in ["too_large", "queue_full", "tenant_too_large", "tenant_queue_full", "queue_timeout"] {
        let series = format!("wasmpod_tenant_rejected_total{{tenant=\"b\",reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), Some(0.0), "{series}:\n{text}");
    }
    assert_eq!(
        metric(&text, "wasmpod_tenant_responses_total{tenant=\"a\",status=\"5xx\"}"),
        Some(f64::from(refused)),
        "{text}"
    );
}

/// Each function's tenant, from the folder layout, a sidecar and the `tenant` key; each tenant's
/// requests counted and billed in its own series.
#[tokio::test]
async fn each_tenant_is_counted_and_billed_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), guests::CPU, "acme/cpu.wasm");
    install(dir.path(), guests::HELLO, "acme/hello.wasm");
    install(dir.path(), guests::HELLO, "hello.wasm");
    install(dir.path(), guests::SLEEP, "beta/sleep.wasm");
    std::fs::write(dir.path().join("beta/sleep.toml"), "tenant = \"gamma\"\n").unwrap();
    let server = Server::start_in(dir.path(), &[dir.path().to_str().unwrap()]);

    let get = |path: &'static str| server.send(Request::get(path).header("Memory-Request", "64"));
    assert_eq!(get("/acme/cpu?iters=20000000").await.status, 200);
    assert_eq!(get("/acme/hello").await.text(), "hello world\n");
    assert_eq!(get("/hello").await.text(), "hello world\n");
    assert_eq!(get("/beta/sleep?ms=100").await.status, 200);
    let r = server.send(Request::get("/acme/hello").header("Memory-Request", "9000")).await;
    assert_eq!(r.status, 413, "{}", r.text());

    let text = scrape(&server).await;
    let value = |series: &str| metric(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(value("wasmpod_tenant_responses_total{tenant=\"acme\",status=\"2xx\"}"), 2.0);
    assert_eq!(value("wasmpod_tenant_responses_total{tenant=\"acme\",status=\"4xx\"}"), 1.0);
    assert_eq!(value("wasmpod_tenant_rejected_total{tenant=\"acme\",reason=\"too_large\"}"), 1.0);
    assert_eq!(value("wasmpod_tenant_responses_total{tenant=\"hello\",status=\"2xx\"}"), 1.0);
    assert_eq!(value("wasmpod_tenant_responses_total{tenant=\"gamma\",status=\"2xx\"}"), 1.0);
    assert!(!text.contains("tenant=\"beta\""), "the sidecar moved beta/sleep to gamma:\n{text}");

    // Billing: the CPU-bound guest used CPU, the sleeping one held 64 MB for at least 100 ms
    // and used almost no CPU.
    let acme_cpu = value("wasmpod_tenant_cpu_seconds_total{tenant=\"acme\"}");
    let gamma_cpu = value("wasmpod_tenant_cpu_seconds_total{tenant=\"gamma\"}");
    assert!(acme_cpu > 0.0 && gamma_cpu < acme_cpu, "acme {acme_cpu} s, gamma {gamma_cpu} s");
    assert!(value("wasmpod_tenant_memory_mb_seconds_total{tenant=\"gamma\"}") >= 64.0 * 0.1);
    assert!(value("wasmpod_tenant_memory_peak_bytes{tenant=\"acme\"}") > 0.0);
    assert_eq!(value("wasmpod_tenant_inflight_memory_mb{tenant=\"acme\"}"), 0.0);

    // The debug request line names the tenant.
    let log = server.wait_for_log("tenant=gamma");
    assert!(
        log.lines().any(|l| l.contains("function=/beta/sleep/...") && l.contains("tenant=gamma")),
        "{log}"
    );
}

/// A `modules.toml` names each function's tenant and may give a tenant caps of its own, over
/// the command line's defaults; a reload that drops them gives the defaults back.
#[tokio::test]
async fn a_tenants_own_caps_come_from_modules_toml() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modules.toml");
    let with_caps = format!(
        "[[module]]\nroute = \"/small\"\nmodule = {:?}\ntenant = \"small\"\n\n\
         [[module]]\nroute = \"/big\"\nmodule = {:?}\ntenant = \"big\"\n\n\
         [tenants.small]\nmax_inflight_mb = 100\n",
        guests::HELLO,
        guests::HELLO
    );
    std::fs::write(&config, &with_caps).unwrap();
    let server =
        Server::start_in(dir.path(), &["-c", config.to_str().unwrap(), "--tenant-max-inflight-mb", "300"]);
    let get =
        |path: &'static str, mb: &'static str| server.send(Request::get(path).header("Memory-Request", mb));

    let r = get("/small", "200").await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("tenant \"small\"") && r.text().contains("cap of 100 MB"), "{}", r.text());
    assert_eq!(get("/big", "200").await.status, 200, "big has the default cap of 300 MB");
    assert_eq!(get("/big", "400").await.status, 413);

    // Without its own caps, small gets the default back.
    let without = with_caps.replace("[tenants.small]\nmax_inflight_mb = 100\n", "");
    std::fs::write(&config, without).unwrap();
    server.wait_for_log("tenant caps back to the defaults");
    assert_eq!(get("/small", "200").await.status, 200);
}
