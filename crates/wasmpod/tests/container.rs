//! The container image of `deploy/build-image.sh`, end to end: its OCI archive's config (what
//! Kubernetes and Knative rely on), and, where podman and runc are installed, the container itself:
//! a 200 from a function and from `/readyz` through a published loopback port, then `podman stop`
//! (SIGTERM) drains it and it exits 0.
//!
//! The archive is `target/image/wasmpod-oci.tar` (or `$WASMPOD_IMAGE_ARCHIVE`). Without it, or
//! without podman and runc, each test says why it does not run; with
//! `WASMPOD_CONTAINER_TEST=require` (CI, after building the image) it fails instead.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde::Deserialize;
use support::Request;

fn archive() -> PathBuf {
    match std::env::var_os("WASMPOD_IMAGE_ARCHIVE") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/image/wasmpod-oci.tar"),
    }
}

/// Says why a test does not run, or fails when CI requires it to run.
fn unavailable(why: &str) {
    let required = std::env::var("WASMPOD_CONTAINER_TEST").is_ok_and(|v| v == "require");
    assert!(!required, "WASMPOD_CONTAINER_TEST=require, but {why}");
    eprintln!("not run: {why}");
}

/// The parts of an OCI image config (image-spec `config.json`) a cluster depends on.
#[derive(Debug, Deserialize)]
struct ImageConfig {
    architecture: String,
    os: String,
    config: ContainerConfig,
    rootfs: RootFs,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig {
    user: String,
    #[serde(default)]
    exposed_ports: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    entrypoint: Vec<String>,
    #[serde(default)]
    cmd: Vec<String>,
    #[serde(default)]
    volumes: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    digest: String,
    size: u64,
}

/// One file of the archive, read with `tar` (an OCI archive is an OCI image layout in a tar).
fn archive_file(archive: &Path, member: &str) -> Vec<u8> {
    let output = Command::new("tar").arg("-xOf").arg(archive).arg(member).output().expect("run tar");
    assert!(output.status.success(), "{member}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn blob<T: serde::de::DeserializeOwned>(archive: &Path, digest: &str) -> T {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let bytes = archive_file(archive, &format!("blobs/sha256/{hex}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{digest}: {e}"))
}

#[test]
fn the_image_archive_is_a_non_root_knative_ready_image() {
    let archive = archive();
    if !archive.exists() {
        return unavailable(&format!(
            "no image archive at {} (run deploy/build-image.sh)",
            archive.display()
        ));
    }
    let index: Index = serde_json::from_slice(&archive_file(&archive, "index.json")).expect("index.json");
    let [manifest] = index.manifests.as_slice() else { panic!("one image in the archive: {index:?}") };
    let manifest: Manifest = blob(&archive, &manifest.digest);
    let image: ImageConfig = blob(&archive, &manifest.config.digest);
    let config = &image.config;

    assert_eq!((image.os.as_str(), image.architecture.as_str()), ("linux", "amd64"));
    assert_eq!(config.entrypoint, ["/usr/local/bin/wasmpod"]);
    assert_eq!(config.cmd, ["serve", "/functions"]);
    // Numeric and not root: Kubernetes' runAsNonRoot can check it without an /etc/passwd.
    let (uid, _gid) = config.user.split_once(':').unwrap_or((&config.user, ""));
    let uid: u32 = uid.parse().unwrap_or_else(|_| panic!("a numeric user, not {:?}", config.user));
    assert_ne!(uid, 0, "the image runs as root");
    assert_eq!(config.exposed_ports.keys().collect::<Vec<_>>(), ["8080/tcp"]);
    for env in ["PORT=8080", "WASMPOD_CACHE_DIR=/cache"] {
        assert!(config.env.iter().any(|e| e == env), "{env} missing from {:?}", config.env);
    }
    assert_eq!(config.volumes.keys().collect::<Vec<_>>(), ["/cache", "/functions"]);
    assert_eq!(image.rootfs.diff_ids.len(), manifest.layers.len());

    let compressed: u64 = manifest.layers.iter().map(|l| l.size).sum();
    println!(
        "image archive {}: {} layer(s), {:.1} MB compressed, user {}",
        archive.display(),
        manifest.layers.len(),
        compressed as f64 / 1e6,
        config.user
    );
}

/// `podman ...` with the settings these machines need (deploy/README.md): runc, and no default
/// ulimits.
fn podman(conf: &Path, args: &[&str]) -> Output {
    Command::new("podman")
        .env("CONTAINERS_CONF", conf)
        .args(["--runtime", "runc"])
        .args(args)
        .output()
        .expect("run podman")
}

fn podman_ok(conf: &Path, args: &[&str]) -> String {
    let output = podman(conf, args);
    assert!(output.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn installed(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Removes the test's container, whatever happens.
struct Container<'c> {
    conf: &'c Path,
    name: String,
}

impl Container<'_> {
    fn logs(&self) -> String {
        let output = podman(self.conf, &["logs", &self.name]);
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
    }

    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            assert!(Instant::now() < deadline, "the container never logged {needle:?}:\n{logs}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = podman(self.conf, &["rm", "--force", &self.name]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_serves_then_drains_on_podman_stop() {
    let archive = archive();
    let missing: Vec<&str> = ["podman", "runc"].into_iter().filter(|t| !installed(t)).collect();
    if !missing.is_empty() {
        return unavailable(&format!(
            "{} not installed (apt-get install -y podman runc)",
            missing.join(" and ")
        ));
    }
    if !archive.exists() {
        return unavailable(&format!(
            "no image archive at {} (run deploy/build-image.sh)",
            archive.display()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("containers.conf");
    std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();

    let loaded = podman_ok(&conf, &["load", "--quiet", "--input", archive.to_str().unwrap()]);
    let image = loaded.lines().find_map(|l| l.split_once(": ")).map(|(_, i)| i.trim().to_owned());
    let image = image.unwrap_or_else(|| panic!("podman load named no image: {loaded}"));
    let name = format!("wasmpod-test-{}", std::process::id());
    let container = Container { conf: &conf, name: name.clone() };
    // A short drain period, through its environment twin; the stop timeout leaves room for it.
    podman_ok(
        &conf,
        &[
            "run",
            "--detach",
            "--name",
            &name,
            "--publish",
            "127.0.0.1::8080",
            "--env",
            "WASMPOD_DRAIN_SECONDS=3",
            &image,
        ],
    );
    let logs = container.wait_for_log("Ready: serving on http://0.0.0.0:8080");
    assert!(logs.contains("from_cache=2 compiled=0"), "the image's cache is warm:\n{logs}");
    let port = podman_ok(&conf, &["port", &name, "8080/tcp"]);
    let addr: std::net::SocketAddr = port.trim().parse().unwrap_or_else(|_| panic!("podman port: {port:?}"));

    let r = support::send(addr, Request::get("/hello")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "Hello from wasmpod!\n"));
    let r = support::send(addr, Request::get("/readyz")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));

    // `podman stop` sends SIGTERM and waits; the pod fails readiness but keeps serving.
    let stop = {
        let (conf, name) = (conf.clone(), name.clone());
        std::thread::spawn(move || podman(&conf, &["stop", "--time", "30", &name]))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = support::try_send(addr, Request::get("/readyz")).await;
        let r = r.unwrap_or_else(|e| panic!("no drain period: {e} after podman stop\n{}", container.logs()));
        if r.status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never answered 503 after podman stop");
    }
    let r = support::send(addr, Request::get("/hello")).await;
    assert_eq!(r.status, 200, "served during the drain period");
    let stopped = stop.join().unwrap();
    assert!(stopped.status.success(), "podman stop: {}", String::from_utf8_lossy(&stopped.stderr));
    let exit = podman_ok(&conf, &["inspect", "--format", "{{.State.ExitCode}}", &name]);
    let logs = container.logs();
    assert_eq!(exit.trim(), "0", "exit code (137 would mean podman had to kill it):\n{logs}");
    for line in ["SIGTERM received", "draining: /readyz answers 503", "all requests finished; exiting"] {
        assert!(logs.contains(line), "{line:?} missing:\n{logs}");
    }
    println!("container {name} from {image}: 200 from /hello and /readyz, drained on podman stop, exit 0");
}
