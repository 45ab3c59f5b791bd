//! The algorithm against cases worked out by hand: each expected number below follows from the
//! rules in the crate's documentation, and the comments show the arithmetic.
//!
//! Every case records one sample per second and decides every even second, as the controller
//! does. Pods either stay at a fixed count or become ready at once when asked for (so "ready" at a
//! decision is the previous decision). Unless a case says otherwise, pods admit 8000 MB each, so the
//! target is 8000 x 0.70 = 5600 MB per pod and the target burst capacity is 211 MB.

use std::time::Duration;

use wasmpod_autoscale::{Autoscaler, Rule, Sample, Settings};

/// A load held over seconds `from..to` (`to` exclusive; `u64::MAX` for "from then on").
struct Load {
    from: u64,
    to: u64,
    memory_mb: f64,
    concurrency: f64,
}

enum Pods {
    /// The ready count never changes.
    Fixed(u32),
    /// Starts at this count; afterwards every decision is ready by the next one.
    Follow(u32),
}

/// What the decision at second `at` must be.
struct Check {
    at: u64,
    desired: u32,
    rule: Rule,
    panicking: bool,
    stable_mb: f64,
    panic_mb: f64,
    ebc: i64,
}

struct Case {
    name: &'static str,
    settings: Settings,
    /// `Some(n)`: the autoscaler takes over `n` ready pods ([`Autoscaler::resume`]).
    resume: Option<u32>,
    pods: Pods,
    loads: Vec<Load>,
    checks: Vec<Check>,
}

const FOREVER: u64 = u64::MAX;

fn load(from: u64, to: u64, memory_mb: f64, concurrency: f64) -> Load {
    Load { from, to, memory_mb, concurrency }
}

#[allow(clippy::too_many_arguments)]
fn check(
    at: u64,
    desired: u32,
    rule: Rule,
    panicking: bool,
    stable_mb: f64,
    panic_mb: f64,
    ebc: i64,
) -> Check {
    Check { at, desired, rule, panicking, stable_mb, panic_mb, ebc }
}

fn defaults() -> Settings {
    Settings::with_capacity(8000.0)
}

