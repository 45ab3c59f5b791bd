//! WAGI compatibility end to end: the real binary on 127.0.0.1, real HTTP, real guests.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{module, write_config, Request, Server};
use wasmpod_guests as guests;

/// One server with a route per rule; each test below checks one behaviour against it.
fn config(dir: &Path) -> String {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "from the volume\n").unwrap();
    std::fs::write(dir.join("secret.txt"), "host secret\n").unwrap();
    let wat = |name: &str| guests::wat(name).display().to_string();
    [
        module("/healthz", guests::HELLO, ""),
        module("/hello", guests::HELLO, ""),
        module("/wat", &wat("hello.wat"), ""),
        module("/crlf", &wat("crlf.wat"), ""),
        module("/noheaders", &wat("no_headers.wat"), ""),
        module("/badname", &wat("bad_header_name.wat"), ""),
        module("/env/...", guests::ENV, ""),
        module("/argv/...", guests::ENV, "argv = \"prog ${SCRIPT_NAME} ${ARGS}\""),
        module("/echo", guests::ECHO, ""),
        module("/raw", guests::RAW, ""),
        module("/router/...", guests::ROUTER, ""),
        module("/alpha", guests::ENTRYPOINTS, "entrypoint = \"alpha\""),
        module("/stderr", guests::STDERR, ""),
        module(
            "/volume/...",
            guests::VOLUME,
            &format!("volumes = {{ \"/data\" = {:?} }}", data.display().to_string()),
        ),
        module("/novolume/...", guests::VOLUME, ""),
        module("/trap", guests::TRAP, ""),
        module("/spin", guests::SPIN, "timeout = 5.0"),
        module("/exit", guests::EXIT, ""),
        module("/shadow/...", guests::HELLO, ""),
        module("/shadow/hidden", guests::ECHO, ""),
        module("/last/...", &wat("hello.wat"), ""),
    ]
    .concat()
}

struct Fixture {
    _dir: tempfile::TempDir,
    logs: std::path::PathBuf,
    server: Server,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config(dir.path()));
    let env_file = dir.path().join("vars.env");
    std::fs::write(&env_file, "FROM_FILE=file\nOVERRIDDEN=file\n").unwrap();
    let logs = dir.path().join("logs");
    let server = Server::start_in(
        dir.path(),
        &[
            "-c",
            config.to_str().unwrap(),
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "OVERRIDDEN=flag",
            "-e",
            "REQUEST_METHOD=ignored",
            "-e",
            "HTTP_X_FROM_CLI=cli",
            "--log-dir",
            logs.to_str().unwrap(),
        ],
    );
    Fixture { _dir: dir, logs, server }
}

#[tokio::test]
async fn wagi_contract_end_to_end() {
    let f = start();
    let s = &f.server;

    // Hello from a Rust guest and from WAT text.
    let r = s.get("/hello").await;
    assert_eq!(
        (r.status, r.header("content-type"), r.text().as_str()),
        (200, Some("text/plain"), "hello world\n")
    );
    let r = s.get("/wat").await;
    assert_eq!((r.status, r.header("content-type")), (200, Some("text/html;charset=UTF-8")));
    assert_eq!(r.text(), "Oh hi world\n");
    assert_eq!(r.header("content-length"), Some("12"));

    // The built-in /healthz wins over a user route of the same path; /healthz/ is not it.
    let r = s.get("/healthz").await;
    assert_eq!((r.status, r.text().as_str(), r.header("content-type")), (200, "OK", None));
    assert_eq!(s.get("/healthz/").await.status, 404);

    // No match: 404, empty body.
    let r = s.get("/nothing-here").await;
    assert_eq!((r.status, r.body.len()), (404, 0));
    assert_eq!(s.get("/hello/").await.status, 404, "exact routes are exact");

    // First match in file order wins: /shadow/... hides the later /shadow/hidden.
    assert_eq!(s.get("/shadow/hidden").await.text(), "hello world\n");
    assert_eq!(s.get("/last").await.text(), "Oh hi world\n");
}

