//! The artifact cache end to end: `wasmpod compile` fills it, `serve` and `run` map from it, and a
//! damaged entry is rebuilt without failing the start.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{run_wasmpod, Server, WASMPOD};
use wasmpod_guests as guests;

fn compile(dir: &Path, modules: &[&str]) -> String {
    let mut args = vec!["compile", "--cache-dir", "cache"];
    args.extend_from_slice(modules);
    let output = run_wasmpod(dir, &args, b"");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[tokio::test]
async fn compile_then_serve_maps_the_module_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("hello.wasm")).unwrap();
    std::fs::copy(guests::wat("hello.wat"), dir.path().join("page.wat")).unwrap();

    let first = compile(dir.path(), &["hello.wasm", "page.wat"]);
    assert!(first.contains("hello.wasm  compiled") && first.contains("page.wat  compiled"), "{first}");
    let second = compile(dir.path(), &["hello.wasm", "page.wat"]);
    assert!(second.contains("hello.wasm  hit") && second.contains("page.wat  hit"), "{second}");

    let server = Server::start_in(dir.path(), &[".", "--cache-dir", "cache"]);
    assert_eq!(server.get("/hello").await.text(), "hello world\n");
    assert_eq!(server.get("/page").await.text(), "Oh hi world\n");
    let log = server.log();
    // Hits are counted in the summary line (each one is logged at debug only).
    assert!(log.contains("modules=2 failed=0 from_cache=2 compiled=0"), "{log}");
    assert!(!log.contains("compile_ms"), "{log}");
}

#[tokio::test]
async fn components_are_cached_like_modules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::HTTP_COMPONENT, dir.path().join("http.wasm")).unwrap();
    assert!(compile(dir.path(), &["http.wasm"]).contains("http.wasm  compiled"));

    let server = Server::start_in(dir.path(), &[".", "--cache-dir", "cache"]);
    assert_eq!(server.get("/http/hello").await.text(), "hello from a component\n");
    let log = server.log();
    assert!(log.contains("modules=1 failed=0 from_cache=1 compiled=0"), "{log}");
    assert!(!log.contains("compile_ms"), "{log}");
}

#[tokio::test]
async fn serve_rebuilds_a_damaged_entry_and_still_serves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("hello.wasm")).unwrap();
    compile(dir.path(), &["hello.wasm"]);
    for entry in std::fs::read_dir(dir.path().join("cache")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    let server = Server::start_in(dir.path(), &[".", "--cache-dir", "cache"]);
    assert_eq!(server.get("/hello").await.text(), "hello world\n");
    let log = server.log();
    assert!(log.contains("not trusted") && log.contains("checksum mismatch"), "{log}");
    assert!(log.lines().any(|l| l.contains("compiled") && l.contains("rebuilt")), "{log}");
    assert!(compile(dir.path(), &["hello.wasm"]).contains("hello.wasm  hit"));
}

#[test]
fn run_takes_the_cache_dir_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(WASMPOD)
            .args(["run", guests::HELLO])
            .current_dir(dir.path())
            .env("WASMPOD_CACHE_DIR", dir.path().join("cache"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success());
    assert!(String::from_utf8_lossy(&first.stderr).contains("compiled"));
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("hello world"));
    let log = String::from_utf8_lossy(&second.stderr);
    assert!(log.contains("from_cache=1 compiled=0"), "{log}");
}

#[test]
fn compile_reports_an_invalid_module_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("hello.wasm")).unwrap();
    let output =
        run_wasmpod(dir.path(), &["compile", "--cache-dir", "cache", "junk.wasm", "hello.wasm"], b"");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("junk.wasm") && stderr.contains("invalid module"), "{stderr}");
    // The good module is still compiled.
    assert!(String::from_utf8_lossy(&output.stdout).contains("hello.wasm  compiled"));
}
