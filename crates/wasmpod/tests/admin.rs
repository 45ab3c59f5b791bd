//! The admin API end to end: a listener of its own, a bearer token, uploads that land in the
//! served folder atomically and are served at once, and every bad request refused with its
//! reason.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use support::{run_wasmpod, send, wat, Request, Response, Server};
use wasmpod_guests as guests;

const TOKEN: &str = "s3cret-token";

/// A folder server with the admin API on another loopback port, and that port.
fn start(dir: &Path, extra: &[&str]) -> (Server, SocketAddr) {
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let mut args = vec![
        dir.join("functions").to_str().unwrap().to_owned(),
        "--admin-listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--admin-token-file".to_owned(),
        dir.join("token").to_str().unwrap().to_owned(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_in(dir, &args);
    let log = server.wait_for_log("admin API on http://");
    let line = log.lines().find(|l| l.contains("admin API on http://")).unwrap();
    let address = line.split("admin API on http://").nth(1).unwrap().split_whitespace().next().unwrap();
    (server, address.parse().unwrap())
}

fn authorized(request: Request) -> Request {
    request.header("Authorization", &format!("Bearer {TOKEN}"))
}

fn put(path: &str, body: impl Into<bytes::Bytes>) -> Request {
    Request { method: "PUT", ..Request::post(path, body) }
}

fn json(response: &Response) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("{e}: {}", response.text()))
}

#[tokio::test]
async fn functions_are_uploaded_listed_replaced_and_deleted_while_the_pod_serves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("functions")).unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("functions/hello.wasm")).unwrap();
    let (server, admin) = start(dir.path(), &[]);

    // A new function of tenant acme.
    let r = send(admin, authorized(put("/functions/acme/greet", wat("v1")))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = json(&r);
    assert_eq!(body["compiled"], true, "{body}");
    assert_eq!(body["route"], "/acme/greet/...");
    assert_eq!(server.get("/acme/greet").await.text(), "v1");
    assert!(dir.path().join("functions/acme/greet.wasm").is_file(), "it landed in the served folder");

    // Replaced.
    let r = send(admin, authorized(put("/functions/acme/greet", wat("v2")))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["replaced"], true);
    assert_eq!(server.get("/acme/greet").await.text(), "v2");

    // Listed, with its tenant and digest; one function alone.
    let r = send(admin, authorized(Request::get("/functions"))).await;
    assert_eq!(r.status, 200);
    let list = json(&r);
    let greet = list.as_array().unwrap().iter().find(|f| f["route"] == "/acme/greet/...").unwrap();
    assert_eq!(greet["tenant"], "acme");
    assert_eq!(greet["state"], "ready");
    assert_eq!(greet["sha256"].as_str().unwrap().len(), 64);
    let r = send(admin, authorized(Request::get("/functions/hello"))).await;
    assert_eq!((r.status, json(&r)["tenant"].as_str()), (200, Some("hello")));

    // Invalid Wasm: refused with the reason; the previous version goes on serving.
    let r = send(admin, authorized(put("/functions/acme/greet", "\0asm\x01\0\0\0garbage"))).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let body = json(&r);
    assert_eq!(body["compiled"], false);
    assert!(body["error"].as_str().unwrap().contains("invalid"), "{body}");
    assert_eq!(body["previous_version_serving"], true);
    assert_eq!(server.get("/acme/greet").await.text(), "v2");

    // Deleted.
    let r =
        send(admin, authorized(Request { method: "DELETE", ..Request::get("/functions/acme/greet") })).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(server.get("/acme/greet").await.status, 404);
    let r =
        send(admin, authorized(Request { method: "DELETE", ..Request::get("/functions/acme/greet") })).await;
    assert_eq!(r.status, 404);

    // The admin API is not on the serving port.
    assert_eq!(server.get("/functions").await.status, 404);
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("functions")).unwrap();
    let (server, admin) = start(dir.path(), &["--max-module-size", "1000"]);

    let r = send(admin, put("/functions/x", wat("x"))).await;
    assert_eq!(r.status, 401, "missing token: {}", r.text());
    let r = send(admin, put("/functions/x", wat("x")).header("Authorization", "Bearer wrong")).await;
    assert_eq!(r.status, 403, "wrong token: {}", r.text());
    for bad in [
        "/functions/..",
        "/functions/Upper",
        "/functions/a/b/c",
        "/functions/.hidden",
        "/functions/a%2f..%2fb",
    ] {
        let r = send(admin, authorized(put(bad, wat("x")))).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(json(&r)["error"].as_str().unwrap().contains("name"), "{bad}: {}", r.text());
    }
    let r = send(admin, authorized(put("/functions/big", vec![0u8; 2000]))).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("--max-module-size"), "{}", r.text());
    let r = send(admin, authorized(put("/functions/bad", "not wasm at all"))).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(json(&r)["compiled"], false);
    assert_eq!(json(&r)["previous_version_serving"], false);

    // Nothing written but the invalid module (whose route answers 500), no temporary file left.
    let mut names: Vec<_> = std::fs::read_dir(dir.path().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["bad.wasm".to_owned()]);
    assert_eq!(server.get("/bad").await.status, 500);
}