fn cases() -> Vec<Case> {
    use Rule::*;
    vec![
        Case {
            name: "steady state: 11200 MB on 2 pods is exactly 2 targets",
            settings: defaults(),
            resume: None,
            pods: Pods::Fixed(2),
            loads: vec![load(0, FOREVER, 11200.0, 56.0)],
            checks: vec![
                // ceil(11200 / 5600) = 2; panic 2/2 = 1 < 2; EBC floor(2x8000 - 211 - 11200) = 4589.
                check(10, 2, Observed, false, 11200.0, 11200.0, 4589),
                check(100, 2, Observed, false, 11200.0, 11200.0, 4589),
            ],
        },
        Case {
            name: "step up from 5000 MB to 20000 MB: panic at once, out one stable window later",
            settings: defaults(),
            resume: None,
            pods: Pods::Follow(1),
            loads: vec![load(0, 60, 5000.0, 25.0), load(60, FOREVER, 20000.0, 100.0)],
            checks: vec![
                check(58, 1, Observed, false, 5000.0, 5000.0, 2789),
                // Panic window 55..=60: (5x5000 + 20000)/6 = 7500 -> 2 pods = 2 x 1 ready: panic.
                // Stable 1..=60: (59x5000 + 20000)/60 = 5250 -> 1. EBC 8000 - 211 - 7500 = 289.
                check(60, 2, PanicWindow, true, 5250.0, 7500.0, 289),
                // Panic 57..=62: (3x5000 + 3x20000)/6 = 12500 -> 3 (1.5 x 2 ready: no new panic, still in it).
                check(62, 3, PanicWindow, true, 5750.0, 12500.0, 3289),
                // Panic 59..=64: (5000 + 5x20000)/6 = 17500 -> 4.
                check(64, 4, PanicWindow, true, 6250.0, 17500.0, 6289),
                // Panic window full of 20000 -> 4; stable (53x5000 + 7x20000)/60 = 6750 -> 2.
                check(66, 4, PanicWindow, true, 6750.0, 20000.0, 11789),
                // Last over the threshold at 60: panic lasts while now <= 60 + 60.
                check(120, 4, Observed, true, 20000.0, 20000.0, 11789),
                check(122, 4, Observed, false, 20000.0, 20000.0, 11789),
            ],
        },
        Case {
            name: "a 4 s spike: panic scales up, never down, and leaves with the scale-down rate",
            settings: defaults(),
            resume: None,
            pods: Pods::Follow(1),
            loads: vec![
                load(0, 60, 1000.0, 10.0),
                load(60, 64, 40000.0, 400.0),
                load(64, FOREVER, 1000.0, 10.0),
            ],
            checks: vec![
                check(58, 1, Observed, false, 1000.0, 1000.0, 6789),
                // Panic (5x1000 + 40000)/6 = 7500 -> 2 = 2 x 1: panic.
                check(60, 2, PanicWindow, true, 1650.0, 7500.0, 289),
                // Panic (3x1000 + 3x40000)/6 = 20500 -> 4 = 2 x 2 ready: over again, panic now since 62.
                check(62, 4, PanicWindow, true, 2950.0, 20500.0, -4711),
                // Panic (1000 + 4x40000 + 1000)/6 = 27000 -> 5; stable 216000/60 = 3600.
                check(64, 5, PanicWindow, true, 3600.0, 27000.0, 4789),
                // Panic falls to 20500 -> 4 pods, but a panic never scales down: 5.
                check(66, 5, PanicHold, true, 3600.0, 20500.0, 19289),
                // Still 5 at 122 = 62 + 60 ...
                check(122, 5, PanicHold, true, 1650.0, 1000.0, 38789),
                // ... out of panic at 124: ceil(1000/5600) = 1, but at most halve 5 ready: floor(5/2) = 2.
                check(124, 2, ScaleDownRate, false, 1000.0, 1000.0, 38789),
                check(126, 1, Observed, false, 1000.0, 1000.0, 14789),
            ],
        },
        Case {
            name: "no load: halve every tick, then keep the last pod for the 30 s grace",
            settings: defaults(),
            resume: None,
            pods: Pods::Follow(16),
            loads: vec![load(0, FOREVER, 0.0, 0.0)],
            checks: vec![
                check(0, 8, ScaleDownRate, false, 0.0, 0.0, 16 * 8000 - 211),
                check(2, 4, ScaleDownRate, false, 0.0, 0.0, 8 * 8000 - 211),
                check(4, 2, ScaleDownRate, false, 0.0, 0.0, 4 * 8000 - 211),
                check(6, 1, ScaleDownRate, false, 0.0, 0.0, 2 * 8000 - 211),
                // floor(1/2) = 0: the rules ask for zero at 8; the grace holds one pod until 8 + 30.
                check(8, 1, ScaleToZeroGrace, false, 0.0, 0.0, 7789),
                check(36, 1, ScaleToZeroGrace, false, 0.0, 0.0, 7789),
                check(38, 0, Observed, false, 0.0, 0.0, 7789),
                // At zero pods, EBC = floor(0 - 211 - 0): a buffer is needed in front.
                check(40, 0, Observed, false, 0.0, 0.0, -211),
            ],
        },
        Case {
            name: "from the last request to zero pods: the stable window, then the grace period",
            settings: defaults(),
            resume: None,
            pods: Pods::Follow(1),
            loads: vec![load(0, 10, 1000.0, 10.0), load(10, FOREVER, 0.0, 0.0)],
            checks: vec![
                // Second 9 is still in the window 9..=68: 1000/60 MB asks for 1 pod.
                check(68, 1, Observed, false, 16.666667, 0.0, 7789),
                // Window 11..=70 is empty of load: zero asked, grace from 70.
                check(70, 1, ScaleToZeroGrace, false, 0.0, 0.0, 7789),
                check(98, 1, ScaleToZeroGrace, false, 0.0, 0.0, 7789),
                check(100, 0, Observed, false, 0.0, 0.0, 7789),
                check(102, 0, Observed, false, 0.0, 0.0, -211),
            ],
        },
        Case {
            name: "a request during the grace period starts the grace again",
            settings: defaults(),
            resume: None,
            pods: Pods::Follow(1),
            loads: vec![
                load(0, 10, 1000.0, 10.0),
                load(10, 80, 0.0, 0.0),
                load(80, 81, 1000.0, 1.0),
                load(81, FOREVER, 0.0, 0.0),
            ],
            checks: vec![
                check(70, 1, ScaleToZeroGrace, false, 0.0, 0.0, 7789),
                // Panic window 75..=80: 1000/6 MB; EBC floor(8000 - 211 - 166.67) = 7622.
                check(80, 1, Observed, false, 16.666667, 166.666667, 7622),
                check(100, 1, Observed, false, 16.666667, 0.0, 7789),
                check(138, 1, Observed, false, 16.666667, 0.0, 7789),
                check(140, 1, ScaleToZeroGrace, false, 0.0, 0.0, 7789),
                check(168, 1, ScaleToZeroGrace, false, 0.0, 0.0, 7789),
                check(170, 0, Observed, false, 0.0, 0.0, 7789),
            ],
        },
        Case {
            name: "0 -> 1: requests with no memory (a buffer at zero pods) ask for one pod",
            settings: defaults(),
            resume: None,
            pods: Pods::Fixed(0),
            loads: vec![load(0, FOREVER, 0.0, 3.0)],
            checks: vec![check(0, 1, ConcurrencyOverride, false, 0.0, 0.0, -211)],
        },
        Case {
            name: "1 -> 0: memory with no requests asks for no pod (at zero pods: no grace)",
            settings: defaults(),
            resume: None,
            pods: Pods::Fixed(0),
            loads: vec![load(0, FOREVER, 100.0, 0.0)],
            checks: vec![check(0, 0, ConcurrencyOverride, false, 100.0, 100.0, -311)],
        },
        Case {
            name: "1 -> 0 with a pod running: the grace period still applies",
            settings: defaults(),
            resume: None,
            pods: Pods::Fixed(1),
            loads: vec![load(0, FOREVER, 100.0, 0.0)],
            checks: vec![check(0, 1, ScaleToZeroGrace, false, 100.0, 100.0, 7689)],
        },
        Case {
            name: "the override is only between 0 and 1: 2 pods of memory without requests stay 2",
            settings: defaults(),
            resume: None,
            pods: Pods::Fixed(0),
            // ceil(6000/5600) = 2 for both windows; 2 / max(1, 0 ready) = 2: panic.
            loads: vec![load(0, FOREVER, 6000.0, 0.0)],
            checks: vec![check(0, 2, Observed, true, 6000.0, 6000.0, -6211)],
        },
        Case {
            name: "Wasabi's shipped settings: target 9100 MB on 13000 MB pods, burst 1000 MB, 3 pods",
            settings: Settings {
                target_mb: Some(9100.0),
                target_burst_capacity_mb: 1000.0,
                ..Settings::with_capacity(13000.0)
            },
            resume: None,
            pods: Pods::Fixed(3),
            // ceil(20000/9100) = 3; EBC floor(3x13000 - 1000 - 20000) = 18000 (positive: no buffer).
            loads: vec![load(0, FOREVER, 20000.0, 100.0)],
            checks: vec![check(0, 3, Observed, false, 20000.0, 20000.0, 18000)],
        },
        Case {
            name: "Wasabi's shipped settings on 1 pod: EBC negative, and 3 = 3 x 1 ready is a panic",
            settings: Settings {
                target_mb: Some(9100.0),
                target_burst_capacity_mb: 1000.0,
                ..Settings::with_capacity(13000.0)
            },
            resume: None,
            pods: Pods::Fixed(1),
            loads: vec![load(0, FOREVER, 20000.0, 100.0)],
            checks: vec![check(0, 3, Observed, true, 20000.0, 20000.0, -8000)],
        },
        Case {
            name: "a target above capacity is the capacity EBC counts",
            settings: Settings { target_mb: Some(9100.0), ..defaults() },
            resume: None,
            pods: Pods::Fixed(2),
            // EBC floor(2 x max(8000, 9100) - 211 - 9100) = 8889.
            loads: vec![load(0, FOREVER, 9100.0, 10.0)],
            checks: vec![check(0, 1, Observed, false, 9100.0, 9100.0, 8889)],
        },
        Case {
            name: "target burst capacity 0: EBC is 0 whatever the load",
            settings: Settings { target_burst_capacity_mb: 0.0, ..defaults() },
            resume: None,
            pods: Pods::Fixed(1),
            loads: vec![load(0, FOREVER, 20000.0, 100.0)],
            checks: vec![check(0, 4, Observed, true, 20000.0, 20000.0, 0)],
        },
        Case {
            name: "target burst capacity -1: EBC is -1 whatever the capacity",
            settings: Settings { target_burst_capacity_mb: -1.0, ..defaults() },
            resume: None,
            pods: Pods::Fixed(3),
            loads: vec![load(0, FOREVER, 100.0, 1.0)],
            // ceil(100/5600) = 1 = floor(3/2).
            checks: vec![check(0, 1, Observed, false, 100.0, 100.0, -1)],
        },
        Case {
            name: "panic threshold: exactly 2 x ready panics",
            settings: defaults(),
            resume: None,
            pods: Pods::Fixed(2),
            // ceil(20000/5600) = 4 = 2 x 2.
            loads: vec![load(0, FOREVER, 20000.0, 100.0)],
            checks: vec![check(0, 4, Observed, true, 20000.0, 20000.0, -4211)],
        },
        Case {
            name: "panic threshold: 1.5 x ready does not",
            settings: defaults(),
            resume: None,
            pods: Pods::Fixed(2),
            // ceil(16800/5600) = 3 exactly.
            loads: vec![load(0, FOREVER, 16800.0, 84.0)],
            checks: vec![check(0, 3, Observed, false, 16800.0, 16800.0, -1011)],
        },
        Case {
            name: "scale-up rate 2: at most double the ready pods per tick",
            settings: Settings { max_scale_up_rate: 2.0, ..defaults() },
            resume: None,
            pods: Pods::Follow(1),
            // 56000 MB is 10 targets.
            loads: vec![load(0, FOREVER, 56000.0, 280.0)],
            checks: vec![
                check(0, 2, ScaleUpRate, true, 56000.0, 56000.0, -48211),
                check(2, 4, ScaleUpRate, true, 56000.0, 56000.0, -40211),
                check(4, 8, ScaleUpRate, true, 56000.0, 56000.0, -24211),
                // 10 / 8 ready < 2: no new panic, but the panic of 4 (10/4 >= 2) still holds.
                check(6, 10, Observed, true, 56000.0, 56000.0, 7789),
            ],
        },
        Case {
            name: "taking over 5 pods: panic from the start holds them for a stable window",
            settings: defaults(),
            resume: Some(5),
            pods: Pods::Fixed(5),
            loads: vec![load(0, FOREVER, 1000.0, 10.0)],
            checks: vec![
                check(0, 5, PanicHold, true, 1000.0, 1000.0, 38789),
                check(60, 5, PanicHold, true, 1000.0, 1000.0, 38789),
                check(62, 2, ScaleDownRate, false, 1000.0, 1000.0, 38789),
            ],
        },
        Case {
            name: "scale-down delay 10 s: a lower decision waits until the higher one is 10 s old",
            settings: Settings {
                stable_window: Duration::from_secs(6),
                panic_window: Duration::from_secs(6),
                panic_threshold: 10.0,
                scale_down_delay: Duration::from_secs(10),
                ..defaults()
            },
            resume: None,
            pods: Pods::Fixed(4),
            loads: vec![load(0, 6, 16800.0, 84.0), load(6, FOREVER, 5600.0, 28.0)],
            checks: vec![
                // Window 1..=6: (5x16800 + 5600)/6 = 14933.33 -> 3.
                check(6, 3, Observed, false, 14933.333333, 14933.333333, 16855),
                // (3x16800 + 3x5600)/6 = 11200 -> 2, held at the 3 of seconds 0..6.
                check(8, 3, ScaleDownDelay, false, 11200.0, 11200.0, 20589),
                // 5600 -> 1, rate floor(4/2) = 2, still held by the 3 decided at 6.
                check(14, 3, ScaleDownDelay, false, 5600.0, 5600.0, 26189),
                check(16, 2, ScaleDownRate, false, 5600.0, 5600.0, 26189),
            ],
        },
        Case {
            name: "max scale caps the decision",
            settings: Settings { max_scale: 3, ..defaults() },
            resume: None,
            pods: Pods::Fixed(3),
            loads: vec![load(0, FOREVER, 56000.0, 280.0)],
            checks: vec![check(0, 3, MaxScale, true, 56000.0, 56000.0, -32211)],
        },
        Case {
            name: "min scale floors the decision",
            settings: Settings { min_scale: 2, ..defaults() },
            resume: None,
            pods: Pods::Fixed(2),
            loads: vec![load(0, FOREVER, 0.0, 0.0)],
            checks: vec![check(0, 2, MinScale, false, 0.0, 0.0, 15789)],
        },
        Case {
            name: "scale to zero off: one pod instead of none",
            settings: Settings { scale_to_zero: false, ..defaults() },
            resume: None,
            pods: Pods::Fixed(1),
            loads: vec![load(0, FOREVER, 0.0, 0.0)],
            checks: vec![
                check(0, 1, ScaleToZeroDisabled, false, 0.0, 0.0, 7789),
                check(100, 1, ScaleToZeroDisabled, false, 0.0, 0.0, 7789),
            ],
        },
    ]
}

