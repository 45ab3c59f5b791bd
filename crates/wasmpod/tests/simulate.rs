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

/// The summary of one policy's run that the tests below compare.
fn policy(json: &serde_json::Value, name: &str) -> serde_json::Value {
    json["policies"].as_array().unwrap().iter().find(|p| p["policy"] == name).unwrap().clone()
}

/// A small synthetic run (200 functions, 3 minutes, seed 3) with `extra` flags, as JSON.
fn small_run(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--functions", "200", "--minutes", "3", "--seed", "3", "--json"];
    args.extend_from_slice(extra);
    let output = simulate(dir, &args);
    assert!(output.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn number(policy: &serde_json::Value, field: &str) -> f64 {
    policy[field].as_f64().unwrap_or_else(|| panic!("{field} in {policy}"))
}

/// Every cluster and pod flag reaches the simulation: each one, moved from its default, moves
/// the result of the policies it concerns the way it must, and leaves the others alone.
#[test]
fn the_cluster_and_pod_flags_change_what_they_must() {
    let dir = tempfile::tempdir().unwrap();
    let base = small_run(dir.path(), &[]);
    let (containers, concurrency, memory) =
        ("container-per-function", "superpod-concurrency", "superpod-memory");
    let run = |extra: &[&str]| small_run(dir.path(), extra);

    // A container's overhead is reserved memory of policy 1 only.
    let r = run(&["--container-overhead-mb", "1000"]);
    assert!(
        number(&policy(&r, containers), "reserved_gb_s")
            > number(&policy(&base, containers), "reserved_gb_s")
    );
    assert_eq!(policy(&r, memory), policy(&base, memory));
    // A 20 s container cold start (instead of 2 s): policy 1's median call is slower.
    let r = run(&["--container-cold-start-ms", "20000"]);
    let p50 = |p: &serde_json::Value| p["latency_ms"]["p50"].as_f64().unwrap();
    assert!(p50(&policy(&r, containers)) > p50(&policy(&base, containers)), "{}", policy(&r, containers));
    // Four requests per container: fewer containers at the peak.
    let r = run(&["--container-concurrency", "4"]);
    assert!(number(&policy(&r, containers), "peak_pods") < number(&policy(&base, containers), "peak_pods"));
    assert_eq!(policy(&r, memory), policy(&base, memory));
    // One node: no policy may use more.
    let r = run(&["--nodes", "1"]);
    for p in r["policies"].as_array().unwrap() {
        assert_eq!(number(p, "peak_nodes"), 1.0, "{p}");
    }
    assert!(number(&policy(&base, containers), "peak_nodes") > 1.0);
    // Nodes too small for a superpod are refused, naming what is short.
    for (flag, value) in [("--node-cores", "2"), ("--node-memory-mb", "8000")] {
        let output = simulate(dir.path(), &["--functions", "20", "--minutes", "1", flag, value]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(&format!("invalid setting {flag}: a pod (")),
            "{stderr}"
        );
    }
    // Smaller nodes (8 cores, 40000 MB) hold fewer containers each: policy 1 needs more of them.
    let r = run(&["--node-cores", "8", "--node-memory-mb", "40000"]);
    assert!(number(&policy(&r, containers), "peak_nodes") > number(&policy(&base, containers), "peak_nodes"));
    // A 100 ms queue limit: calls that waited longer are refused as timeouts.
    let r = run(&["--queue-timeout-ms", "100"]);
    for name in [containers, memory] {
        let timeouts = |p: &serde_json::Value| p["rejected"]["timeout"].as_u64().unwrap();
        assert!(timeouts(&policy(&r, name)) > timeouts(&policy(&base, name)), "{name}");
    }
    // A 2000 MB superpod holds less: more calls fail on memory pressure in both superpod policies.
    let r = run(&["--superpod-memory-mb", "2000"]);
    for name in [concurrency, memory] {
        let pressure = |p: &serde_json::Value| p["rejected"]["memory_pressure"].as_u64().unwrap();
        assert!(pressure(&policy(&r, name)) > pressure(&policy(&base, name)), "{name}");
    }
    assert_eq!(policy(&r, containers), policy(&base, containers));
    // One core per superpod: its calls run slower.
    let r = run(&["--superpod-cpu", "1"]);
    for name in [concurrency, memory] {
        assert!(p50(&policy(&r, name)) > p50(&policy(&base, name)), "{name}");
    }
    // Admitting 2000 declared MB per superpod: the memory policy's queue overflows.
    let r = run(&["--superpod-capacity-mb", "2000"]);
    let full = |p: &serde_json::Value| p["rejected"]["queue_full"].as_u64().unwrap();
    assert!(full(&policy(&r, memory)) > 10 * full(&policy(&base, memory)).max(1));
    assert_eq!(policy(&r, concurrency), policy(&base, concurrency));
    // A queue of one pod's capacity (running calls included): no room to wait, so calls that
    // would have queued are refused at once.
    let r = run(&["--superpod-queue-depth-mb", "13000"]);
    assert!(full(&policy(&r, memory)) > full(&policy(&base, memory)));
    assert_eq!(policy(&r, concurrency), policy(&base, concurrency));
    // Aiming for 500 declared MB per superpod: many more superpods.
    let r = run(&["--superpod-target-mb", "500"]);
    assert!(number(&policy(&r, memory), "peak_pods") > 4.0 * number(&policy(&base, memory), "peak_pods"));
    assert_eq!(policy(&r, concurrency), policy(&base, concurrency));
    // Compute-bound calls on one-core superpods: the CPU rule (on by default) adds pods and the
    // calls run faster than with memory alone; the report names the rule that ran.
    let busy = ["--cpu-share", "0.9..1", "--superpod-cpu", "1"];
    let on = run(&busy);
    let off = run(&[&busy[..], &["--superpod-cpu-scaling", "false"]].concat());
    let (on_3, off_3) = (policy(&on, memory), policy(&off, memory));
    assert!(number(&on_3, "peak_pods") > number(&off_3, "peak_pods"), "{on_3}\n{off_3}");
    assert!(p50(&on_3) < p50(&off_3), "{on_3}\n{off_3}");
    assert!(on_3["label"].as_str().unwrap().ends_with("scaled on memory + CPU"), "{on_3}");
    assert!(off_3["label"].as_str().unwrap().ends_with("scaled on memory"), "{off_3}");
    assert_eq!(policy(&on, concurrency), policy(&off, concurrency));
    // A CPU gate of half a core: calls wait for admission while the pod is busy.
    let r = run(&["--superpod-cpu-gate", "0.5"]);
    let queue_p99 = |p: &serde_json::Value| p["queue_ms"]["p99"].as_f64().unwrap();
    assert!(queue_p99(&policy(&r, memory)) > queue_p99(&policy(&base, memory)));
    assert!(policy(&r, memory)["label"].as_str().unwrap().ends_with("CPU gate 0.5 cores"));
    assert_eq!(policy(&r, concurrency), policy(&base, concurrency));
}

/// The synthetic workload's flags: declaring 3-4x the real use reserves more memory; calls
/// that want most of a core run slower on shared superpods.
#[test]
fn the_workload_flags_change_what_they_must() {
    let dir = tempfile::tempdir().unwrap();
    let base = small_run(dir.path(), &[]);
    let memory = "superpod-memory";
    let r = small_run(dir.path(), &["--overdeclare", "3..4"]);
    assert!(number(&policy(&r, memory), "peak_pods") > number(&policy(&base, memory), "peak_pods"));
    assert_eq!(r["calls"], base["calls"]);
    let r = small_run(dir.path(), &["--cpu-share", "0.9..1"]);
    let p50 = |p: &serde_json::Value| p["latency_ms"]["p50"].as_f64().unwrap();
    assert!(p50(&policy(&r, memory)) > p50(&policy(&base, memory)));
    // Measured guests instead of drawn functions: the same calls, other functions. Without a
    // profiles file the default is `drawn`, and asking for `measured` is an error naming the file.
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/wasabi-profiles.json");
    let measured = small_run(
        dir.path(),
        &["--synthetic-functions", "measured", "--profiles", profiles.to_str().unwrap()],
    );
    assert_eq!(measured["calls"], base["calls"]);
    assert!(
        measured["workload"].as_str().unwrap().contains("measured functions: genpdf"),
        "{}",
        measured["workload"]
    );
    assert_ne!(policy(&measured, memory), policy(&base, memory));
    assert_eq!(small_run(dir.path(), &["--synthetic-functions", "drawn"]), base);
    let output = simulate(dir.path(), &["--synthetic-functions", "measured"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("holds no measured function"), "{stderr}");
    for bad in ["--overdeclare", "--cpu-share"] {
        let output = simulate(dir.path(), &[bad, "2..1"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(bad) && stderr.contains("need 0 < MIN <= MAX"),
            "{stderr}"
        );
    }
}

/// `--profiles`: a missing file means the documented defaults (the same result as the default
/// path, which does not exist in a fresh directory); a file's instantiation cost adds to every
/// call; a malformed file is refused, naming it.
#[test]
fn profiles_come_from_the_file_or_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let base = small_run(dir.path(), &["--policies", "3"]);
    let missing = dir.path().join("missing.json");
    assert_eq!(small_run(dir.path(), &["--policies", "3", "--profiles", missing.to_str().unwrap()]), base);
    let slow = dir.path().join("slow.json");
    std::fs::write(&slow, r#"{"instantiate_ms": 500.0}"#).unwrap();
    let r = small_run(dir.path(), &["--policies", "3", "--profiles", slow.to_str().unwrap()]);
    let fastest = |json: &serde_json::Value| json["policies"][0]["latency_cdf"][0][0].as_f64().unwrap();
    assert!(fastest(&r) >= 500.0 && fastest(&base) < 500.0, "{} {}", fastest(&r), fastest(&base));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "nonsense").unwrap();
    let output =
        simulate(dir.path(), &["--functions", "20", "--minutes", "1", "--profiles", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains(&format!("{}:1", bad.display())), "{stderr}");
}

/// The trace flags: `--start-minute` starts later in the day (minutes 1 and 2 of the trace's
/// first three), `--day` reads that day's files, and `--apps` keeps the apps its CSV lists (a
/// list that keeps none is refused, not simulated).
#[test]
fn the_trace_flags_choose_what_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    write_trace(dir.path(), "http");
    let trace = dir.path().to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["--trace", trace, "--policies", "1", "--json"];
        args.extend_from_slice(extra);
        simulate(dir.path(), &args)
    };
    let output = run(&["--start-minute", "1", "--minutes", "2"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["calls"], 2 * 35);

    let output = run(&["--day", "2", "--minutes", "3"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("invocations_per_function_md.anon.d02.csv"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("apps.csv"), "HashApp\na1\n").unwrap();
    std::fs::write(dir.path().join("none.csv"), "HashApp\nzz\n").unwrap();
    let apps = dir.path().join("apps.csv");
    let output = run(&["--apps", apps.to_str().unwrap(), "--minutes", "3"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((json["functions"].as_u64(), json["calls"].as_u64()), (Some(2), Some(3 * 35)));
    let none = dir.path().join("none.csv");
    let output = run(&["--apps", none.to_str().unwrap(), "--minutes", "3"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("no function to simulate (--apps keeps none")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// A profiles file and an arrival trace for `simulate pod`: `cpu` runs 100 ms on a core and
/// declares 50 MB; ten calls arrive at once.
fn pod_inputs(dir: &Path) -> (String, String) {
    let profiles = dir.join("profiles.json");
    std::fs::write(
        &profiles,
        r#"{"functions": [{"name": "cpu", "p50_ms": 100, "p99_ms": 100, "min_ms": 100, "max_ms": 100,
            "peak_memory_mb": 10, "memory_request_mb": 50, "instantiate_ms": 0.05, "cpu_share": 1.0}]}"#,
    )
    .unwrap();
    let trace = dir.join("trace.csv");
    let mut text = String::from("at_ms,function\n");
    for _ in 0..10 {
        text.push_str("0,cpu\n");
    }
    std::fs::write(&trace, text).unwrap();
    (profiles.to_str().unwrap().to_owned(), trace.to_str().unwrap().to_owned())
}

fn pod_run(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let (profiles, trace) = pod_inputs(dir);
    let mut args = vec!["simulate", "pod", "--arrivals", &trace, "--profiles", &profiles, "--json"];
    args.extend_from_slice(extra);
    let output = support::run_wasmpod_with(dir, &args, b"", env);
    assert!(output.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `simulate pod` replays a trace through one pod whose admission is set by `wasmpod serve`'s
/// own flags (and their environment twins): each moves the result as it would move a real pod.
#[test]
fn simulate_pod_replays_a_trace_under_the_serve_admission_flags() {
    let dir = tempfile::tempdir().unwrap();
    let summary = |json: &serde_json::Value, field: &str| json["summary"][field].clone();
    let rejected =
        |json: &serde_json::Value, reason: &str| json["summary"]["rejected"][reason].as_u64().unwrap();
    // Ten 100 ms CPU calls on two cores, the default admission (8000 MB): all run at once, sharing
    // the cores, done at 500 ms (plus instantiation).
    let base = pod_run(dir.path(), &["--cores", "2"], &[]);
    assert_eq!(summary(&base, "completed"), 10);
    assert_eq!(base["calls"].as_array().unwrap().len(), 10);
    let p50 = |json: &serde_json::Value| json["summary"]["latency_ms"]["p50"].as_f64().unwrap();
    assert!((500.0..501.0).contains(&p50(&base)), "{base}");
    // One core: twice as long.
    let one = pod_run(dir.path(), &["--cores", "1"], &[]);
    assert!((1000.0..1001.0).contains(&p50(&one)), "{one}");
    // 100 MB in flight, 300 MB running plus queued: two run, four queue, four are refused.
    let small =
        ["--cores", "2", "--concurrent-resource-request", "100", "--queue-depth-resource-units", "300"];
    let r = pod_run(dir.path(), &small, &[]);
    assert_eq!((summary(&r, "completed"), rejected(&r, "queue_full")), (6.into(), 4));
    // The same through the environment twins.
    let env = [("CONCURRENT_RESOURCE_REQUEST", "100"), ("QUEUE_DEPTH_RESOURCE_UNITS", "300")];
    assert_eq!(pod_run(dir.path(), &["--cores", "2"], &env)["summary"], r["summary"]);
    // A 150 ms queue timeout: the queued calls behind the first pair time out.
    let mut timed = small.to_vec();
    timed.extend(["--queue-timeout", "0.15"]);
    let r = pod_run(dir.path(), &timed, &[]);
    assert_eq!((rejected(&r, "timeout"), rejected(&r, "queue_full")), (2, 4), "{}", r["summary"]);
    // A 25 MB real-memory budget under a 1000 MB admission: the third call's memory would pass it.
    let r = pod_run(
        dir.path(),
        &["--cores", "2", "--concurrent-resource-request", "1000", "--memory-budget", "25"],
        &[],
    );
    assert!(rejected(&r, "memory_pressure") > 0, "{}", r["summary"]);
    // A learned weight of 10 x 1.25 MB per call after 20 calls changes nothing for ten calls.
    let learned = pod_run(dir.path(), &["--cores", "2", "--admission-weight", "learned", "--seed", "9"], &[]);
    assert_eq!(summary(&learned, "completed"), 10);
    // Without admission every call runs at once.
    let r = pod_run(
        dir.path(),
        &[
            "--cores",
            "2",
            "--no-admission",
            "--memory-high-water-percent",
            "50",
            "--tenant-max-inflight-mb",
            "100",
            "--tenant-max-queued-mb",
            "100",
            "--default-memory-request",
            "8",
        ],
        &[],
    );
    assert_eq!(summary(&r, "completed"), 10);
    // The tenant caps are the serve flags': 100 MB of one tenant in flight, 100 MB queued.
    let r = pod_run(
        dir.path(),
        &["--cores", "2", "--tenant-max-inflight-mb", "100", "--tenant-max-queued-mb", "100"],
        &[],
    );
    assert_eq!(summary(&r, "completed"), 4, "{}", r["summary"]);
    // --out writes what --json prints.
    let out = dir.path().join("out.json");
    let printed = pod_run(dir.path(), &["--cores", "2", "--out", out.to_str().unwrap()], &[]);
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written, printed);
    assert_eq!(printed, base);
}

/// Bad input to `simulate pod` is refused, naming the file, line and field (or the flag).
#[test]
fn simulate_pod_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (profiles, trace) = pod_inputs(dir.path());
    let run = |args: &[&str]| {
        let mut full = vec!["simulate", "pod", "--profiles", &profiles];
        full.extend_from_slice(args);
        let output = run_wasmpod(dir.path(), &full, b"");
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    std::fs::write(&trace, "at_ms,function\n0,cpu\n12,nope\n").unwrap();
    let stderr = run(&["--arrivals", &trace]);
    assert!(stderr.contains(&format!("{trace}:3: field \"function\": no profile for \"nope\"")), "{stderr}");
    std::fs::write(&trace, "at_ms,function\nlater,cpu\n").unwrap();
    let stderr = run(&["--arrivals", &trace]);
    assert!(stderr.contains(&format!("{trace}:2: field \"at_ms\"")), "{stderr}");
    std::fs::write(&trace, "at_ms,function\n0,cpu\n").unwrap();
    let stderr = run(&["--arrivals", &trace, "--resource-utilization-threshold", "1"]);
    assert!(stderr.contains("--resource-utilization-threshold: the CPU gate is not modelled"), "{stderr}");
}