#[tokio::test]
async fn cgi_environment_over_http() {
    let f = start();
    let s = &f.server;
    let port = s.addr.port();
    let r = s
        .send(
            Request::post("/env/a%20b/c%3Bd?x=1&y=two%20words&z", "12345")
                .header("content-type", "application/json")
                .header("x-custom", "yes")
                .header("authorization", "Bearer secret")
                .header("x-from-cli", "header"),
        )
        .await;
    assert_eq!(r.status, 200);
    let expect = [
        ("REQUEST_METHOD", "POST".to_owned()),
        ("SCRIPT_NAME", "/env".to_owned()),
        ("PATH_INFO", "/a b/c;d".to_owned()),
        ("PATH_TRANSLATED", "/a b/c;d".to_owned()),
        ("X_RAW_PATH_INFO", "/a%20b/c%3Bd".to_owned()),
        ("X_MATCHED_ROUTE", "/env/...".to_owned()),
        ("QUERY_STRING", "x=1&y=two%20words&z".to_owned()),
        ("X_FULL_URL", format!("http://127.0.0.1:{port}/env/a%20b/c%3Bd?x=1&y=two%20words&z")),
        ("SERVER_NAME", "127.0.0.1".to_owned()),
        ("SERVER_PORT", port.to_string()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_owned()),
        ("SERVER_SOFTWARE", "WAGI/1".to_owned()),
        ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
        ("REMOTE_ADDR", "127.0.0.1".to_owned()),
        ("REMOTE_HOST", "127.0.0.1".to_owned()),
        ("CONTENT_LENGTH", "5".to_owned()),
        ("CONTENT_TYPE", "application/json".to_owned()),
        ("HTTP_CONTENT_TYPE", "application/json".to_owned()),
        ("HTTP_X_CUSTOM", "yes".to_owned()),
        ("HTTP_X_FROM_CLI", "header".to_owned()),
        ("AUTH_TYPE", String::new()),
        ("REMOTE_USER", String::new()),
        ("FROM_FILE", "file".to_owned()),
        ("OVERRIDDEN", "flag".to_owned()),
        ("ARG0", "/env/a%20b/c%3Bd".to_owned()),
        ("ARG1", "x=1".to_owned()),
        ("ARG2", "y=two%20words".to_owned()),
        ("ARG3", "z".to_owned()),
    ];
    for (name, value) in expect {
        assert_eq!(r.var(name).as_deref(), Some(value.as_str()), "{name} in\n{}", r.text());
    }
    assert_eq!(r.var("HTTP_AUTHORIZATION"), None);
    assert_eq!(r.var("HTTP_CONNECTION"), None);
    assert_eq!(r.var("PATH"), None, "no host environment leaks into the guest");

    // Without the header, the --env value of an HTTP_ name shows through.
    let r = s.get("/env").await;
    assert_eq!(r.var("HTTP_X_FROM_CLI").as_deref(), Some("cli"));
    assert_eq!(r.var("PATH_INFO").as_deref(), Some(""));
    assert_eq!(r.var("CONTENT_LENGTH").as_deref(), Some("0"));
    assert_eq!(r.var("ARG1"), None);

    // No Host header: the default host.
    let r = s.send(Request::get("/env/x?").header("host", "")).await;
    assert_eq!(r.var("ARG1").as_deref(), Some(""), "a bare ? gives one empty argument");
    let r = s.send(Request::get("/argv/sub?a=1&b=2")).await;
    let argv: Vec<String> = (0..4).filter_map(|i| r.var(&format!("ARG{i}"))).collect();
    assert_eq!(argv, ["prog", "/argv/sub", "a=1", "b=2"]);
}

#[tokio::test]
async fn stdin_and_stdout_are_byte_exact() {
    let f = start();
    let s = &f.server;
    let body: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let r = s.send(Request::post("/echo", body.clone())).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(&r.body[..], &body[..]);

    let r = s.get("/crlf").await;
    assert_eq!(
        (r.status, r.header("content-type"), r.header("x-extra")),
        (200, Some("text/plain"), Some("yes"))
    );
    assert_eq!(&r.body[..], b"line1\r\nline2\r\n");
}