#[test]
fn hand_worked_cases() {
    for case in cases() {
        run(&case);
    }
}

fn run(case: &Case) {
    let mut autoscaler = match case.resume {
        Some(ready) => Autoscaler::resume(case.settings, Duration::ZERO, ready),
        None => Autoscaler::new(case.settings),
    }
    .unwrap_or_else(|error| panic!("{}: {error}", case.name));
    let (mut ready, follow) = match case.pods {
        Pods::Fixed(ready) => (ready, false),
        Pods::Follow(ready) => (ready, true),
    };
    let last = case.checks.iter().map(|check| check.at).max().unwrap_or(0);
    let mut checks = case.checks.iter().peekable();
    for second in 0..=last {
        let now = Duration::from_secs(second);
        if let Some(load) = case.loads.iter().find(|load| (load.from..load.to).contains(&second)) {
            autoscaler.record(now, Sample { memory_mb: load.memory_mb, concurrency: load.concurrency });
        }
        if second % 2 != 0 {
            continue;
        }
        let decision = autoscaler
            .decide(now, ready)
            .unwrap_or_else(|| panic!("{}: no decision at {second} s", case.name));
        if let Some(check) = checks.next_if(|check| check.at == second) {
            let context = format!("{}: at {second} s: {decision}", case.name);
            assert_eq!(decision.desired, check.desired, "desired; {context}");
            assert_eq!(decision.rule, check.rule, "rule; {context}");
            assert_eq!(decision.panicking, check.panicking, "panicking; {context}");
            assert!((decision.stable_mb - check.stable_mb).abs() < 1e-6, "stable MB; {context}");
            assert!((decision.panic_mb - check.panic_mb).abs() < 1e-6, "panic MB; {context}");
            assert_eq!(decision.excess_burst_capacity, check.ebc, "EBC; {context}");
            assert_eq!(decision.ready, ready, "ready; {context}");
        }
        if follow {
            ready = decision.desired;
        }
    }
    assert!(checks.next().is_none(), "{}: a check is not at an even second", case.name);
}

