//! Hard CPU isolation (`--cgroup-cpu`): a request that carries a CPU quota runs on a worker
//! thread that sits in a cgroup of its own, and the kernel's CFS bandwidth control holds it to
//! the quota, as WasmBox does.
//!
//! **Per worker, quota per request.** WasmBox creates a cgroup per request, moves the request's
//! thread in and out, and removes the cgroup afterwards: three cgroup-tree writes and a `mkdir`
//! / `rmdir` on every request. Here each worker thread is placed in its cgroup once, when the
//! worker is created, and keeps it for life; a request takes an idle worker, the worker's quota
//! file is rewritten only when the quota differs from its last request's, and the worker goes
//! back to the idle list when the guest ends. One request runs on a worker at a time, so the
//! quota is still exactly the request's, as in WasmBox; what is saved is the per-request
//! cgroup churn. Per tenant would share one budget among a tenant's concurrent requests: a
//! policy the `cpu_quota` header (a per-request number) does not express.
//!
//! The groups are `<this process's cgroup>/wasmpod-<pid>/w<N>` (v2: a threaded subtree).
//! Workers are made on demand, up to a bound; a request finding none idle and the bound reached
//! waits for one. On drop, idle workers are stopped and every cgroup this process made is
//! removed; cgroups left by a process that died are removed at the next start.
//!
//! A request whose caller stops waiting (its client went away) stops its guest on the worker at
//! the guest's next epoch yield, as it would on the ordinary path, so a worker (and the memory
//! grant admission already returned) is never held by a guest nobody waits for.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmpod_cgroup::CgroupLayout;

/// The CFS period every quota is a share of (the `cpu_quota` header's 100 ms).
pub const CGROUP_CPU_PERIOD: Duration = Duration::from_millis(100);

/// The most cgroup-bound worker threads one server makes: requests with a quota beyond this many
/// at once wait for a worker (admission usually bounds them first).
pub const MAX_CGROUP_WORKERS: usize = 256;

/// The smallest quota the kernel accepts per period (1 ms): 10 millicores.
const MIN_QUOTA_US: u64 = 1_000;

/// Where the worker cgroups live, by cgroup version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// cgroup v2: a threaded subtree under this process's cgroup, a `cpu.max` per worker group;
    /// threads are moved with `cgroup.threads`.
    V2 {
        /// This process's own cgroup directory (the root of the threaded subtree).
        parent: PathBuf,
    },
    /// cgroup v1: children in the `cpu` hierarchy with `cpu.cfs_quota_us`, threads moved with
    /// `tasks`; and, when `cpuacct` is mounted apart from `cpu`, a twin there so each worker's
    /// CPU use can be read from its own `cpuacct.usage`.
    V1 {
        /// This process's cgroup directory in the `cpu` hierarchy.
        cpu: PathBuf,
        /// This process's cgroup directory in a separate `cpuacct` hierarchy, if there is one.
        cpuacct: Option<PathBuf>,
    },
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mechanism::V2 { parent } => {
                write!(f, "cgroup v2 cpu.max, threaded children of {}", parent.display())
            }
            Mechanism::V1 { cpu, cpuacct: None } => {
                write!(f, "cgroup v1 cpu.cfs_quota_us + tasks, children of {}", cpu.display())
            }
            Mechanism::V1 { cpu, cpuacct: Some(acct) } => write!(
                f,
                "cgroup v1 cpu.cfs_quota_us + tasks, children of {} (accounting in {})",
                cpu.display(),
                acct.display()
            ),
        }
    }
}

/// Why `--cgroup-cpu` cannot be used here (logged at start; quotas then use the runtime's own
/// epoch-based throttle).
#[derive(Debug, thiserror::Error)]
pub enum CgroupUnsupported {
    /// No cgroup hierarchy with a CPU controller is mounted for this process.
    #[error("no cgroup hierarchy with the cpu controller is mounted for this process")]
    NoController,
    /// A hierarchy exists, but this process may not create or configure cgroups in it.
    #[error("{}: {reason}", path.display())]
    NotWritable {
        /// The directory or file that refused.
        path: PathBuf,
        /// What was tried, and the OS error.
        reason: String,
    },
}

