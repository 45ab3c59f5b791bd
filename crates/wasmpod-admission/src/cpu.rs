//! The pod's CPU utilization: where to read it, how to sample it, and the gauge the breaker reads.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use wasmpod_cgroup::CgroupLayout;

/// The latest CPU utilization of the pod, in cores (1.0 = one core busy).
///
/// The breaker reads it on every admission decision and the sampler writes it every period, so
/// it is a lock-free atomic rather than a value behind the breaker's lock.
#[derive(Debug, Default)]
pub struct CpuGauge {
    bits: AtomicU64,
}

impl CpuGauge {
    /// A gauge reading 0 cores until the first sample.
    pub fn new() -> CpuGauge {
        CpuGauge::default()
    }

    /// The latest utilization in cores.
    pub fn cores(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }

    /// Stores a utilization in cores. Written by [`CpuSampler`]; tests set it directly.
    pub fn set(&self, cores: f64) {
        self.bits.store(cores.to_bits(), Ordering::Relaxed);
    }
}

/// Where the pod's cumulative CPU time is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuSource {
    /// `cpu.stat` (`usage_usec`) of the pod's cgroup in the unified hierarchy.
    CgroupV2(PathBuf),
    /// `cpuacct.usage` (nanoseconds) of the pod's cgroup in the v1 `cpuacct` hierarchy.
    CgroupV1(PathBuf),
    /// `/proc/self/stat` `utime + stime`: this process only, when no cgroup file is readable.
    ProcSelf,
}

impl fmt::Display for CpuSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuSource::CgroupV2(path) => write!(f, "cgroup v2 {}", path.display()),
            CpuSource::CgroupV1(path) => write!(f, "cgroup v1 {}", path.display()),
            CpuSource::ProcSelf => f.write_str(PROC_SELF_STAT),
        }
    }
}

/// Samples the pod's CPU usage into a [`CpuGauge`].
///
/// The cgroup is the right unit: the pod's CPU limit applies to it, and it counts every process
/// and thread in the container, not just this one.
///
/// ```no_run
/// # use std::{sync::Arc, time::Duration};
/// # use wasmpod_admission::{CpuGauge, CpuSampler};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let gauge = Arc::new(CpuGauge::new());
/// let sampler = CpuSampler::detect();
/// tracing::info!(source = %sampler.source(), "sampling pod cpu");
/// let _task = sampler.spawn(Arc::clone(&gauge), Duration::from_millis(50), 5);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CpuSampler {
    source: CpuSource,
}

const PROC_SELF_STAT: &str = "/proc/self/stat";

impl CpuSampler {
    /// Finds the pod's CPU usage file; never fails.
    ///
    /// Reads `/proc/self/mountinfo` and `/proc/self/cgroup` and takes the first readable of: the
    /// v1 `cpuacct` hierarchy's `cpuacct.usage` (on hybrid hosts, where both hierarchies are
    /// mounted, v1 is where the container's CPU controller lives), the unified hierarchy's
    /// `cpu.stat`, and finally `/proc/self/stat`. Mount roots are honoured, so it works inside
    /// containers with or without a cgroup namespace.
    pub fn detect() -> CpuSampler {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let source = choose_source(&mountinfo, &cgroup, |candidate| {
            CpuSampler { source: candidate.clone() }.read_usage().is_ok()
        });
        CpuSampler { source }
    }

    /// Where this sampler reads; log it at start-up so an operator can check it.
    pub fn source(&self) -> CpuSource {
        self.source.clone()
    }