#[test]
fn no_decision_before_the_first_sample_or_after_a_silent_stable_window() {
    let mut autoscaler = Autoscaler::new(defaults()).unwrap();
    assert_eq!(autoscaler.decide(Duration::ZERO, 3), None);
    autoscaler.record(Duration::from_secs(10), Sample { memory_mb: 5000.0, concurrency: 5.0 });
    assert!(autoscaler.decide(Duration::from_secs(70), 3).is_some(), "60 s after the last sample");
    assert_eq!(autoscaler.decide(Duration::from_secs(71), 3), None, "more than a stable window after it");
}

#[test]
fn update_keeps_the_history_and_applies_the_new_target() {
    let mut autoscaler = Autoscaler::new(defaults()).unwrap();
    for second in 0..10 {
        autoscaler.record(Duration::from_secs(second), Sample { memory_mb: 9000.0, concurrency: 9.0 });
    }
    assert_eq!(autoscaler.decide(Duration::from_secs(9), 2).map(|d| d.desired), Some(2));
    autoscaler.update(Settings { target_mb: Some(3000.0), ..defaults() }).unwrap();
    let decision = autoscaler.decide(Duration::from_secs(9), 2).unwrap();
    assert_eq!((decision.desired, decision.target_mb, decision.stable_mb), (3, 3000.0, 9000.0));
}

