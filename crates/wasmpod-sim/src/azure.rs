//! The Azure Functions 2019 public trace, read from its CSV files as they are published.
//!
//! Three files per day (ids are salted hashes, consistent across files):
//! - `invocations_per_function_md.anon.dNN.csv`: `HashOwner, HashApp, HashFunction, Trigger, 1 .. 1440`,
//!   calls per minute of the day;
//! - `function_durations_percentiles.anon.dNN.csv`: `HashOwner, HashApp, HashFunction, Average, Count,
//!   Minimum, Maximum, percentile_Average_0, _1, _25, _50, _75, _99, _100`, run time in ms;
//! - `app_memory_percentiles.anon.dNN.csv` (days 1-12 only): `HashOwner, HashApp, SampleCount,
//!   AverageAllocatedMb, AverageAllocatedMb_pct1, _pct5, _pct25, _pct50, _pct75, _pct95, _pct99, _pct100`,
//!   committed memory per *app*.
//!
//! Columns are found by their header names, so a file with extra columns still loads; a missing
//! required column, a malformed number or an unknown trigger is an error naming file, line and field.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::SimError;
use crate::quantiles::Quantiles;
use crate::workload::{FunctionSpec, Trigger, Workload};

/// Minutes in one day of the trace (the invocation file's columns `1` .. `1440`).
pub const MINUTES_PER_DAY: usize = 1440;

/// Run time of a function that has no durations row, ms: the synthetic workload's median
/// (about half the trace's functions run under a second on average).
pub const FALLBACK_DURATION_MS: f64 = 700.0;
/// Memory of an app that has no memory row (days 13 and 14 have none), MB: the trace's median
/// app commits about 150 MB.
pub const FALLBACK_MEMORY_MB: f64 = 150.0;

/// The files of one day of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureFiles {
    /// `invocations_per_function_md.anon.dNN.csv` (required).
    pub invocations: PathBuf,
    /// `function_durations_percentiles.anon.dNN.csv`; without it every function takes the fallback.
    pub durations: Option<PathBuf>,
    /// `app_memory_percentiles.anon.dNN.csv`; without it every app takes the fallback.
    pub memory: Option<PathBuf>,
    /// A list of `HashApp` ids to keep (a CSV whose first column is `HashApp`, as Wasabi's
    /// `hashapp_list.csv`); without it every app is kept.
    pub apps: Option<PathBuf>,
}

impl AzureFiles {
    /// The three files of day `day` (1-14) in the folder the dataset unpacks into, taking the
    /// durations and memory files only when they exist (memory stops after day 12).
    pub fn in_folder(folder: &Path, day: u32) -> AzureFiles {
        let existing = |name: String| {
            let path = folder.join(name);
            path.exists().then_some(path)
        };
        AzureFiles {
            invocations: folder.join(format!("invocations_per_function_md.anon.d{day:02}.csv")),
            durations: existing(format!("function_durations_percentiles.anon.d{day:02}.csv")),
            memory: existing(format!("app_memory_percentiles.anon.d{day:02}.csv")),
            apps: None,
        }
    }
}

/// How the trace becomes a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureOptions {
    /// First minute of the day to replay (0-based).
    pub start_minute: usize,
    /// Minutes to replay (Wasabi replays the first 120).
    pub minutes: usize,
    /// Run time of a function that has no row in the durations file.
    pub fallback_duration_ms: Quantiles,
    /// Memory of an app that has no row in the memory file.
    pub fallback_memory_mb: Quantiles,
    /// The trace says nothing about CPU, so every function gets this share of a core while it
    /// runs.
    pub cpu_share: f64,
}

/// Reads one day of the trace into a [`Workload`].
///
/// Functions with no call in the replayed minutes are dropped. A function's run time is its
/// row's percentiles (of 30-second averages, weighted by calls: the closest the trace comes to
/// per-call figures). Its real memory per call is its app's memory percentiles and its declared
/// memory is the app's largest (`pct100`): the size a user would give a container that must
/// never run out.
pub fn load(files: &AzureFiles, options: &AzureOptions) -> Result<Workload, SimError> {
    if options.minutes == 0 || options.start_minute + options.minutes > MINUTES_PER_DAY {
        return Err(SimError::Setting {
            name: "--minutes",
            reason: format!(
                "minutes {}..{} do not fit in a day of {MINUTES_PER_DAY}",
                options.start_minute,
                options.start_minute + options.minutes
            ),
        });
    }
    let apps = files.apps.as_deref().map(read_app_list).transpose()?;
    let durations = files.durations.as_deref().map(read_durations).transpose()?.unwrap_or_default();
    let memory = files.memory.as_deref().map(read_memory).transpose()?.unwrap_or_default();
    read_invocations(&files.invocations, options, apps.as_ref(), &durations, &memory)
}

