//! The live registry end to end: functions added, replaced, broken and removed while the pod
//! serves, in a folder and in a `modules.toml`; WAGI's start-up rules in config mode; `--strict`.
//! Every step waits on the log line or metric the reload produces, never on a sleep.

mod support;

use std::path::Path;

use support::{metric, run_wasmpod, wat, Server};

/// Writes `text` to `dir/name` atomically, as an upload should: a hidden temporary file, then a
/// rename over the name.
fn publish(dir: &Path, name: &str, text: &str) {
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, dir.join(name)).unwrap();
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

/// Waits until `needle` has been logged `n` times.
fn wait_for_nth(server: &Server, needle: &str, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&server.log(), needle) < n {
        assert!(std::time::Instant::now() < deadline, "{needle:?} not logged {n} times:\n{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_served_folder_follows_its_files_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "f.wat", &wat("v1"));
    let server = Server::start_in(dir.path(), &[dir.path().to_str().unwrap()]);
    assert_eq!(server.get("/f").await.text(), "v1");

    // Replaced: the new version serves once compiled.
    publish(dir.path(), "f.wat", &wat("v2"));
    wait_for_nth(&server, "function reloaded", 1);
    assert_eq!(server.get("/f").await.text(), "v2");

    // Added.
    publish(dir.path(), "g.wat", &wat("g"));
    wait_for_nth(&server, "function loaded", 2);
    assert_eq!(server.get("/g").await.text(), "g");

    // A broken new version: the previous one goes on serving.
    publish(dir.path(), "f.wat", "(module (func (export \"_start\") (unknown)))");
    wait_for_nth(&server, "its previous version goes on serving", 1);
    assert_eq!(server.get("/f").await.text(), "v2");

    // A broken new function: its route answers 500, the others serve, a metric says so.
    publish(dir.path(), "h.wasm", "\0asm\x01\0\0\0garbage");
    wait_for_nth(&server, "its route answers 500 until fixed", 1);
    let r = server.get("/h").await;
    assert_eq!(r.status, 500);
    let log = server.wait_for_log("function not loaded");
    assert!(log.contains("invalid module"), "{log}");
    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_functions{state=\"failed\"}"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "wasmpod_functions{state=\"ready\"}"), Some(2.0), "{text}");
    assert_eq!(metric(&text, "wasmpod_function_loads_total{result=\"failed\"}"), Some(2.0), "{text}");
    assert!(text.contains("function=\"/g/...\""), "{text}");

    // Removed: unloaded, its series gone.
    std::fs::remove_file(dir.path().join("g.wat")).unwrap();
    wait_for_nth(&server, "function unloaded", 1);
    assert_eq!(server.get("/g").await.status, 404);
    let text = server.get("/metrics").await.text();
    assert!(!text.contains("function=\"/g/...\""), "a removed function's series are gone:\n{text}");
    assert_eq!(server.get("/f").await.text(), "v2");
}

#[tokio::test]
async fn a_bad_new_modules_toml_keeps_the_old_one_serving() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.wat"), wat("a")).unwrap();
    let config = dir.path().join("modules.toml");
    std::fs::write(&config, "[[module]]\nroute = \"/a\"\nmodule = \"a.wat\"\n").unwrap();
    let server = Server::start_in(dir.path(), &["-c", config.to_str().unwrap()]);
    assert_eq!(server.get("/a").await.text(), "a");

    std::fs::write(&config, "[[module]]\nroute = \"/a\"\nmodule = \"a.wat\"\ntimeout = -1\n").unwrap();
    let log = server.wait_for_log("reload refused");
    assert!(log.contains("modules.toml:4:") && log.contains("field `timeout`"), "{log}");
    assert_eq!(server.get("/a").await.text(), "a");

    std::fs::write(dir.path().join("b.wat"), wat("b")).unwrap();
    std::fs::write(&config, "[[module]]\nroute = \"/b\"\nmodule = \"b.wat\"\n").unwrap();
    wait_for_nth(&server, "function unloaded", 1);
    assert_eq!(server.get("/b").await.text(), "b");
    assert_eq!(server.get("/a").await.status, 404);

    // SIGHUP reloads too: a changed module file is picked up.
    std::fs::write(dir.path().join("b.wat"), wat("b2")).unwrap();
    server.signal("HUP");
    server.wait_for_log("SIGHUP received");
    wait_for_nth(&server, "function reloaded", 1);
    assert_eq!(server.get("/b").await.text(), "b2");
}