    /// The cumulative CPU time consumed so far by the pod (or by this process for
    /// [`CpuSource::ProcSelf`]).
    pub fn read_usage(&self) -> io::Result<Duration> {
        match &self.source {
            CpuSource::CgroupV2(path) => {
                let text = std::fs::read_to_string(path)?;
                let usec = text
                    .lines()
                    .find_map(|line| line.strip_prefix("usage_usec "))
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .ok_or_else(|| invalid(path, "no usage_usec line"))?;
                Ok(Duration::from_micros(usec))
            }
            CpuSource::CgroupV1(path) => {
                let text = std::fs::read_to_string(path)?;
                let nanos =
                    text.trim().parse::<u64>().map_err(|_| invalid(path, "not a number of nanoseconds"))?;
                Ok(Duration::from_nanos(nanos))
            }
            CpuSource::ProcSelf => {
                let text = std::fs::read_to_string(PROC_SELF_STAT)?;
                let ticks = proc_stat_ticks(&text)
                    .ok_or_else(|| invalid(Path::new(PROC_SELF_STAT), "no utime/stime"))?;
                Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()))
            }
        }
    }

    /// Spawns a task that samples every `interval` and stores into `gauge` the mean of the last
    /// `window` samples of cores = Δusage / Δwall time (50 ms and 5 smooth out scheduler noise
    /// while reacting within a quarter second).
    ///
    /// The task holds the gauge weakly and ends once every other holder has dropped it; abort the
    /// handle to stop it sooner. A read error is logged once and the gauge keeps its last value.
    pub fn spawn(self, gauge: Arc<CpuGauge>, interval: Duration, window: usize) -> JoinHandle<()> {
        let gauge = Arc::downgrade(&gauge);
        tokio::spawn(self.run(gauge, interval, window.max(1)))
    }

    async fn run(self, gauge: Weak<CpuGauge>, interval: Duration, window: usize) {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut samples = VecDeque::with_capacity(window);
        // Wall time from the real clock: it is compared with real CPU time.
        let mut last = self.read_usage().ok().map(|usage| (usage, Instant::now()));
        let mut failing = false;
        loop {
            ticker.tick().await;
            let Some(gauge) = gauge.upgrade() else {
                return;
            };
            let now = Instant::now();
            let usage = match self.read_usage() {
                Ok(usage) => usage,
                Err(error) => {
                    if !failing {
                        tracing::warn!(source = %self.source, %error, "cannot read cpu usage; keeping the last value");
                    }
                    failing = true;
                    continue;
                }
            };
            failing = false;
            if let Some((last_usage, last_at)) = last {
                let wall = now.duration_since(last_at).as_secs_f64();
                // A counter that went backwards (cgroup recreated) yields no sample.
                if let (Some(used), true) = (usage.checked_sub(last_usage), wall > 0.0) {
                    if samples.len() == window {
                        samples.pop_front();
                    }
                    samples.push_back(used.as_secs_f64() / wall);
                    gauge.set(samples.iter().sum::<f64>() / samples.len() as f64);
                }
            }
            last = Some((usage, now));
        }
    }
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()))
}

/// Picks the usage file from `/proc/self/mountinfo` and `/proc/self/cgroup` text; `usable` says
/// whether a candidate can actually be read.
fn choose_source(mountinfo: &str, cgroup: &str, usable: impl Fn(&CpuSource) -> bool) -> CpuSource {
    let layout = CgroupLayout::parse(mountinfo, cgroup);
    let v1 = layout.v1("cpuacct").map(|hierarchy| (hierarchy, true));
    let v2 = layout.v2().map(|hierarchy| (hierarchy, false));
    for (hierarchy, is_v1) in v1.into_iter().chain(v2) {
        // The directory of the cgroup under the mount, then the mount point itself (a container
        // whose own cgroup is mounted at the mount point, seen from outside its namespace).
        for dir in [hierarchy.dir(), hierarchy.mount.point.clone()] {
            let candidate = if is_v1 {
                CpuSource::CgroupV1(dir.join("cpuacct.usage"))
            } else {
                CpuSource::CgroupV2(dir.join("cpu.stat"))
            };
            if usable(&candidate) {
                return candidate;
            }
        }
    }
    CpuSource::ProcSelf
}

