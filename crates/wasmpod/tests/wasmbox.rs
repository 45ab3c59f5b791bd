//! WasmBox compatibility end to end: a client that speaks exactly as WasmBox's README does
//! (`POST /<function>` with `Memory-Request` and `cpu_quota` headers and a JSON body
//! `{"parameter": "..."}`; a GET with the headers and no body) against raw programs in a folder
//! that also holds a WAGI module and a `wasi:http` component.

mod support;

use std::path::Path;

use support::{wait_for_metric, Request, Response, Server};
use wasmpod_guests as guests;

/// A served folder mixing the three interfaces: raw programs (declared by their sidecars), a
/// WAGI module and a component (both told apart by their bytes).
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let raw = |name: &str, module: &str, extra: &str| {
        std::fs::copy(module, dir.path().join(format!("{name}.wasm"))).unwrap();
        std::fs::write(dir.path().join(format!("{name}.toml")), format!("interface = \"raw\"\n{extra}"))
            .unwrap();
    };
    raw("echo", guests::RAW, "");
    raw("trap", guests::TRAP, "");
    raw("hog", guests::HOG, "");
    raw("sleep", guests::SLEEP, "env = { QUERY_STRING = \"ms=60000\" }\n");
    std::fs::copy(guests::HELLO, dir.path().join("hello.wasm")).unwrap();
    std::fs::copy(guests::HTTP_COMPONENT, dir.path().join("component.wasm")).unwrap();
    dir
}

fn start(dir: &Path, args: &[&str]) -> Server {
    let mut full = vec![dir.to_str().unwrap()];
    full.extend_from_slice(args);
    Server::start_in(dir, &full)
}

/// WasmBox's request, as its README writes it: both resource headers, and the input as JSON.
fn wasmbox_post(function: &str, parameter: &str) -> Request {
    let body = format!("{{\"parameter\": {}}}", json_string(parameter));
    Request::post(&format!("/{function}"), body)
        .header("cpu_quota", "1000")
        .header("Memory-Request", "64")
        .header("content-type", "application/json")
}

fn wasmbox_get(function: &str) -> Request {
    Request::get(&format!("/{function}")).header("cpu_quota", "1000").header("Memory-Request", "64")
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The timing headers every raw reply carries: whole milliseconds, and the requests in flight.
fn timing(r: &Response) -> (u64, u64) {
    let execution = r.header("execution-time").expect("Execution-Time").parse().expect("whole ms");
    let in_flight = r.header("num-current-requests").expect("Num-Current-Requests").parse().expect("a count");
    (execution, in_flight)
}

#[tokio::test]
async fn raw_programs_answer_a_wasmbox_client_plainly_beside_wagi_and_wasi_http() {
    let dir = folder();
    let server = start(dir.path(), &[]);

    let r = server.send(wasmbox_post("echo", "hello wasabi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello wasabi", "only the parameter reaches stdin");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(timing(&r).1, 1);

    let r = server.send(wasmbox_get("echo")).await;
    assert_eq!((r.status, r.text().as_str()), (200, ""), "a GET has empty stdin");
    timing(&r);

    let r = server.send(Request::post("/echo", "not json at all")).await;
    assert_eq!(r.text(), "not json at all", "any other body is fed as it is");

    let r = server.send(wasmbox_post("trap", "x")).await;
    assert_eq!((r.status, r.text().as_str()), (500, ""));
    timing(&r);
    let log = server.wait_for_log("kind=\"trap\"");
    assert!(log.contains(" function=/trap/... "), "the reason is logged with the function:\n{log}");

    // The other interfaces in the same folder are unaffected.
    assert_eq!(server.get("/hello").await.text(), "hello world\n");
    assert_eq!(server.get("/component/hello").await.text(), "hello from a component\n");
    assert_eq!(server.get("/echo.wasm").await.status, 404, "no .wasm alias without --wasmbox-compat");
}

#[tokio::test]
async fn wasmbox_compat_answers_byte_for_byte_as_wasmbox() {
    let dir = folder();
    let server = start(dir.path(), &["--wasmbox-compat"]);

    let r = server.send(wasmbox_post("echo", "result\0\0")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, &b"WASM output: result\n"[..], "prefix, trailing NULs trimmed, a newline added");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    timing(&r);

    // WasmBox routes by file name: a client asking for `echo.wasm` reaches `echo`.
    let r = server.send(wasmbox_post("echo.wasm", "by file name")).await;
    assert_eq!(r.text(), "WASM output: by file name\n");

    let r = server.send(wasmbox_get("echo")).await;
    assert_eq!(r.text(), "WASM output: \n");

    for failing in [
        wasmbox_post("trap", ""),
        // The memory cap is the request's Memory-Request: 64 MB here, and `hog` wants 1 GiB.
        wasmbox_post("hog", ""),
    ] {
        let r = server.send(failing).await;
        assert_eq!((r.status, r.text().as_str()), (500, "WASM output: Failed to run WASM module\n"));
        timing(&r);
    }
    server.wait_for_log("memory limit of 64 MB exceeded");
}

#[tokio::test]
async fn num_current_requests_counts_the_requests_in_flight() {
    let dir = folder();
    let server = start(dir.path(), &["--wasmbox-compat"]);
    let addr = server.addr;
    // A guest that sleeps for a minute holds one request in flight; it is dropped at the end.
    let sleeper = tokio::spawn(support::send(addr, wasmbox_post("sleep", "")));
    wait_for_metric(&server, "wasmpod_inflight_requests", |n| n == 1.0).await;

    let r = server.send(wasmbox_post("echo", "second")).await;
    assert_eq!(r.text(), "WASM output: second\n");
    assert_eq!(timing(&r).1, 2, "the sleeper and this request");
    sleeper.abort();
}

#[tokio::test]
async fn a_modules_toml_declares_a_raw_program_with_its_interface_key() {
    let config = support::module("/scrypt", guests::RAW, "interface = \"raw\"")
        + &support::module("/cgi", guests::RAW, "");
    let (_dir, server) = support::start_with_config(&config);
    let r = server.send(wasmbox_post("scrypt", "as raw")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "as raw"));
    timing(&r);
    // The same module without the key is a WAGI module: its stdin must be a CGI response.
    let r = server.send(Request::post("/cgi", "content-type: text/plain\n\nas wagi")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "as wagi"));
    assert_eq!(r.header("execution-time"), None);
}