/// A failure to prepare a worker for one request: the request fails with it (500), logged.
#[derive(Debug, thiserror::Error)]
#[error("cgroup cpu worker: {0}")]
pub struct CgroupError(String);

/// The pool of cgroup-bound worker threads. One per server, shared by every function through
/// [`crate::EngineOptions::cgroup_cpu`]; a core-module request that carries a CPU quota then
/// runs on one of its workers, and the kernel, not the runtime's epoch throttle, holds it.
pub struct CgroupCpu {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
}

struct Shared {
    mechanism: Mechanism,
    /// `<own cgroup>/wasmpod-<pid>` (and its `cpuacct` twin): where worker groups are made.
    base: WorkerDirs,
    idle: Mutex<Vec<WorkerHandle>>,
    next_id: AtomicUsize,
    /// Every worker thread made, by worker id.
    threads: Mutex<Vec<(usize, std::thread::JoinHandle<()>)>>,
}

/// A worker's cgroup directories (`cpuacct` only on v1 with a separate accounting hierarchy).
#[derive(Debug, Clone)]
struct WorkerDirs {
    cpu: PathBuf,
    cpuacct: Option<PathBuf>,
}

type Job = Box<dyn FnOnce(&tokio::runtime::Runtime) + Send>;

struct WorkerHandle {
    id: usize,
    dirs: WorkerDirs,
    jobs: mpsc::Sender<Job>,
    quota_us: Option<u64>,
}

impl fmt::Debug for CgroupCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CgroupCpu")
            .field("mechanism", &self.shared.mechanism)
            .field("workers", &self.shared.next_id.load(Ordering::Relaxed))
            .finish()
    }
}