/// One row's key in the durations file.
type FunctionKey = (String, String, String);

fn read_invocations(
    path: &Path,
    options: &AzureOptions,
    apps: Option<&HashSet<String>>,
    durations: &HashMap<FunctionKey, Quantiles>,
    memory: &HashMap<(String, String), Quantiles>,
) -> Result<Workload, SimError> {
    let mut reader = open(path)?;
    let headers = headers(&mut reader, path)?;
    let owner = column(&headers, path, "HashOwner")?;
    let app = column(&headers, path, "HashApp")?;
    let function = column(&headers, path, "HashFunction")?;
    let trigger = column(&headers, path, "Trigger")?;
    let minute_columns: Vec<usize> = (options.start_minute..options.start_minute + options.minutes)
        .map(|m| column(&headers, path, &(m + 1).to_string()))
        .collect::<Result<_, _>>()?;

    let mut functions: Vec<FunctionSpec> = Vec::new();
    let mut index: HashMap<FunctionKey, u32> = HashMap::new();
    let mut counts: Vec<Vec<(u32, u32)>> = vec![Vec::new(); options.minutes];
    let mut record = csv::StringRecord::new();
    while read_record(&mut reader, &mut record, path)? {
        let line = line_of(&record);
        let app_id = field(&record, app, path, line, "HashApp")?;
        if apps.is_some_and(|keep| !keep.contains(app_id)) {
            continue;
        }
        let mut row_counts = Vec::with_capacity(minute_columns.len());
        for (m, &col) in minute_columns.iter().enumerate() {
            let name = (options.start_minute + m + 1).to_string();
            let text = field(&record, col, path, line, &name)?;
            let n: u32 = text.trim().parse().map_err(|_| SimError::Input {
                path: path.to_path_buf(),
                line,
                field: name,
                reason: format!("{text:?} is not a count of calls"),
            })?;
            row_counts.push(n);
        }
        if row_counts.iter().all(|&n| n == 0) {
            continue;
        }
        let trigger_text = field(&record, trigger, path, line, "Trigger")?;
        let trigger = Trigger::from_trace(trigger_text).ok_or_else(|| SimError::Input {
            path: path.to_path_buf(),
            line,
            field: "Trigger".into(),
            reason: format!(
                "{trigger_text:?} is not one of http, timer, event, queue, storage, orchestration, others"
            ),
        })?;
        let key = (
            field(&record, owner, path, line, "HashOwner")?.to_owned(),
            app_id.to_owned(),
            field(&record, function, path, line, "HashFunction")?.to_owned(),
        );
        // The published files hold one row per function and day; a repeated row adds its calls.
        let id = match index.get(&key) {
            Some(&id) => id,
            None => {
                let id = functions.len() as u32;
                let memory_mb = memory
                    .get(&(key.0.clone(), key.1.clone()))
                    .cloned()
                    .unwrap_or_else(|| options.fallback_memory_mb.clone());
                functions.push(FunctionSpec {
                    name: key.2.clone(),
                    app: key.1.clone(),
                    owner: key.0.clone(),
                    trigger,
                    duration_ms: durations
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| options.fallback_duration_ms.clone()),
                    declared_mb: memory_mb.max(),
                    memory_mb,
                    cpu_share: options.cpu_share,
                    instantiate_ms: None,
                });
                index.insert(key, id);
                id
            }
        };
        for (m, n) in row_counts.into_iter().enumerate() {
            if n > 0 {
                counts[m].push((id, n));
            }
        }
    }
    Ok(Workload { functions, minutes: counts })
}