#[test]
fn a_non_loopback_admin_address_without_a_token_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_wasmpod(
        dir.path(),
        &["serve", dir.path().to_str().unwrap(), "-l", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"],
        b"",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs --admin-token-file"), "{stderr}");
}

/// Replacing and deleting through the admin API while clients keep calling: no request fails
/// because of a reload. Every answer of the replaced function is one of its versions until the
/// delete, then 404; its neighbour answers 200 throughout.
#[tokio::test]
async fn replace_and_delete_under_load_fail_no_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("functions")).unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("functions/hello.wasm")).unwrap();
    let (server, admin) = start(dir.path(), &[]);
    let r = send(admin, authorized(put("/functions/acme/greet", wat("v0")))).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = ["/acme/greet", "/hello", "/acme/greet", "/hello"]
        .into_iter()
        .map(|path| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = send(addr, Request::get(path)).await;
                    answers.push((path, r.status, r.text()));
                }
                answers
            })
        })
        .collect();

    for version in 1..=5 {
        let r = send(admin, authorized(put("/functions/acme/greet", wat(&format!("v{version}"))))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(server.get("/acme/greet").await.text(), format!("v{version}"));
    }
    let r =
        send(admin, authorized(Request { method: "DELETE", ..Request::get("/functions/acme/greet") })).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(server.get("/acme/greet").await.status, 404);
    // The clients go on until the neighbour has answered once more after the delete.
    assert_eq!(server.get("/hello").await.status, 200);
    stop.store(true, Ordering::Relaxed);

    let versions: Vec<String> = (0..=5).map(|v| format!("v{v}")).collect();
    let (mut greet, mut hello, mut gone) = (0, 0, 0);
    for client in clients {
        for (path, status, text) in client.await.unwrap() {
            if path == "/hello" {
                assert_eq!((status, text.as_str()), (200, "hello world\n"), "the neighbour was disturbed");
                hello += 1;
            } else if status == 404 {
                gone += 1;
            } else {
                assert!(status == 200 && versions.contains(&text), "{path} answered {status} {text:?}");
                greet += 1;
            }
        }
    }
    assert!(greet > 0 && hello > 0, "the clients were served: {greet} greet, {hello} hello, {gone} gone");
}

/// The upload temp files in `dir`.
fn upload_temps(dir: &Path) -> Vec<String> {
    let names =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
    names.filter(|n| n.starts_with(wasmpod_server::UPLOAD_TEMP_PREFIX)).collect()
}

/// `module` with a custom section of `size` bytes appended: still valid, as large as wanted.
fn padded(module: &[u8], size: usize) -> Vec<u8> {
    let mut out = module.to_vec();
    let name = b"padding";
    let mut payload_len = name.len() + 1 + size;
    out.push(0); // custom section id
    loop {
        let byte = (payload_len & 0x7f) as u8;
        payload_len >>= 7;
        out.push(if payload_len == 0 { byte } else { byte | 0x80 });
        if payload_len == 0 {
            break;
        }
    }
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + size, 0);
    out
}

/// SIGKILL while an upload is being written into the served folder (the kill comes as soon as
/// its temp file appears, while 48 MB are written and fsynced): the function's file is still the
/// previous version, whole; the next start deletes the temp file (logged) and serves the previous
/// version; and the same upload then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_upload_leaves_the_previous_version_whole_and_nothing_half_written_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let functions = dir.path().join("functions");
    std::fs::create_dir(&functions).unwrap();
    std::fs::write(functions.join("api.wasm"), wat("v1")).unwrap();
    let (server, admin) = start(dir.path(), &[]);
    assert_eq!(server.get("/api").await.text(), "v1");

    let v2 = padded(&std::fs::read(guests::HELLO).unwrap(), 48 << 20);
    let uploading = tokio::spawn(support::try_send(admin, authorized(put("/functions/api", v2.clone()))));
    // The event: the upload's temp file. Polled without pause: the window is the write and fsync.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let seen = loop {
        let temps = upload_temps(&functions);
        if !temps.is_empty() {
            break temps;
        }
        assert!(
            !uploading.is_finished(),
            "the upload ended before its temp file was seen: {:?}",
            uploading.await
        );
        assert!(std::time::Instant::now() < deadline, "no upload temp file appeared");
        std::thread::yield_now();
    };
    server.signal("KILL");
    let status = server.wait_exit(std::time::Duration::from_secs(30));
    assert!(!status.success(), "{status:?}");
    let left = upload_temps(&functions);
    eprintln!("killed on seeing {seen:?}; the kill left {left:?}");
    assert!(!left.is_empty(), "the kill came after the rename: nothing was interrupted");
    assert_eq!(
        std::fs::read_to_string(functions.join("api.wasm")).unwrap(),
        wat("v1"),
        "the previous version, whole"
    );
    let _ = uploading.await;

    let (server, admin) = start(dir.path(), &[]);
    assert_eq!(server.get("/api").await.text(), "v1", "{}", server.log());
    let log = server.log();
    for temp in &left {
        assert!(
            log.lines().any(|l| l.contains("deleted the temp file of an upload that was killed") && l.contains(temp)),
            "{temp}\n{log}"
        );
    }
    assert!(upload_temps(&functions).is_empty());
    let r = send(admin, authorized(put("/functions/api", v2.clone()))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server.get("/api").await.text(), "hello world\n", "the new version serves");
    assert_eq!(std::fs::read(functions.join("api.wasm")).unwrap(), v2);
}
