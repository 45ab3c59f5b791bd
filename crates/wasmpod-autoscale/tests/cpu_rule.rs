//! The CPU rule (a wasmpod extension over Wasabi) against cases worked out by hand: with
//! `cpu_limit_cores` set, each window asks for the larger of `ceil(MB / target MB)` and
//! `ceil(cores / (limit x utilization))`. The comments show the arithmetic.
//!
//! Unless a case says otherwise, pods admit 8000 MB (memory target 5600 MB) and have a 4-core limit
//! aimed at 50% (a CPU target of 2 cores per pod, round numbers for the arithmetic). Samples are
//! recorded once a second and decisions made every even second, after that second's sample.

use std::time::Duration;

use wasmpod_autoscale::{Autoscaler, Rule, Sample, Settings, DEFAULT_CPU_TARGET_UTILIZATION};

/// 4-core pods aimed at 2 cores each.
fn cpu_settings() -> Settings {
    Settings { cpu_limit_cores: Some(4.0), cpu_target_utilization: 0.5, ..Settings::with_capacity(8000.0) }
}

fn at(second: u64) -> Duration {
    Duration::from_secs(second)
}

/// Records a steady load for seconds `0..=last`, deciding on every even second with `ready` pods;
/// returns the last decision.
fn steady(
    autoscaler: &mut Autoscaler,
    last: u64,
    ready: u32,
    sample: Sample,
    cores: f64,
) -> wasmpod_autoscale::Decision {
    let mut decision = None;
    for second in 0..=last {
        autoscaler.record(at(second), sample);
        autoscaler.record_cpu(at(second), cores);
        if second % 2 == 0 {
            decision = autoscaler.decide(at(second), ready);
        }
    }
    decision.expect("a decision")
}

#[test]
fn the_cpu_rule_is_off_by_default_and_recorded_cores_decide_nothing() {
    // 2000 MB on 1 pod: ceil(2000 / 5600) = 1, whatever the 16 cores in use.
    let mut autoscaler = Autoscaler::new(Settings::with_capacity(8000.0)).unwrap();
    let decision = steady(&mut autoscaler, 10, 1, Sample { memory_mb: 2000.0, concurrency: 20.0 }, 16.0);
    assert_eq!((decision.desired, decision.rule), (1, Rule::Observed));
    assert_eq!((decision.stable_cores, decision.target_cores), (16.0, None));
    // The log line is Knative-Wasabi's, without the CPU part.
    assert_eq!(
        decision.to_string(),
        "desired 1 (observed) ready 1 stable 2000 MB panic 2000 MB target 5600 MB panic no ebc 5789"
    );
}

#[test]
fn the_larger_of_the_memory_and_the_cpu_count_wins() {
    // 2000 MB asks for ceil(2000 / 5600) = 1 pod; 7 cores for ceil(7 / 2) = 4. Panic window: 4
    // pods / 2 ready = 2 >= 2, so it panics too, and still decides 4.
    let mut autoscaler = Autoscaler::new(cpu_settings()).unwrap();
    let decision = steady(&mut autoscaler, 10, 2, Sample { memory_mb: 2000.0, concurrency: 20.0 }, 7.0);
    assert_eq!((decision.desired, decision.desired_stable, decision.desired_panic), (4, 4, 4));
    assert_eq!(decision.rule, Rule::Cpu);
    assert_eq!(decision.target_cores, Some(2.0));
    // 5.5 cores ask for ceil(5.5 / 2) = 3 on 2 ready (1.5x: no panic); 20000 MB for
    // ceil(20000 / 5600) = 4: memory wins, and the rule says so (it panics, 4 = 2x ready, but the
    // panic window asks for no more than the stable one).
    let mut autoscaler = Autoscaler::new(cpu_settings()).unwrap();
    let decision = steady(&mut autoscaler, 10, 2, Sample { memory_mb: 20_000.0, concurrency: 200.0 }, 5.5);
    assert_eq!((decision.desired, decision.rule), (4, Rule::Observed));
    let mut autoscaler = Autoscaler::new(cpu_settings()).unwrap();
    let decision = steady(&mut autoscaler, 10, 3, Sample { memory_mb: 12_000.0, concurrency: 200.0 }, 5.5);
    // ceil(12000 / 5600) = 3 = ceil(5.5 / 2): a tie is memory's.
    assert_eq!((decision.desired, decision.rule), (3, Rule::Observed));
    assert_eq!(
        decision.to_string(),
        "desired 3 (observed) ready 3 stable 12000 MB panic 12000 MB target 5600 MB panic no ebc 11789 \
         cpu stable 5.50 panic 5.50 target 2.00 cores"
    );
}

#[test]
fn the_default_utilization_aims_at_70_percent_of_the_limit() {
    // Wasabi's 4.2-core pods: target 4.2 x 0.70 = 2.94 cores; 10 cores ask for ceil(3.40) = 4.
    let settings = Settings { cpu_limit_cores: Some(4.2), ..Settings::with_capacity(13_000.0) };
    assert_eq!(settings.cpu_target_utilization, DEFAULT_CPU_TARGET_UTILIZATION);
    let mut autoscaler = Autoscaler::new(settings).unwrap();
    let decision = steady(&mut autoscaler, 10, 3, Sample { memory_mb: 1000.0, concurrency: 50.0 }, 10.0);
    assert_eq!((decision.desired, decision.rule), (4, Rule::Cpu));
    assert!((decision.target_cores.unwrap() - 2.94).abs() < 1e-9);
}