impl CgroupCpu {
    /// Finds a writable cgroup hierarchy with the CPU controller for this process (v1's `cpu`
    /// first on hybrid hosts, where it is the one that holds the controller; then v2), prepares
    /// the directory worker groups go in, and removes groups left behind by dead processes.
    /// `max_workers` bounds the threads (and cgroups) it will make.
    pub fn detect(max_workers: usize) -> Result<CgroupCpu, CgroupUnsupported> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut last_error = CgroupUnsupported::NoController;
        for mechanism in candidates(&mountinfo, &cgroup) {
            match prepare(&mechanism) {
                Ok(base) => {
                    let shared = Arc::new(Shared {
                        mechanism,
                        base,
                        idle: Mutex::new(Vec::new()),
                        next_id: AtomicUsize::new(0),
                        threads: Mutex::new(Vec::new()),
                    });
                    return Ok(CgroupCpu { shared, permits: Arc::new(Semaphore::new(max_workers.max(1))) });
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Which cgroup version and directories are in use (log it at start).
    pub fn mechanism(&self) -> &Mechanism {
        &self.shared.mechanism
    }

    /// The directory worker cgroups are created in (`w<N>` each), for operators and tests.
    pub fn worker_parent(&self) -> (&Path, Option<&Path>) {
        (&self.shared.base.cpu, self.shared.base.cpuacct.as_deref())
    }

    /// Runs the future `make` returns on an idle worker (made if needed) whose cgroup holds it
    /// to `millicores` per 100 ms, and returns its output.
    ///
    /// If the caller stops waiting (its client went away), the future still runs to its end on
    /// the worker (the guest's own timeout bounds it) and the worker then returns to the pool.
    pub async fn run<T, F, Fut>(&self, millicores: u32, make: F) -> Result<T, CgroupError>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CgroupError("the worker pool is closed".to_owned()))?;
        let mut worker = match self.take_idle() {
            Some(worker) => worker,
            None => self.spawn_worker()?,
        };
        if let Err(e) = worker.set_quota(millicores, &self.shared.mechanism) {
            // The worker is fine; only this request could not be limited.
            self.give_back(worker);
            return Err(e);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = Arc::downgrade(&self.shared);
        let jobs = worker.jobs.clone();
        let job: Job = Box::new(move |runtime| {
            let mut tx = tx;
            // Run until the guest ends, or until nobody waits for it (its future is dropped).
            let output = runtime.block_on(async {
                tokio::select! {
                    output = make() => Some(output),
                    () = tx.closed() => None,
                }
            });
            if let Some(output) = output {
                let _ = tx.send(output);
            }
            return_worker(&shared, worker, permit);
        });
        jobs.send(job).map_err(|_| CgroupError("worker thread has exited".to_owned()))?;
        rx.await.map_err(|_| CgroupError("worker thread stopped before the guest ended".to_owned()))
    }

    fn take_idle(&self) -> Option<WorkerHandle> {
        self.shared.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, worker: WorkerHandle) {
        self.shared.idle.lock().unwrap_or_else(|e| e.into_inner()).push(worker);
    }

    /// Makes worker `w<N>`: its cgroup(s), then its thread, which moves itself in before taking
    /// any job.
    fn spawn_worker(&self) -> Result<WorkerHandle, CgroupError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let name = format!("w{id}");
        let dirs = WorkerDirs {
            cpu: self.shared.base.cpu.join(&name),
            cpuacct: self.shared.base.cpuacct.as_ref().map(|d| d.join(&name)),
        };
        make_worker_group(&self.shared.mechanism, &dirs).map_err(CgroupError)?;
        let (jobs, receive) = mpsc::channel::<Job>();
        let (placed_tx, placed_rx) = mpsc::channel::<Result<(), String>>();
        let (thread_dirs, mechanism) = (dirs.clone(), self.shared.mechanism.clone());
        let thread = std::thread::Builder::new()
            .name(format!("wasmpod-cgroup-{name}"))
            .spawn(move || worker_main(mechanism, thread_dirs, receive, placed_tx))
            .map_err(|e| CgroupError(format!("cannot start worker thread: {e}")))?;
        match placed_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                let _ = thread.join();
                remove_worker_group(&dirs);
                return Err(CgroupError(reason));
            }
            Err(_) => return Err(CgroupError("worker thread exited during start".to_owned())),
        }
        self.shared.threads.lock().unwrap_or_else(|e| e.into_inner()).push((id, thread));
        tracing::debug!(worker = id, cgroup = %dirs.cpu.display(), "cgroup cpu worker started");
        Ok(WorkerHandle { id, dirs, jobs, quota_us: None })
    }
}

impl Drop for CgroupCpu {
    fn drop(&mut self) {
        // Dropping the idle handles closes their job channels: those threads leave their cgroups
        // and remove them (joined here). Busy workers do the same when their job ends.
        let idle = std::mem::take(&mut *self.shared.idle.lock().unwrap_or_else(|e| e.into_inner()));
        let idle_ids: Vec<usize> = idle.iter().map(|w| w.id).collect();
        drop(idle);
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for (id, thread) in threads {
            if idle_ids.contains(&id) {
                let _ = thread.join();
            }
        }
        // Empty once every worker has left; a busy worker makes this fail, harmlessly (the next
        // start removes it).
        remove_worker_group(&self.shared.base);
    }
}