#[test]
fn invalid_settings_are_refused_with_the_field_and_the_rule() {
    let cases: [(Settings, &str); 8] = [
        (Settings::with_capacity(0.0), "capacity_mb = 0: must be a number above 0"),
        (Settings { target_utilization: 1.5, ..defaults() }, "target_utilization = 1.5: must be in (0, 1]"),
        (
            Settings { target_burst_capacity_mb: -2.0, ..defaults() },
            "target_burst_capacity_mb = -2: must be 0 or more, or -1 (buffer always in the path)",
        ),
        (
            Settings { stable_window: Duration::from_secs(5), ..defaults() },
            "stable_window = 5s: must be whole seconds from 6 s to 1 h",
        ),
        (
            Settings { panic_window: Duration::from_millis(1500), ..defaults() },
            "panic_window = 1.5s: must be whole seconds from 1 s to the stable window (60s)",
        ),
        (
            Settings { max_scale_down_rate: 1.0, ..defaults() },
            "max_scale_down_rate = 1: must be a number above 1",
        ),
        (
            Settings { scale_to_zero_grace: Duration::ZERO, ..defaults() },
            "scale_to_zero_grace must be above 0",
        ),
        (Settings { min_scale: 4, max_scale: 3, ..defaults() }, "min_scale = 4 is above max_scale = 3"),
    ];
    for (settings, message) in cases {
        let error = Autoscaler::new(settings).expect_err(message);
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn a_decision_reads_as_one_log_line() {
    let mut autoscaler = Autoscaler::new(defaults()).unwrap();
    autoscaler.record(Duration::ZERO, Sample { memory_mb: 20000.0, concurrency: 100.0 });
    let decision = autoscaler.decide(Duration::ZERO, 2).unwrap();
    assert_eq!(
        decision.to_string(),
        "desired 4 (observed) ready 2 stable 20000 MB panic 20000 MB target 5600 MB panic yes ebc -4211"
    );
}

#[test]
fn bad_sample_values_count_as_zero() {
    let mut autoscaler = Autoscaler::new(defaults()).unwrap();
    autoscaler.record(Duration::ZERO, Sample { memory_mb: f64::NAN, concurrency: -3.0 });
    autoscaler.record(Duration::ZERO, Sample { memory_mb: 100.0, concurrency: f64::INFINITY });
    let decision = autoscaler.decide(Duration::ZERO, 0).unwrap();
    assert_eq!((decision.stable_mb, decision.stable_concurrency), (100.0, 0.0));
}