fn read_durations(path: &Path) -> Result<HashMap<FunctionKey, Quantiles>, SimError> {
    const POINTS: [(&str, f64); 7] = [
        ("percentile_Average_0", 0.0),
        ("percentile_Average_1", 0.01),
        ("percentile_Average_25", 0.25),
        ("percentile_Average_50", 0.5),
        ("percentile_Average_75", 0.75),
        ("percentile_Average_99", 0.99),
        ("percentile_Average_100", 1.0),
    ];
    let mut reader = open(path)?;
    let headers = headers(&mut reader, path)?;
    let keys = [
        column(&headers, path, "HashOwner")?,
        column(&headers, path, "HashApp")?,
        column(&headers, path, "HashFunction")?,
    ];
    let points = POINTS
        .iter()
        .map(|&(name, p)| Ok((column(&headers, path, name)?, name, p)))
        .collect::<Result<Vec<_>, SimError>>()?;
    let mut out = HashMap::new();
    let mut record = csv::StringRecord::new();
    while read_record(&mut reader, &mut record, path)? {
        let line = line_of(&record);
        let values = optional_numbers(&record, &points, path, line)?;
        let key = (
            field(&record, keys[0], path, line, "HashOwner")?.to_owned(),
            field(&record, keys[1], path, line, "HashApp")?.to_owned(),
            field(&record, keys[2], path, line, "HashFunction")?.to_owned(),
        );
        if let Some(q) = Quantiles::from_points(values) {
            out.entry(key).or_insert(q);
        }
    }
    Ok(out)
}

fn read_memory(path: &Path) -> Result<HashMap<(String, String), Quantiles>, SimError> {
    const POINTS: [(&str, f64); 8] = [
        ("AverageAllocatedMb_pct1", 0.01),
        ("AverageAllocatedMb_pct5", 0.05),
        ("AverageAllocatedMb_pct25", 0.25),
        ("AverageAllocatedMb_pct50", 0.5),
        ("AverageAllocatedMb_pct75", 0.75),
        ("AverageAllocatedMb_pct95", 0.95),
        ("AverageAllocatedMb_pct99", 0.99),
        ("AverageAllocatedMb_pct100", 1.0),
    ];
    let mut reader = open(path)?;
    let headers = headers(&mut reader, path)?;
    let owner = column(&headers, path, "HashOwner")?;
    let app = column(&headers, path, "HashApp")?;
    let points = POINTS
        .iter()
        .map(|&(name, p)| Ok((column(&headers, path, name)?, name, p)))
        .collect::<Result<Vec<_>, SimError>>()?;
    let mut out = HashMap::new();
    let mut record = csv::StringRecord::new();
    while read_record(&mut reader, &mut record, path)? {
        let line = line_of(&record);
        let values = optional_numbers(&record, &points, path, line)?;
        let key = (
            field(&record, owner, path, line, "HashOwner")?.to_owned(),
            field(&record, app, path, line, "HashApp")?.to_owned(),
        );
        if let Some(q) = Quantiles::from_points(values) {
            out.entry(key).or_insert(q);
        }
    }
    Ok(out)
}

fn read_app_list(path: &Path) -> Result<HashSet<String>, SimError> {
    let mut reader = open(path)?;
    let headers = headers(&mut reader, path)?;
    let app = column(&headers, path, "HashApp")?;
    let mut out = HashSet::new();
    let mut record = csv::StringRecord::new();
    while read_record(&mut reader, &mut record, path)? {
        let line = line_of(&record);
        out.insert(field(&record, app, path, line, "HashApp")?.trim().to_owned());
    }
    Ok(out)
}

fn open(path: &Path) -> Result<csv::Reader<std::fs::File>, SimError> {
    let file =
        std::fs::File::open(path).map_err(|source| SimError::Io { path: path.to_path_buf(), source })?;
    // Flexible: a short row is reported by the field it lacks, with its line, not as a bare
    // "unequal lengths".
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(file))
}

fn headers(reader: &mut csv::Reader<std::fs::File>, path: &Path) -> Result<csv::StringRecord, SimError> {
    reader.headers().cloned().map_err(|e| csv_error(path, e))
}

fn column(headers: &csv::StringRecord, path: &Path, name: &str) -> Result<usize, SimError> {
    headers.iter().position(|h| h.trim() == name).ok_or_else(|| SimError::Input {
        path: path.to_path_buf(),
        line: 1,
        field: name.to_owned(),
        reason: "required column is missing from the header".into(),
    })
}

fn read_record(
    reader: &mut csv::Reader<std::fs::File>,
    record: &mut csv::StringRecord,
    path: &Path,
) -> Result<bool, SimError> {
    reader.read_record(record).map_err(|e| csv_error(path, e))
}