impl WorkerHandle {
    /// Writes the worker's quota if it differs from its last request's. A quota above what an
    /// enclosing cgroup allows (a pod limited to 1 core asked for 2) is refused by the kernel;
    /// the worker is then left unlimited, so the enclosing limit, the tighter one, holds it.
    fn set_quota(&mut self, millicores: u32, mechanism: &Mechanism) -> Result<(), CgroupError> {
        let quota_us = quota_us(millicores);
        if self.quota_us == Some(quota_us) {
            return Ok(());
        }
        let (file, text, unlimited) = match mechanism {
            Mechanism::V2 { .. } => ("cpu.max", cpu_max(quota_us), "max".to_owned()),
            Mechanism::V1 { .. } => ("cpu.cfs_quota_us", quota_us.to_string(), "-1".to_owned()),
        };
        let path = self.dirs.cpu.join(file);
        if let Err(e) = std::fs::write(&path, text) {
            if e.kind() != io::ErrorKind::InvalidInput {
                return Err(CgroupError(format!("{}: {e}", path.display())));
            }
            tracing::debug!(
                worker = self.id,
                quota_us,
                "quota above the enclosing cgroup's: the enclosing one holds"
            );
            std::fs::write(&path, unlimited).map_err(|e| CgroupError(format!("{}: {e}", path.display())))?;
        }
        self.quota_us = Some(quota_us);
        tracing::trace!(worker = self.id, quota_us, "cgroup cpu quota set");
        Ok(())
    }
}

fn return_worker(shared: &Weak<Shared>, worker: WorkerHandle, permit: OwnedSemaphorePermit) {
    if let Some(shared) = shared.upgrade() {
        shared.idle.lock().unwrap_or_else(|e| e.into_inner()).push(worker);
    }
    drop(permit);
}

/// A worker thread's life: move into its cgroup(s), run jobs until its channel closes, move
/// back out and remove its cgroup(s).
fn worker_main(
    mechanism: Mechanism,
    dirs: WorkerDirs,
    jobs: mpsc::Receiver<Job>,
    placed: mpsc::Sender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = placed.send(Err(format!("cannot build the worker's runtime: {e}")));
            return;
        }
    };
    let tid = gettid();
    if let Err(reason) = move_thread(&mechanism, &dirs, tid) {
        let _ = placed.send(Err(reason));
        return;
    }
    let _ = placed.send(Ok(()));
    for job in jobs {
        job(&runtime);
    }
    // Back to the process's own cgroup(s), so the worker's can be removed.
    let home = match &mechanism {
        Mechanism::V2 { parent } => WorkerDirs { cpu: parent.clone(), cpuacct: None },
        Mechanism::V1 { cpu, cpuacct } => WorkerDirs { cpu: cpu.clone(), cpuacct: cpuacct.clone() },
    };
    if move_thread(&mechanism, &home, tid).is_ok() {
        remove_worker_group(&dirs);
    }
}

/// Moves thread `tid` into `dirs`.
fn move_thread(mechanism: &Mechanism, dirs: &WorkerDirs, tid: libc::c_long) -> Result<(), String> {
    let file = match mechanism {
        Mechanism::V2 { .. } => "cgroup.threads",
        Mechanism::V1 { .. } => "tasks",
    };
    for dir in std::iter::once(&dirs.cpu).chain(dirs.cpuacct.as_ref()) {
        let path = dir.join(file);
        std::fs::write(&path, tid.to_string())
            .map_err(|e| format!("{}: moving thread {tid}: {e}", path.display()))?;
    }
    Ok(())
}

/// The candidate mechanisms for this process, v1 `cpu` first, from `/proc/self/mountinfo` and
/// `/proc/self/cgroup` text.
fn candidates(mountinfo: &str, cgroup: &str) -> Vec<Mechanism> {
    let layout = CgroupLayout::parse(mountinfo, cgroup);
    let mut out = Vec::new();
    if let Some(cpu) = layout.v1("cpu") {
        // Accounting apart from the controller (separate mounts): a twin group there.
        let cpuacct = match layout.v1("cpuacct") {
            Some(acct) if !cpu.mount.has_option("cpuacct") => Some(acct.dir()),
            _ => None,
        };
        out.push(Mechanism::V1 { cpu: cpu.dir(), cpuacct });
    }
    if let Some(v2) = layout.v2() {
        out.push(Mechanism::V2 { parent: v2.dir() });
    }
    out
}

