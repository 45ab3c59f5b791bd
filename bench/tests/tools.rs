//! The benchmark tools as their scripts run them: `wasabi-profile` on a small case writes the
//! profile the simulator reads, and `loadgen` sends load to loopback addresses only. Being
//! integration tests, they also make `cargo test` build both binaries, so the scripts' `--quick`
//! modes (which CI runs after the tests) find them without a build of their own.

use std::process::Command;

#[test]
fn wasabi_profile_writes_a_profile_per_function() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("profiles.json");
    let status = Command::new(env!("CARGO_BIN_EXE_wasabi-profile"))
        .args(["--small", "--runs", "1", "--functions", "scrypt", "--commit", "test", "--json"])
        .arg(&json)
        .status()
        .unwrap();
    assert!(status.success());
    let profiles: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(profiles["schema"], 1);
    assert_eq!(profiles["small"], true);
    let scrypt = &profiles["functions"]["scrypt"];
    assert!(scrypt["output"].as_str().unwrap().starts_with("SCRYPT Executed: 50 strings"), "{scrypt}");
    assert!(scrypt["peak_memory_bytes"].as_u64().unwrap() > 0, "{scrypt}");
    assert!(scrypt["run_ms"]["p50"].as_f64().unwrap() > 0.0, "{scrypt}");
    assert!(
        scrypt["artifact_bytes"].as_u64().unwrap() > scrypt["wasm_bytes"].as_u64().unwrap() / 2,
        "{scrypt}"
    );
}

#[test]
fn loadgen_refuses_addresses_off_this_machine() {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--base", "http://10.0.0.1:3000", "--rate", "1", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only loopback addresses"), "{stderr}");
}

/// A loopback HTTP server that answers every request 200 and closes the connection; its address.
fn answering_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            });
        }
    });
    format!("http://{addr}")
}

/// `loadgen --schedule` sends exactly the arrivals of an arrival trace, each at its time to the
/// target its function names, and refuses a function no target is named after (file, line, field).
#[test]
fn loadgen_sends_an_arrival_trace_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets.json");
    std::fs::write(&targets, r#"[{"name": "a", "path": "/a"}, {"name": "b", "path": "/b"}]"#).unwrap();
    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, "at_ms,function\n0,a\n250.5,b\n100,a\n").unwrap();
    let csv = dir.path().join("out.csv");
    let base = answering_server();
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--base", &base, "--targets"])
        .arg(&targets)
        .arg("--schedule")
        .arg(&trace)
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rows: Vec<Vec<String>> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    let sent: Vec<(&str, &str, &str)> =
        rows.iter().map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str())).collect();
    assert_eq!(sent, [("0.000", "a", "200"), ("100.000", "a", "200"), ("250.500", "b", "200")]);

    std::fs::write(&trace, "at_ms,function\n0,a\n5,c\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--base", &base, "--targets"])
        .arg(&targets)
        .arg("--schedule")
        .arg(&trace)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains(&format!("{}:3: field ", trace.display()))
            && stderr.contains("function")
            && stderr.contains("no target named"),
        "{stderr}"
    );
}