#[tokio::test]
async fn stdout_header_rules() {
    let f = start();
    let s = &f.server;
    struct Case {
        out: &'static str,
        status: u16,
        body: &'static str,
        headers: &'static [(&'static str, &'static str)],
    }
    let cases = [
        Case {
            out: "status: 404\ncontent-type: text/plain\n\nNot Found\n",
            status: 404,
            body: "Not Found\n",
            headers: &[("content-type", "text/plain")],
        },
        Case {
            out: "location: /elsewhere\n\n",
            status: 302,
            body: "",
            headers: &[("location", "/elsewhere")],
        },
        Case {
            out: "location: /elsewhere\nstatus: 301\n\n",
            status: 301,
            body: "",
            headers: &[("location", "/elsewhere")],
        },
        Case {
            out: "content-type: text/plain\nstatus: nonsense\n\nkept",
            status: 502,
            body: "kept",
            headers: &[("content-type", "text/plain")],
        },
        Case {
            out: "content-type: text/plain\ncontent-length: 2\n\nlonger than two",
            status: 200,
            body: "longer than two",
            headers: &[("content-length", "15")],
        },
        Case {
            out: "x-only: 1\n\nbody",
            status: 500,
            body: "Exactly one of 'location' or 'content-type' must be specified",
            headers: &[],
        },
        Case {
            out: "content-type: text/plain\r\nx-a: b\r\n\r\nbody\r\n",
            status: 200,
            body: "body\r\n",
            headers: &[("x-a", "b")],
        },
    ];
    for case in cases {
        let r = s.send(Request::post("/raw", case.out)).await;
        assert_eq!(r.status, case.status, "{:?}", case.out);
        assert_eq!(r.text(), case.body, "{:?}", case.out);
        for (name, value) in case.headers {
            assert_eq!(r.header(name), Some(*value), "{name} for {:?}", case.out);
        }
    }

    let r =
        s.send(Request::post("/raw", "content-type: text/plain\nset-cookie: a=1\nset-cookie: b=2\n\n")).await;
    let cookies: Vec<&str> = r.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies, ["a=1", "b=2"]);

    let r = s.get("/noheaders").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "Exactly one of 'location' or 'content-type' must be specified")
    );
    let r = s.get("/badname").await;
    assert_eq!((r.status, r.header("x-good"), r.text().as_str()), (200, Some("1"), "body\n"));
    s.wait_for_log("dropped header with invalid name");
}

/// A guest's `Connection` and `Transfer-Encoding` headers are dropped (the server frames the body
/// and owns the connection): the response does not carry them, the body arrives whole, and the
/// connection stays open for the next request.
#[tokio::test]
async fn a_guests_connection_header_is_dropped() {
    use http_body_util::{BodyExt, Full};
    let f = start();
    let stream = tokio::net::TcpStream::connect(f.server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let out = "content-type: text/plain\nconnection: close\ntransfer-encoding: chunked\nx-kept: 1\n\nbody";
    for round in 0..2 {
        let request = http::Request::post("/raw")
            .header("host", f.server.addr.to_string())
            .body(Full::new(bytes::Bytes::from(out)))
            .unwrap();
        sender.ready().await.unwrap_or_else(|e| panic!("round {round}: the connection was closed: {e}"));
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(headers.get("x-kept").map(|v| v.to_str().unwrap()), Some("1"));
        assert!(headers.get("connection").is_none(), "{headers:?}");
        assert!(headers.get("transfer-encoding").is_none(), "{headers:?}");
        assert_eq!(headers.get("content-length").map(|v| v.to_str().unwrap()), Some("4"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"body");
    }
}

/// Without `--log-dir`, guest stderr goes to the server log at info level (with the function).
#[tokio::test]
async fn without_a_log_dir_guest_stderr_reaches_the_server_log_at_info() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &module("/stderr", guests::STDERR, ""));
    let server = Server::start_with(dir.path(), &["-c", config.to_str().unwrap()], &[("RUST_LOG", "info")]);
    let r = server.get("/stderr").await;
    assert_eq!((r.status, r.text().as_str()), (200, "logged\n"));
    let log = server.wait_for_log("guest stderr line");
    let line = log.lines().find(|l| l.contains("guest stderr line")).unwrap();
    assert!(line.contains(" INFO ") && line.contains("/stderr"), "{line}");
}