/// Makes (or checks) the directory worker groups go in, after clearing groups of dead processes.
fn prepare(mechanism: &Mechanism) -> Result<WorkerDirs, CgroupUnsupported> {
    let not_writable =
        |path: &Path, reason: String| CgroupUnsupported::NotWritable { path: path.to_owned(), reason };
    match mechanism {
        Mechanism::V1 { cpu, cpuacct } => {
            let mut base =
                WorkerDirs { cpu: cpu.join(format!("wasmpod-{}", std::process::id())), cpuacct: None };
            remove_stale(cpu);
            make_dir(&base.cpu)
                .map_err(|e| not_writable(&base.cpu, format!("cannot create a cgroup: {e}")))?;
            if let Some(acct) = cpuacct {
                remove_stale(acct);
                let dir = acct.join(format!("wasmpod-{}", std::process::id()));
                // Accounting is a convenience: without it the quota still holds.
                if make_dir(&dir).is_ok() {
                    base.cpuacct = Some(dir);
                }
            }
            Ok(base)
        }
        Mechanism::V2 { parent } => {
            let controllers = std::fs::read_to_string(parent.join("cgroup.controllers"))
                .map_err(|e| not_writable(parent, format!("cannot read cgroup.controllers: {e}")))?;
            if !controllers.split_whitespace().any(|c| c == "cpu") {
                return Err(not_writable(
                    parent,
                    "the cpu controller is not available to this cgroup".to_owned(),
                ));
            }
            remove_stale(parent);
            let base =
                WorkerDirs { cpu: parent.join(format!("wasmpod-{}", std::process::id())), cpuacct: None };
            // Threaded first: that turns the process's cgroup into a "domain threaded" root,
            // which may then enable the (threaded) cpu controller although it holds the process.
            make_threaded(&base.cpu).map_err(|reason| not_writable(parent, reason))?;
            enable_cpu(parent).map_err(|reason| not_writable(parent, reason))?;
            enable_cpu(&base.cpu).map_err(|reason| not_writable(parent, reason))?;
            Ok(base)
        }
    }
}

/// Creates one worker's group(s): v1 sets the CFS period (and makes the accounting twin), v2
/// makes the group threaded (its `cpu.max` period is the default 100 ms).
fn make_worker_group(mechanism: &Mechanism, dirs: &WorkerDirs) -> Result<(), String> {
    let at = |path: &Path, e: io::Error| format!("{}: {e}", path.display());
    match mechanism {
        Mechanism::V1 { .. } => {
            make_dir(&dirs.cpu).map_err(|e| at(&dirs.cpu, e))?;
            let period = dirs.cpu.join("cpu.cfs_period_us");
            std::fs::write(&period, CGROUP_CPU_PERIOD.as_micros().to_string()).map_err(|e| at(&period, e))?;
            if let Some(acct) = &dirs.cpuacct {
                make_dir(acct).map_err(|e| at(acct, e))?;
            }
        }
        Mechanism::V2 { .. } => make_threaded(&dirs.cpu)?,
    }
    Ok(())
}

/// v2: creates `dir` as a threaded cgroup.
fn make_threaded(dir: &Path) -> Result<(), String> {
    make_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let kind = dir.join("cgroup.type");
    if std::fs::read_to_string(&kind).is_ok_and(|t| t.trim() == "threaded") {
        return Ok(());
    }
    std::fs::write(&kind, "threaded").map_err(|e| format!("{}: {e}", kind.display()))
}

/// v2: enables the cpu controller for the children of `dir`.
fn enable_cpu(dir: &Path) -> Result<(), String> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).unwrap_or_default();
    if enabled.split_whitespace().any(|c| c == "cpu") {
        return Ok(());
    }
    std::fs::write(&control, "+cpu").map_err(|e| format!("{}: {e}", control.display()))
}