/// `utime + stime` in clock ticks from `/proc/<pid>/stat`. The command name may contain spaces
/// and parentheses, so fields are counted after the last `)`.
fn proc_stat_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // After the command: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy_for(duration: Duration) {
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < duration {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }

    #[test]
    fn real_usage_grows_with_a_busy_loop() {
        let sampler = CpuSampler::detect();
        println!("detected cpu source: {}", sampler.source());
        let before = sampler.read_usage().expect("read usage");
        busy_for(Duration::from_millis(100));
        let after = sampler.read_usage().expect("read usage");
        let used = after.saturating_sub(before);
        println!("busy loop used {used:?}");
        assert!(used > Duration::from_millis(20), "usage grew by only {used:?}");
    }

    #[tokio::test]
    async fn sampler_reports_a_busy_thread_in_the_gauge() {
        let gauge = Arc::new(CpuGauge::new());
        let task = CpuSampler::detect().spawn(Arc::clone(&gauge), Duration::from_millis(50), 5);
        let spinner = std::thread::spawn(|| busy_for(Duration::from_millis(500)));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let cores = gauge.cores();
        task.abort();
        spinner.join().expect("spinner");
        println!("gauge read {cores:.2} cores");
        assert!(cores > 0.3, "gauge read {cores} cores");
    }

    #[tokio::test]
    async fn sampler_stops_when_the_gauge_is_dropped() {
        let gauge = Arc::new(CpuGauge::new());
        let task = CpuSampler::detect().spawn(Arc::clone(&gauge), Duration::from_millis(5), 5);
        drop(gauge);
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("task ends")
            .expect("task did not panic");
    }

    #[test]
    fn gauge_round_trips_cores() {
        let gauge = CpuGauge::new();
        assert_eq!(gauge.cores(), 0.0);
        gauge.set(1.75);
        assert_eq!(gauge.cores(), 1.75);
    }

    #[test]
    fn source_choice_follows_the_hierarchies_mounted() {
        struct Case {
            name: &'static str,
            mountinfo: &'static str,
            cgroup: &'static str,
            readable: &'static [&'static str],
            source: CpuSource,
        }
        let v2_host = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let hybrid = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        let docker_v1 = "\
700 690 0:30 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct
";
        let cases = [
            Case {
                name: "pure v2 in a pod cgroup",
                mountinfo: v2_host,
                cgroup: "0::/kubepods/pod1/c1\n",
                readable: &["/sys/fs/cgroup/kubepods/pod1/c1/cpu.stat"],
                source: CpuSource::CgroupV2("/sys/fs/cgroup/kubepods/pod1/c1/cpu.stat".into()),
            },
            Case {
                name: "v2 with a cgroup namespace",
                mountinfo: v2_host,
                cgroup: "0::/\n",
                readable: &["/sys/fs/cgroup/cpu.stat"],
                source: CpuSource::CgroupV2("/sys/fs/cgroup/cpu.stat".into()),
            },
            Case {
                name: "hybrid prefers v1 cpuacct",
                mountinfo: hybrid,
                cgroup: "2:cpuacct:/pod\n1:cpu:/pod\n0::/\n",
                readable: &["/sys/fs/cgroup/cpuacct/pod/cpuacct.usage", "/sys/fs/cgroup/unified/cpu.stat"],
                source: CpuSource::CgroupV1("/sys/fs/cgroup/cpuacct/pod/cpuacct.usage".into()),
            },
            Case {
                name: "hybrid falls back to v2 when v1 is unreadable",
                mountinfo: hybrid,
                cgroup: "2:cpuacct:/pod\n0::/\n",
                readable: &["/sys/fs/cgroup/unified/cpu.stat"],
                source: CpuSource::CgroupV2("/sys/fs/cgroup/unified/cpu.stat".into()),
            },
            Case {
                name: "v1 container strips the mount root",
                mountinfo: docker_v1,
                cgroup: "4:cpu,cpuacct:/docker/abc\n",
                readable: &["/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage"],
                source: CpuSource::CgroupV1("/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage".into()),
            },
            Case {
                name: "nothing readable",
                mountinfo: v2_host,
                cgroup: "0::/x\n",
                readable: &[],
                source: CpuSource::ProcSelf,
            },
            Case {
                name: "no proc files",
                mountinfo: "",
                cgroup: "",
                readable: &[],
                source: CpuSource::ProcSelf,
            },
        ];
        for case in cases {
            let got = choose_source(case.mountinfo, case.cgroup, |candidate| match candidate {
                CpuSource::CgroupV1(path) | CpuSource::CgroupV2(path) => {
                    case.readable.iter().any(|r| Path::new(r) == path)
                }
                CpuSource::ProcSelf => true,
            });
            assert_eq!(got, case.source, "{}", case.name);
        }
    }

    #[test]
    fn proc_stat_ticks_skip_a_command_with_spaces() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5 0 0";
        assert_eq!(proc_stat_ticks(stat), Some(10));
        assert_eq!(proc_stat_ticks("garbage"), None);
    }
}