/// Every pod saturated: each reports its 4-core limit, so the service reports 4 x ready cores.
/// 100 MB of requests ask for one pod by memory. Stable window 6 s, panic window 2 s, and a panic
/// threshold of 3 (never reached) so only the stable rule acts; pods are ready at once.
fn saturated(settings: Settings) -> Vec<u32> {
    let settings = Settings { stable_window: at(6), panic_window: at(2), panic_threshold: 3.0, ..settings };
    let mut autoscaler = Autoscaler::new(settings).unwrap();
    let mut ready = 1;
    let mut decisions = Vec::new();
    for second in 0..=6 {
        autoscaler.record(at(second), Sample { memory_mb: 100.0, concurrency: 100.0 });
        autoscaler.record_cpu(at(second), 4.0 * f64::from(ready));
        if second % 2 == 0 {
            let decision = autoscaler.decide(at(second), ready).unwrap();
            assert!(!decision.panicking, "{decision}");
            ready = decision.desired;
            decisions.push(ready);
        }
    }
    decisions
}

#[test]
fn a_saturated_service_scales_out_although_its_pods_report_no_more_than_their_limit() {
    // Seconds: cores recorded (ready pods x 4) and the stable average over the buckets with data
    // (at most the last 6), / 2 cores per pod, rounded up:
    //   0: 4                       -> 4 / 2 = 2 pods
    //   1-2: 8, 8   avg (4+8+8)/3 = 6.67     -> ceil(3.33) = 4
    //   3-4: 16, 16 avg (4+8+8+16+16)/5 = 10.4 -> ceil(5.2) = 6
    //   5-6: 24, 24 buckets 1-6: (8+8+16+16+24+24)/6 = 16 -> 8
    assert_eq!(saturated(cpu_settings()), vec![2, 4, 6, 8]);
    // Memory alone sees 100 MB and keeps the one saturated pod.
    assert_eq!(saturated(Settings::with_capacity(8000.0)), vec![1, 1, 1, 1]);
}

#[test]
fn a_cpu_surge_starts_panic_mode() {
    // 2 pods; 1 core in use for 10 s, then 12. Memory (100 MB) asks for 1 pod throughout.
    //   at 10: panic buckets 5-10: (5 x 1 + 12) / 6 = 2.83 cores -> ceil(1.42) = 2 = 1x ready: no
    //          panic; stable: buckets 0-10: (10 x 1 + 12) / 11 = 2 -> ceil(1) = 1
    //   at 12: buckets 7-12: (3 x 1 + 3 x 12) / 6 = 6.5 -> ceil(3.25) = 4 = 2x ready: panic;
    //          stable: buckets 0-12: (10 x 1 + 3 x 12) / 13 = 3.54 -> ceil(1.77) = 2
    let mut autoscaler = Autoscaler::new(cpu_settings()).unwrap();
    for second in 0..=12 {
        autoscaler.record(at(second), Sample { memory_mb: 100.0, concurrency: 10.0 });
        autoscaler.record_cpu(at(second), if second < 10 { 1.0 } else { 12.0 });
        if second % 2 != 0 {
            continue;
        }
        let decision = autoscaler.decide(at(second), 2).unwrap();
        match second {
            10 => assert_eq!((decision.desired, decision.panicking), (1, false), "{decision}"),
            12 => {
                assert_eq!(
                    (decision.desired, decision.rule, decision.panicking),
                    (4, Rule::PanicWindow, true)
                );
                assert_eq!((decision.desired_stable, decision.desired_panic), (2, 4));
            }
            _ => {}
        }
    }
}

#[test]
fn idle_cpu_without_requests_still_scales_to_zero() {
    // An idle pod's own 0.05 cores ask for ceil(0.05 / 2) = 1 pod, but no requests: the
    // concurrency override makes it 0, and the last pod leaves after the 30 s grace.
    let mut autoscaler = Autoscaler::new(cpu_settings()).unwrap();
    let idle = Sample { memory_mb: 0.0, concurrency: 0.0 };
    let decision = steady(&mut autoscaler, 28, 1, idle, 0.05);
    assert_eq!((decision.desired, decision.rule), (1, Rule::ScaleToZeroGrace));
    autoscaler.record(at(30), idle);
    autoscaler.record_cpu(at(30), 0.05);
    let decision = autoscaler.decide(at(30), 1).unwrap();
    assert_eq!((decision.desired, decision.rule), (0, Rule::ConcurrencyOverride));
}

#[test]
fn turning_the_cpu_rule_on_uses_the_cores_already_recorded() {
    let mut autoscaler = Autoscaler::new(Settings::with_capacity(8000.0)).unwrap();
    let decision = steady(&mut autoscaler, 8, 2, Sample { memory_mb: 1000.0, concurrency: 10.0 }, 5.0);
    assert_eq!(decision.desired, 1);
    autoscaler.update(cpu_settings()).unwrap();
    // ceil(5 / 2) = 3.
    let decision = autoscaler.decide(at(8), 2).unwrap();
    assert_eq!((decision.desired, decision.rule), (3, Rule::Cpu));
}

#[test]
fn cpu_settings_are_checked() {
    let cases = [
        (
            Settings { cpu_target_utilization: 1.0, ..cpu_settings() },
            "cpu_target_utilization = 1: must be in (0, 1) (below 1, or saturated pods never scale out)",
        ),
        (
            Settings { cpu_limit_cores: Some(0.0), ..cpu_settings() },
            "cpu_limit_cores = 0: must be a number above 0",
        ),
    ];
    for (settings, message) in cases {
        assert_eq!(Autoscaler::new(settings).unwrap_err().to_string(), message);
    }
    // With the CPU rule off, the utilization is not read.
    assert!(
        Autoscaler::new(Settings { cpu_target_utilization: 1.0, ..Settings::with_capacity(8000.0) }).is_ok()
    );
}