#[tokio::test]
async fn dynamic_routes_and_entrypoints() {
    let f = start();
    let s = &f.server;
    assert_eq!(s.get("/router").await.text(), "main\n");
    assert_eq!(s.get("/router/one").await.text(), "one\n");
    assert_eq!(s.get("/router/two").await.text(), "two\n");
    assert_eq!(s.get("/router/two/deeper").await.text(), "two\n");
    assert_eq!(
        s.get("/router/one/deeper").await.text(),
        "main\n",
        "/one is exact; the parent wildcard catches the rest"
    );
    assert_eq!(s.get("/alpha").await.text(), "alpha\n");
    let r = s.get("/router/two/x").await;
    assert_eq!(r.status, 200);

    // Overlapping `_routes` entries: the one printed last is tried first, whichever is the more
    // specific (`/wide/exact` was printed before `/wide/...`, `/narrow/...` before `/narrow/deep`).
    assert_eq!(s.get("/router/wide/exact").await.text(), "two\n", "/wide/... was printed later");
    assert_eq!(s.get("/router/wide/other").await.text(), "two\n");
    assert_eq!(s.get("/router/narrow/deep").await.text(), "one\n", "/narrow/deep was printed later");
    assert_eq!(s.get("/router/narrow/other").await.text(), "two\n");
}

#[tokio::test]
async fn guest_stderr_goes_to_the_route_log_file() {
    let f = start();
    let r = f.server.get("/stderr").await;
    assert_eq!((r.status, r.text().as_str()), (200, "logged\n"));
    let path = wasmpod_runtime::log_file_path(&f.logs, "/stderr");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("guest stderr line") {
            break;
        }
        assert!(Instant::now() < deadline, "no stderr in {}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.server.wait_for_log("guest stderr line");
}

#[tokio::test]
async fn volumes_grant_only_what_config_names() {
    let f = start();
    let s = &f.server;
    let r = s.get("/volume/data/hello.txt").await;
    assert_eq!((r.status, r.text().as_str()), (200, "from the volume\n"));
    let r = s.get("/volume/data/../secret.txt").await;
    assert_eq!(r.status, 404, "no escape from the volume: {}", r.text());
    let r = s.get("/novolume/data/hello.txt").await;
    assert_eq!(r.status, 404, "no volume, no files: {}", r.text());
}

#[tokio::test]
async fn a_failing_guest_answers_only_its_own_request() {
    let f = start();
    let s = &f.server;
    let r = s.get("/trap").await;
    assert_eq!((r.status, r.body.len()), (500, 0), "partial stdout is discarded");
    s.wait_for_log("guest trapped");

    let r = s.get("/exit?code=0").await;
    assert_eq!((r.status, r.text().as_str()), (200, "exiting\n"), "proc_exit(0) after output is success");
    let r = s.get("/exit?code=3").await;
    assert_eq!(r.status, 500);
    s.wait_for_log("guest exited with status 3");

    // An infinite loop ends at its route's 5 s timeout, while other requests are served: twenty
    // requests are answered while the loop is still in flight.
    let started = Instant::now();
    let spin = tokio::spawn(support::send(s.addr, Request::get("/spin")));
    support::wait_for_metric(s, "wasmpod_inflight_requests", |n| n == 1.0).await;
    for _ in 0..20 {
        assert_eq!(s.get("/hello").await.status, 200);
    }
    assert!(!spin.is_finished(), "the hello requests waited for the loop");
    let r = spin.await.unwrap();
    assert_eq!(r.status, 504);
    // A lower bound only: the cause is the route's own timeout (the log names it).
    assert!(started.elapsed() >= Duration::from_secs(5), "{:?}", started.elapsed());
    s.wait_for_log("time limit of 5s");
    assert_eq!(s.get("/hello").await.status, 200);
}