fn line_of(record: &csv::StringRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

fn field<'r>(
    record: &'r csv::StringRecord,
    col: usize,
    path: &Path,
    line: u64,
    name: &str,
) -> Result<&'r str, SimError> {
    record.get(col).ok_or_else(|| SimError::Input {
        path: path.to_path_buf(),
        line,
        field: name.to_owned(),
        reason: format!("row has {} fields, this column is number {}", record.len(), col + 1),
    })
}

/// The `(probability, value)` pairs of a row's percentile columns; an empty field (some rows
/// miss them) is skipped, anything else that is not a number is an error.
fn optional_numbers(
    record: &csv::StringRecord,
    points: &[(usize, &str, f64)],
    path: &Path,
    line: u64,
) -> Result<Vec<(f64, f64)>, SimError> {
    let mut out = Vec::with_capacity(points.len());
    for &(col, name, p) in points {
        let text = record.get(col).unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        let value: f64 = text.parse().map_err(|_| SimError::Input {
            path: path.to_path_buf(),
            line,
            field: name.to_owned(),
            reason: format!("{text:?} is not a number"),
        })?;
        out.push((p, value));
    }
    Ok(out)
}

fn csv_error(path: &Path, error: csv::Error) -> SimError {
    let line = error.position().map_or(0, |p| p.line());
    match error.into_kind() {
        csv::ErrorKind::Io(source) => SimError::Io { path: path.to_path_buf(), source },
        kind => SimError::Input {
            path: path.to_path_buf(),
            line,
            field: String::new(),
            reason: format!("{kind:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    fn invocations_header() -> String {
        let mut h = String::from("HashOwner,HashApp,HashFunction,Trigger");
        for m in 1..=MINUTES_PER_DAY {
            write!(h, ",{m}").unwrap();
        }
        h
    }

    fn invocation_row(
        owner: &str,
        app: &str,
        function: &str,
        trigger: &str,
        counts: &[(usize, u32)],
    ) -> String {
        let mut minutes = vec![0u32; MINUTES_PER_DAY];
        for &(m, n) in counts {
            minutes[m] = n;
        }
        let mut row = format!("{owner},{app},{function},{trigger}");
        for n in minutes {
            write!(row, ",{n}").unwrap();
        }
        row
    }

    fn options(minutes: usize) -> AzureOptions {
        AzureOptions {
            start_minute: 0,
            minutes,
            fallback_duration_ms: Quantiles::constant(1000.0),
            fallback_memory_mb: Quantiles::constant(128.0),
            cpu_share: 0.5,
        }
    }

    fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    #[test]
    fn loads_a_day_in_the_published_layout() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "invocations_per_function_md.anon.d01.csv",
            &[
                invocations_header(),
                invocation_row("o1", "a1", "f1", "http", &[(0, 3), (1, 1)]),
                invocation_row("o1", "a1", "f2", "timer", &[(1, 2)]),
                // Called only after the replayed window: dropped.
                invocation_row("o2", "a2", "f3", "queue", &[(500, 7)]),
            ],
        );
        write(
            dir.path(),
            "function_durations_percentiles.anon.d01.csv",
            &[
                "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100".into(),
                "o1,a1,f1,120,4,10,900,10,20,80,100,150,800,900".into(),
                // A row missing some percentiles still loads from the ones it has.
                "o1,a1,f2,50,2,,,,,,50,,,60".into(),
            ],
        );
        write(
            dir.path(),
            "app_memory_percentiles.anon.d01.csv",
            &[
                "HashOwner,HashApp,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1,AverageAllocatedMb_pct5,AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,AverageAllocatedMb_pct75,AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,AverageAllocatedMb_pct100".into(),
                "o1,a1,100,150,100,110,130,150,170,190,200,210".into(),
            ],
        );
        let files = AzureFiles::in_folder(dir.path(), 1);
        assert!(files.durations.is_some() && files.memory.is_some());
        let w = load(&files, &options(120)).unwrap();
        assert_eq!(w.functions.len(), 2);
        assert_eq!(w.minutes.len(), 120);
        assert_eq!(w.minutes[0], vec![(0, 3)]);
        assert_eq!(w.minutes[1], vec![(0, 1), (1, 2)]);
        assert_eq!(w.total_calls(), 6);
        let f1 = &w.functions[0];
        assert_eq!((f1.owner.as_str(), f1.app.as_str(), f1.name.as_str()), ("o1", "a1", "f1"));
        assert_eq!(f1.trigger, Trigger::Http);
        assert_eq!(f1.duration_ms.median(), 100.0);
        assert_eq!(f1.duration_ms.max(), 900.0);
        // Functions of one app share its memory; declared is the app's largest.
        assert_eq!(f1.memory_mb.median(), 150.0);
        assert_eq!(f1.declared_mb, 210.0);
        assert_eq!(w.functions[1].declared_mb, 210.0);
        assert_eq!(w.functions[1].trigger, Trigger::Timer);
        assert_eq!(w.functions[1].duration_ms.median(), 50.0);
        assert_eq!(f1.cpu_share, 0.5);
    }

    #[test]
    fn functions_without_profile_rows_take_the_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "inv.csv",
            &[invocations_header(), invocation_row("o", "a", "f", "event", &[(3, 9)])],
        );
        let files = AzureFiles { invocations: path, durations: None, memory: None, apps: None };
        let w = load(&files, &options(10)).unwrap();
        assert_eq!(w.functions[0].duration_ms.median(), 1000.0);
        assert_eq!(w.functions[0].declared_mb, 128.0);
    }

    #[test]
    fn an_app_list_keeps_only_its_apps() {
        let dir = tempfile::tempdir().unwrap();
        let invocations = write(
            dir.path(),
            "inv.csv",
            &[
                invocations_header(),
                invocation_row("o", "keep", "f1", "http", &[(0, 1)]),
                invocation_row("o", "drop", "f2", "http", &[(0, 1)]),
            ],
        );
        let apps = write(dir.path(), "hashapp_list.csv", &["HashApp".into(), "keep".into()]);
        let files = AzureFiles { invocations, durations: None, memory: None, apps: Some(apps) };
        let w = load(&files, &options(5)).unwrap();
        assert_eq!(w.functions.len(), 1);
        assert_eq!(w.functions[0].app, "keep");
    }

    #[test]
    fn the_window_starts_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let invocations = write(
            dir.path(),
            "inv.csv",
            &[invocations_header(), invocation_row("o", "a", "f", "http", &[(9, 4), (10, 5)])],
        );
        let files = AzureFiles { invocations, durations: None, memory: None, apps: None };
        let w = load(&files, &AzureOptions { start_minute: 10, ..options(2) }).unwrap();
        assert_eq!(w.minutes, vec![vec![(0, 5)], vec![]]);
    }

    struct BadCase {
        name: &'static str,
        rows: Vec<String>,
        expect: &'static str,
    }

    #[test]
    fn bad_input_names_file_line_and_field() {
        let cases = [
            BadCase {
                name: "missing column",
                rows: vec!["HashOwner,HashApp,HashFunction,1,2".into()],
                expect: "inv.csv:1: field \"Trigger\": required column is missing from the header",
            },
            BadCase {
                name: "unknown trigger",
                rows: vec![invocations_header(), invocation_row("o", "a", "f", "webhook", &[(0, 1)])],
                expect: "inv.csv:2: field \"Trigger\": \"webhook\" is not one of http, timer, event, queue, storage, orchestration, others",
            },
            BadCase {
                name: "bad count",
                rows: vec![
                    invocations_header(),
                    invocation_row("o", "a", "f", "http", &[]),
                    invocation_row("o", "a", "g", "http", &[]).replacen(",0", ",x", 1),
                ],
                expect: "inv.csv:3: field \"1\": \"x\" is not a count of calls",
            },
            BadCase {
                name: "short row",
                rows: vec![invocations_header(), "o,a,f,http,1,2".into()],
                expect: "inv.csv:2: field \"3\": row has 6 fields, this column is number 7",
            },
        ];
        for case in cases {
            let dir = tempfile::tempdir().unwrap();
            let invocations = write(dir.path(), "inv.csv", &case.rows);
            let files = AzureFiles { invocations, durations: None, memory: None, apps: None };
            let err = load(&files, &options(3)).unwrap_err().to_string();
            assert!(err.ends_with(case.expect), "{}: {err}", case.name);
        }
    }

    #[test]
    fn a_window_past_the_day_is_refused() {
        let files = AzureFiles { invocations: "x.csv".into(), durations: None, memory: None, apps: None };
        let err = load(&files, &AzureOptions { start_minute: 1400, ..options(120) }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid setting --minutes: minutes 1400..1520 do not fit in a day of 1440"
        );
    }
}
