//! Crash safety of the artifact cache: a server killed with SIGKILL while it writes into
//! `--cache-dir` leaves nothing the next start loads half-written, and every kind of damage a
//! crash (or a stray file) can leave is detected, logged, rebuilt, and the functions serve.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{run_wasmpod, Request, Server, WASMPOD};
use wasmpod_guests::{self as guests, wasabi};
use wasmpod_runtime::CACHE_TEMP_PREFIX;

/// Each Wasabi function's small case: a POST body (its size parameter) and the answer's start.
const CASES: &[(&str, &str, &str)] = &[
    ("scrypt", "3", "SCRYPT Executed: 3 strings"),
    ("json-compression", "100", "JSON-COMPRESSION Executed: 100 records"),
    ("imageblur", "32", "IMAGEBLUR Executed: 32x32 image blurred"),
    ("rsa-keygen", "512", "RSA Executed: 512-bit key pair generated"),
    ("genpdf", "10", "GENPDF Executed: invoice of 10 lines"),
];

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// `wasmpod compile` of every `.wasm`/`.wat` in `dir` into `dir/cache`: its stdout.
fn compile_all(dir: &Path) -> String {
    let mut args = vec!["compile".to_owned(), "--cache-dir".to_owned(), "cache".to_owned()];
    for name in names(dir) {
        if name.ends_with(".wasm") || name.ends_with(".wat") {
            args.push(name);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_wasmpod(dir, &args, b"");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The five Wasabi functions (the largest guests: about 1 MB of compiled code each) served from a
/// folder with an artifact cache, killed with SIGKILL as soon as the first cache file appears,
/// that is while the first entry is being written. Whatever that leaves (a temp file, a `.cwasm`
/// without its checksum, or complete entries), the next start must not load anything
/// half-written: it serves every function, deletes the temp files, and afterwards every entry is
/// one `wasmpod compile` maps as a verified hit.
#[tokio::test]
async fn sigkill_while_writing_the_cache_leaves_nothing_that_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    for (name, path) in wasabi::ALL {
        std::fs::copy(path, dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    let cache = dir.path().join("cache");
    let mut child = Command::new(WASMPOD)
        .args(["serve", ".", "-l", "127.0.0.1:0", "--cache-dir", "cache"])
        .current_dir(dir.path())
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The event: the first file in the cache directory (the writer's temp file, unless the first
    // write finished between two looks). Polled without pause: the window is milliseconds.
    let deadline = Instant::now() + Duration::from_secs(300);
    let seen = loop {
        let now = names(&cache);
        if !now.is_empty() {
            break now;
        }
        assert!(child.try_wait().unwrap().is_none(), "wasmpod exited before writing its cache");
        assert!(Instant::now() < deadline, "no cache file appeared");
        std::thread::yield_now();
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = names(&cache);
    eprintln!("killed on seeing {seen:?}; the kill left {left:?}");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    assert!(
        !stdout.lines().map_while(Result::ok).any(|l| l.starts_with("Ready")),
        "the kill came after start-up: nothing was interrupted"
    );
    // Not every module was written: the kill interrupted the filling of the cache.
    let complete = left.iter().filter(|n| n.ends_with(".sha256")).count();
    assert!(complete < wasabi::ALL.len(), "seen {seen:?}, left {left:?}");

    let server = Server::start_in(dir.path(), &[".", "--cache-dir", "cache"]);
    for (name, parameter, expected) in CASES {
        let response = server.send(Request::post(&format!("/{name}"), *parameter)).await;
        assert_eq!(response.status, 200, "{name}: {}\n{}", response.text(), server.log());
        assert!(response.text().starts_with(expected), "{name}: {}", response.text());
    }
    let after = names(&cache);
    assert!(after.iter().all(|n| !n.starts_with(CACHE_TEMP_PREFIX)), "left {left:?}, after {after:?}");
    assert_eq!(after.iter().filter(|n| n.ends_with(".cwasm")).count(), wasabi::ALL.len(), "{after:?}");
    let log = server.log();
    // A temp file the kill left is deleted at start (each one logged), never loaded.
    for temp in left.iter().filter(|n| n.starts_with(CACHE_TEMP_PREFIX)) {
        assert!(
            log.lines()
                .any(|l| l.contains("deleted a temp file a crashed write left") && l.contains(temp.as_str())),
            "left {left:?}\n{log}"
        );
    }
    // A `.cwasm` the kill left without its checksum is rebuilt, not trusted.
    let orphans: Vec<&String> = left
        .iter()
        .filter(|n| n.ends_with(".cwasm") && !left.contains(&n.replace(".cwasm", ".sha256")))
        .collect();
    for orphan in &orphans {
        assert!(
            log.lines().any(|l| l.contains(orphan.as_str()) && l.contains("checksum file missing")),
            "{log}"
        );
    }
    drop(server);
    let check = compile_all(dir.path());
    assert_eq!(check.matches("  hit").count(), wasabi::ALL.len(), "{check}");
}

/// Every kind of damage planted at once, as a crash or a stray copy leaves it: a truncated
/// `.cwasm` under its old checksum, a `.cwasm` without its checksum, an image of garbage whose
/// checksum matches (only wasmtime's own check can refuse it), and the temp file of a write that
/// was killed. The next start logs each bad entry with its reason and rebuilds it, deletes the
/// temp file, and serves every function; afterwards the cache holds only verified entries.
#[tokio::test]
async fn planted_damage_is_detected_logged_rebuilt_and_served() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("hello.wasm")).unwrap();
    std::fs::copy(guests::wat("hello.wat"), dir.path().join("page.wat")).unwrap();
    std::fs::copy(guests::ECHO, dir.path().join("echo.wasm")).unwrap();
    let first = compile_all(dir.path());
    assert_eq!(first.matches("  compiled").count(), 3, "{first}");

    let cache = dir.path().join("cache");
    let entry = |module: &str| -> PathBuf {
        let output = run_wasmpod(dir.path(), &["compile", "--cache-dir", "cache", module], b"");
        assert!(String::from_utf8_lossy(&output.stdout).contains("hit"));
        // The entry `compile` just mapped: the newest `.cwasm` is not a reliable pick, so find
        // the one whose module hash prefix matches the module file's.
        let bytes = std::fs::read(dir.path().join(module)).unwrap();
        let hash = sha256_hex(&bytes);
        let name = names(&cache).into_iter().find(|n| n.starts_with(&hash) && n.ends_with(".cwasm")).unwrap();
        cache.join(name)
    };
    let hello = entry("hello.wasm");
    let page = entry("page.wat");
    let echo = entry("echo.wasm");

    // Replaced by rename, as a writer does (a file mapped by a live process is never changed
    // in place); the checksum beside it is the old one.
    let image = std::fs::read(&hello).unwrap();
    replace(&hello, &image[..image.len() / 2]);
    std::fs::remove_file(page.with_extension("sha256")).unwrap();
    let garbage = vec![0x5a_u8; 4096];
    replace(&echo, &garbage);
    replace(&echo.with_extension("sha256"), format!("{}\n", sha256_hex(&garbage)).as_bytes());
    let temp = cache.join(format!("{CACHE_TEMP_PREFIX}k1ll3d"));
    std::fs::write(&temp, &image[..image.len() / 3]).unwrap();

    let server = Server::start_in(dir.path(), &[".", "--cache-dir", "cache"]);
    assert_eq!(server.get("/hello").await.text(), "hello world\n");
    assert_eq!(server.get("/page").await.text(), "Oh hi world\n");
    let echoed = server.send(Request::post("/echo", "still here")).await;
    assert_eq!((echoed.status, echoed.text().as_str()), (200, "still here"));
    let log = server.log();
    for (entry, reason) in
        [(&hello, "checksum mismatch"), (&page, "checksum file missing"), (&echo, "refused by wasmtime")]
    {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            log.lines().any(|l| l.contains("not trusted") && l.contains(&name) && l.contains(reason)),
            "{name}: {reason}\n{log}"
        );
    }
    assert_eq!(log.lines().filter(|l| l.contains("compiled") && l.contains("rebuilt")).count(), 3, "{log}");
    assert!(
        log.lines().any(|l| l.contains("deleted a temp file a crashed write left") && l.contains("k1ll3d")),
        "{log}"
    );
    assert!(log.contains("modules=3 failed=0 from_cache=0 compiled=3"), "{log}");
    assert!(!temp.exists());
    drop(server);
    assert_eq!(compile_all(dir.path()).matches("  hit").count(), 3);
}

fn replace(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension("replacing");
    std::fs::write(&temp, bytes).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// SHA-256 in hex, by `sha256sum` (coreutils): the test checks the cache's names and checksums
/// with a tool of its own rather than the code under test.
fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child =
        Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap().to_owned()
}