fn remove_worker_group(dirs: &WorkerDirs) {
    let _ = std::fs::remove_dir(&dirs.cpu);
    if let Some(acct) = &dirs.cpuacct {
        let _ = std::fs::remove_dir(acct);
    }
}

/// Removes `wasmpod-<pid>` groups (and their `w<N>` children) whose process is gone. A group
/// still holding threads cannot be removed and is left alone.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(stale_pid) else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(children) = std::fs::read_dir(entry.path()) {
            for child in children.flatten().filter(|c| c.path().is_dir()) {
                let _ = std::fs::remove_dir(child.path());
            }
        }
        if std::fs::remove_dir(entry.path()).is_ok() {
            tracing::info!(cgroup = %entry.path().display(), "removed a cgroup left by an exited wasmpod");
        }
    }
}

/// The pid in a `wasmpod-<pid>` (or `wasmpod-<pid>-...`) group name.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("wasmpod-")?;
    rest.split('-').next()?.parse().ok()
}

fn make_dir(path: &Path) -> io::Result<()> {
    match std::fs::create_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// A quota in microseconds per [`CGROUP_CPU_PERIOD`] (`millicores` × 100), at least the
/// kernel's 1 ms.
fn quota_us(millicores: u32) -> u64 {
    (u64::from(millicores) * CGROUP_CPU_PERIOD.as_micros() as u64 / 1000).max(MIN_QUOTA_US)
}

/// The v2 `cpu.max` line: `<quota> <period>`.
fn cpu_max(quota_us: u64) -> String {
    format!("{quota_us} {}", CGROUP_CPU_PERIOD.as_micros())
}

fn gettid() -> libc::c_long {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";

    #[test]
    fn hybrid_hosts_offer_v1_cpu_with_separate_accounting_then_v2() {
        let cgroup = "2:cpuacct:/\n1:cpu:/pod\n0::/\n";
        let found = candidates(HYBRID_MOUNTINFO, cgroup);
        assert_eq!(
            found,
            vec![
                Mechanism::V1 {
                    cpu: PathBuf::from("/sys/fs/cgroup/cpu/pod"),
                    cpuacct: Some(PathBuf::from("/sys/fs/cgroup/cpuacct")),
                },
                Mechanism::V2 { parent: PathBuf::from("/sys/fs/cgroup/unified") },
            ]
        );
    }

    #[test]
    fn comounted_cpu_and_cpuacct_need_no_twin() {
        let mountinfo = "31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct";
        let found = candidates(mountinfo, "3:cpu,cpuacct:/kubepods/pod1\n");
        assert_eq!(
            found,
            vec![Mechanism::V1 {
                cpu: PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1"),
                cpuacct: None
            }]
        );
    }

    #[test]
    fn a_v2_only_host_inside_a_namespace_maps_the_mount_root() {
        let mountinfo = "40 35 0:30 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw";
        let found = candidates(mountinfo, "0::/kubepods/pod1/ctr\n");
        assert_eq!(found, vec![Mechanism::V2 { parent: PathBuf::from("/sys/fs/cgroup/ctr") }]);
        assert!(candidates("", "").is_empty());
    }

    #[test]
    fn quotas_are_a_share_of_the_100_ms_period() {
        assert_eq!(quota_us(250), 25_000);
        assert_eq!(quota_us(1000), 100_000);
        assert_eq!(quota_us(2500), 250_000);
        assert_eq!(quota_us(1), MIN_QUOTA_US);
        assert_eq!(cpu_max(25_000), "25000 100000");
    }

    #[test]
    fn stale_group_names_carry_their_pid() {
        assert_eq!(stale_pid("wasmpod-1234"), Some(1234));
        assert_eq!(stale_pid("wasmpod-1234-probe"), Some(1234));
        assert_eq!(stale_pid("libpod_parent"), None);
        assert_eq!(stale_pid("wasmpod-x"), None);
    }
}