#[tokio::test]
async fn a_missing_entrypoint_warns_and_answers_500_as_in_wagi_unless_strict() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.wat"), wat("a")).unwrap();
    let config = dir.path().join("modules.toml");
    let text = "[[module]]\nroute = \"/a\"\nmodule = \"a.wat\"\n\n[[module]]\nroute = \"/b\"\nmodule = \"a.wat\"\nentrypoint = \"nope\"\n";
    std::fs::write(&config, text).unwrap();
    let server = Server::start_in(dir.path(), &["-c", config.to_str().unwrap()]);
    let log = server.wait_for_log("route answers 500 until fixed");
    assert!(log.contains("no exported function \"nope\""), "{log}");
    assert_eq!(server.get("/a").await.text(), "a");
    assert_eq!(server.get("/b").await.status, 500);
    drop(server);

    let out = run_wasmpod(
        dir.path(),
        &["serve", "-c", config.to_str().unwrap(), "--strict", "-l", "127.0.0.1:0"],
        b"",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("route \"/b\"") && stderr.contains("no exported function \"nope\""), "{stderr}");
}

#[tokio::test]
async fn a_broken_file_in_a_folder_does_not_stop_the_start_unless_strict() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "ok.wat", &wat("ok"));
    publish(dir.path(), "bad.wasm", "not wasm");
    let server = Server::start_in(dir.path(), &[dir.path().to_str().unwrap()]);
    assert_eq!(server.get("/ok").await.text(), "ok");
    assert_eq!(server.get("/bad").await.status, 500);
    drop(server);
    let out = run_wasmpod(
        dir.path(),
        &["serve", dir.path().to_str().unwrap(), "--strict", "-l", "127.0.0.1:0"],
        b"",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("route \"/bad/...\""));
}

/// Serves a folder with one function, replaces it `reloads` times (each version answered once,
/// so each runs in a pool slot), and returns `wasmpod_pool_warm_slots` and
/// `wasmpod_pool_idle_resident_bytes` afterwards.
///
/// One tokio worker (`TOKIO_WORKER_THREADS=1`): wasmtime shards its pool by thread, each shard
/// with its share of the warm-slot bound, so one thread instantiating makes the count exact.
async fn warm_slots_after_reloads(reloads: usize, args: &[&str]) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "f.wat", &wat("v0"));
    let mut all = vec![dir.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let server = Server::start_with(dir.path(), &all, &[("TOKIO_WORKER_THREADS", "1")]);
    assert_eq!(server.get("/f").await.text(), "v0");
    for version in 1..=reloads {
        publish(dir.path(), "f.wat", &wat(&format!("v{version}")));
        wait_for_nth(&server, "function reloaded", version);
        assert_eq!(server.get("/f").await.text(), format!("v{version}"));
    }
    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_instances_in_use"), Some(0.0), "{text}");
    let warm = metric(&text, "wasmpod_pool_warm_slots").unwrap_or_else(|| panic!("no warm slots:\n{text}"));
    let resident = metric(&text, "wasmpod_pool_idle_resident_bytes")
        .unwrap_or_else(|| panic!("no resident bytes:\n{text}"));
    (warm, resident)
}

/// A new version of a function cannot use its old version's warm slots (they hold the old
/// image), and those slots stay warm, pages resident, after the old version is dropped: without a
/// bound every reload adds idle memory (the soak's climbing RSS, bench/README.md). With
/// `--pool-warm-slots N` a version with no warm slot of its own takes the least recently used
/// warm slot once N are warm, so the idle pool stays at N however many reloads happen.
#[tokio::test]
async fn reloads_keep_the_idle_pool_within_pool_warm_slots() {
    const RELOADS: usize = 8;
    let (bounded, resident) = warm_slots_after_reloads(RELOADS, &["--pool-warm-slots", "2"]).await;
    assert!(bounded <= 2.0, "{bounded} warm slots after {RELOADS} reloads with --pool-warm-slots 2");
    // The last version's slot keeps the page its request wrote resident for its next request.
    assert!(resident >= 4096.0, "{resident} bytes resident in the idle pool");
    // The same reloads under a bound above them: every version left a warm slot behind (wasmtime
    // gives one shard at least 100 / 16 of a bound of 100).
    let (unbounded, _) = warm_slots_after_reloads(RELOADS, &["--pool-warm-slots", "100"]).await;
    assert!(unbounded >= 6.0, "{unbounded} warm slots after {RELOADS} reloads with --pool-warm-slots 100");
}
