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
