//! The five Wasabi benchmark functions (`guests/wasabi`) each run their small case through the
//! real server and print the line that names what they did.

mod support;

use support::{Request, Server};
use wasmpod_guests::wasabi;

/// `(function, size parameter, start of the expected line)`: each small enough for a debug CI.
const SMALL_CASES: &[(&str, &str, &str)] = &[
    (
        "scrypt",
        "5",
        "SCRYPT Executed: 5 strings of 64 characters hashed (log2 N = 10, r = 1, p = 1, 32 bytes)",
    ),
    ("json-compression", "1000", "JSON-COMPRESSION Executed: 1000 records of 100 characters (100000 bytes)"),
    ("imageblur", "64", "IMAGEBLUR Executed: 64x64 image blurred (sigma 10)"),
    ("rsa-keygen", "512", "RSA Executed: 512-bit key pair generated"),
    ("genpdf", "60", "GENPDF Executed: invoice of 60 lines on 2 pages with 2 JPEG images"),
];

/// A folder holding the five functions as `<name>.wasm`, served at `/<name>`.
fn wasabi_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, path) in wasabi::ALL {
        std::fs::copy(path, dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

#[tokio::test]
async fn each_function_runs_its_small_case_as_a_wagi_guest() {
    let dir = wasabi_folder();
    let server = Server::start_in(dir.path(), &["."]);
    for (name, parameter, expected) in SMALL_CASES {
        let response = server.send(Request::post(&format!("/{name}"), *parameter)).await;
        assert_eq!(response.status, 200, "{name}: {}\n{}", response.text(), server.log());
        assert_eq!(response.header("content-type"), Some("text/plain; charset=utf-8"), "{name}");
        let text = response.text();
        assert!(text.starts_with(expected) && text.ends_with('\n'), "{name}: {text:?}");
        assert_eq!(text.lines().count(), 1, "{name}: {text:?}");
    }
}

#[tokio::test]
async fn a_parameter_that_is_not_a_size_fails_the_request_with_the_reason_logged() {
    let dir = wasabi_folder();
    let server = Server::start_in(dir.path(), &["."]);
    let response = server.send(Request::post("/scrypt", "lots")).await;
    assert_eq!(response.status, 500, "{}", response.text());
    let log = server.wait_for_log("the parameter must be empty or a positive integer");
    assert!(log.contains("\"lots\""), "{log}");
}
