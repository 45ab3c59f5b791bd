//! `wasmpod simulate` end to end: the synthetic workload, a trace in the Azure 2019 layout, the
//! outputs a script reads, and bad input.

mod support;

use std::fmt::Write as _;
use std::path::Path;

use support::run_wasmpod;

fn simulate(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut full = vec!["simulate"];
    full.extend_from_slice(args);
    run_wasmpod(dir, &full, b"")
}

#[test]
fn synthetic_run_writes_table_json_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let output = simulate(
        dir.path(),
        &["--functions", "300", "--minutes", "5", "--out", out.to_str().unwrap(), "--json"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is the JSON result");
    let calls = json["calls"].as_u64().unwrap();
    assert!(calls > 100, "{calls}");
    let policies = json["policies"].as_array().unwrap();
    let numbers: Vec<&str> = policies.iter().map(|p| p["policy"].as_str().unwrap()).collect();
    assert_eq!(
        numbers,
        ["container-per-function", "superpod-concurrency", "superpod-memory", "superpod-learned"]
    );
    for p in policies {
        let rejected: u64 = ["queue_full", "too_large", "timeout", "memory_pressure"]
            .iter()
            .map(|k| p["rejected"][k].as_u64().unwrap())
            .sum();
        // Every call is answered exactly once, by a 200 or a 503.
        assert_eq!(p["completed"].as_u64().unwrap() + rejected, calls, "{}", p["policy"]);
        assert!(p["pod_seconds"].as_f64().unwrap() > 0.0);
        assert!(!p["timeline"].as_array().unwrap().is_empty());
    }
    let table = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| 1 ") || l.starts_with("| 4 ")).count(),
        2,
        "{table}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(saved, json);
    for chart in ["pods.svg", "latency-cdf.svg"] {
        let svg = std::fs::read_to_string(out.join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{chart}");
    }
}

#[test]
fn the_same_seed_gives_the_same_result_and_another_seed_another() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str| {
        let output = simulate(
            dir.path(),
            &["--functions", "200", "--minutes", "3", "--policies", "3", "--seed", seed, "--json"],
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    };
    assert_eq!(run("5"), run("5"));
    assert_ne!(run("5"), run("6"));
}

fn write_trace(dir: &Path, trigger: &str) {
    let mut invocations = String::from("HashOwner,HashApp,HashFunction,Trigger");
    for m in 1..=1440 {
        write!(invocations, ",{m}").unwrap();
    }
    invocations.push('\n');
    for (f, calls) in [("f1", 30), ("f2", 5)] {
        write!(invocations, "o1,a1,{f},{trigger}").unwrap();
        for m in 0..1440 {
            write!(invocations, ",{}", if m < 3 { calls } else { 0 }).unwrap();
        }
        invocations.push('\n');
    }
    std::fs::write(dir.join("invocations_per_function_md.anon.d01.csv"), invocations).unwrap();
    std::fs::write(
        dir.join("function_durations_percentiles.anon.d01.csv"),
        "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100\n\
         o1,a1,f1,100,90,10,400,10,20,60,90,120,350,400\n",
    )
    .unwrap();
}

#[test]
fn replays_a_trace_in_the_published_layout() {
    let dir = tempfile::tempdir().unwrap();
    write_trace(dir.path(), "http");
    let trace = dir.path().to_str().unwrap();
    let output = simulate(dir.path(), &["--trace", trace, "--minutes", "3", "--policies", "1,3", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["functions"], 2);
    assert_eq!(json["calls"], 3 * 35);
    assert_eq!(json["policies"].as_array().unwrap().len(), 2);
}

#[test]
fn a_bad_trace_row_is_named_by_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    write_trace(dir.path(), "webhook");
    let trace = dir.path().to_str().unwrap();
    let output = simulate(dir.path(), &["--trace", trace, "--minutes", "3"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "invocations_per_function_md.anon.d01.csv:2: field \"Trigger\": \"webhook\" is not one of"
        ),
        "{stderr}"
    );
}
