//! Hostile guests the other tests do not cover (`wagi.rs` has the trap, the infinite loop and
//! plain exit codes; `admission.rs` the memory hog): deep recursion, a table growth bomb, 1 GB of
//! stdout, a million tiny writes and odd `proc_exit` codes. Each is answered for its own request,
//! and the same server goes on answering.

mod support;

use support::{metric, module, start_with_config, Request};
use wasmpod_guests as guests;

fn wat(name: &str) -> String {
    guests::wat(name).display().to_string()
}

#[tokio::test]
async fn each_hostile_guest_is_answered_for_its_own_request_only() {
    let config = [
        module("/hello", guests::HELLO, ""),
        module("/recursion", &wat("recursion.wat"), ""),
        module("/tables", &wat("table_bomb.wat"), ""),
        module("/flood", &wat("stdout_flood.wat"), "timeout = 120.0"),
        module("/tiny", &wat("tiny_writes.wat"), "timeout = 120.0"),
        module("/exit", guests::EXIT, ""),
    ]
    .concat();
    let (_dir, server) = start_with_config(&config);

    // Deep recursion: the stack overflow traps.
    let r = server.get("/recursion").await;
    assert_eq!((r.status, r.body.len()), (500, 0));
    server.wait_for_log("call stack exhausted");

    // A table growth bomb: held to the memory grant like linear memory.
    let r = server.send(Request::get("/tables").header("Memory-Request", "16")).await;
    assert_eq!(r.status, 500);

    // 1 GB of stdout: cut off at 64 MB (the grant is larger), the request fails, nothing is sent.
    let r = server.send(Request::get("/flood").header("Memory-Request", "2000")).await;
    assert_eq!((r.status, r.body.len()), (500, 0));

    // A million one-byte writes: slow, but answered whole.
    let r = server.send(Request::get("/tiny").header("Memory-Request", "8")).await;
    assert_eq!((r.status, r.body.len()), (200, 1_000_000));
    assert!(r.body.iter().all(|b| *b == b'.'));

    // proc_exit with odd codes: only 0 is success, whatever the guest printed.
    for code in ["1", "125", "126", "255", "-1", "-2147483648"] {
        let r = server.get(&format!("/exit?code={code}")).await;
        assert_eq!((r.status, r.body.len()), (500, 0), "exit code {code}");
    }
    let r = server.get("/exit?code=0").await;
    assert_eq!((r.status, r.text().as_str()), (200, "exiting\n"));

    // Every failure was its own request's: the server still answers, and nothing is held.
    assert_eq!(server.get("/hello").await.status, 200);
    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_inflight_memory_mb"), Some(0.0), "{text}");
    assert_eq!(metric(&text, "wasmpod_instances_in_use"), Some(0.0), "{text}");
}
