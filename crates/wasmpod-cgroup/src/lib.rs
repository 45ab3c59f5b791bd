//! Where this process's cgroups are: the cgroup mounts of `/proc/self/mountinfo`, this process's
//! cgroup in each hierarchy from `/proc/self/cgroup`, and the directory that joins the two.
//!
//! It must never depend on another wasmpod crate, nor do I/O: the callers read the two files and
//! hand it their text, so every layout (hybrid hosts, containers with and without a cgroup
//! namespace) is a table test. It sits under `wasmpod-admission` (the pod's CPU sampler finds
//! its usage file here) and `wasmpod-runtime` (`--cgroup-cpu` finds where to make its worker
//! cgroups), which do not depend on each other.
//!
//! ```
//! use std::path::PathBuf;
//! use wasmpod_cgroup::CgroupLayout;
//!
//! let mountinfo = "40 35 0:30 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
//! let layout = CgroupLayout::parse(mountinfo, "0::/kubepods/pod1/ctr\n");
//! let v2 = layout.v2().expect("a cgroup2 mount and a 0:: line");
//! assert_eq!(v2.dir(), PathBuf::from("/sys/fs/cgroup/ctr"));
//! ```

#![warn(missing_docs)]

use std::path::PathBuf;

/// This process's view of the cgroup hierarchies: every mount of `/proc/self/mountinfo` and every
/// line of `/proc/self/cgroup`, parsed once.
#[derive(Debug, Clone, Default)]
pub struct CgroupLayout {
    mounts: Vec<Mount>,
    memberships: Vec<Membership>,
}

/// One line of `/proc/self/cgroup`: `id:controllers:path`.
#[derive(Debug, Clone)]
struct Membership {
    id: String,
    controllers: String,
    path: String,
}

impl CgroupLayout {
    /// Parses the text of `/proc/self/mountinfo` and `/proc/self/cgroup`. Lines that do not parse
    /// are skipped; empty text (no `/proc`) gives a layout with no hierarchy.
    pub fn parse(mountinfo: &str, cgroup: &str) -> CgroupLayout {
        let mounts = mountinfo.lines().filter_map(Mount::parse).collect();
        let memberships = cgroup
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                Some(Membership {
                    id: id.to_owned(),
                    controllers: controllers.to_owned(),
                    path: path.to_owned(),
                })
            })
            .collect();
        CgroupLayout { mounts, memberships }
    }

    /// The v1 hierarchy that holds `controller` (`cpu`, `cpuacct`, ...): the first `cgroup` mount
    /// with that option and the first `/proc/self/cgroup` line that lists it; `None` unless both
    /// are there.
    pub fn v1(&self, controller: &str) -> Option<Hierarchy<'_>> {
        let mount = self.mounts.iter().find(|m| m.fstype == "cgroup" && m.has_option(controller))?;
        let path = self
            .memberships
            .iter()
            .find(|m| m.controllers.split(',').any(|c| c == controller))
            .map(|m| m.path.as_str())?;
        Some(Hierarchy { mount, path })
    }

    /// The unified (v2) hierarchy: the first `cgroup2` mount and the `0::` line; `None` unless
    /// both are there.
    pub fn v2(&self) -> Option<Hierarchy<'_>> {
        let mount = self.mounts.iter().find(|m| m.fstype == "cgroup2")?;
        let path = self
            .memberships
            .iter()
            .find(|m| m.id == "0" && m.controllers.is_empty())
            .map(|m| m.path.as_str())?;
        Some(Hierarchy { mount, path })
    }
}

/// One hierarchy as this process sees it: where it is mounted, and this process's cgroup in it.
#[derive(Debug, Clone, Copy)]
pub struct Hierarchy<'a> {
    /// The hierarchy's mount.
    pub mount: &'a Mount,
    /// This process's cgroup, as `/proc/self/cgroup` gives it (from the hierarchy's root).
    pub path: &'a str,
}

impl Hierarchy<'_> {
    /// The directory of this process's cgroup: [`Mount::dir_of`] its path.
    pub fn dir(&self) -> PathBuf {
        self.mount.dir_of(self.path)
    }
}

/// One line of `/proc/self/mountinfo`, the fields a cgroup lookup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory of the hierarchy mounted here (`/` unless only a subtree is: a container
    /// without a cgroup namespace sees its own cgroup's directory mounted).
    pub root: String,
    /// Where it is mounted.
    pub point: PathBuf,
    /// `cgroup` (v1), `cgroup2`, or another file system.
    pub fstype: String,
    /// The super options, comma-separated: a v1 hierarchy lists its controllers here.
    pub options: String,
}

impl Mount {
    /// Parses `id parent major:minor root point opts [optional...] - fstype source super-opts`,
    /// undoing the octal escapes of the root and mount point.
    pub fn parse(line: &str) -> Option<Mount> {
        let (left, right) = line.split_once(" - ")?;
        let mut left = left.split(' ');
        let root = left.nth(3)?;
        let point = left.next()?;
        let mut right = right.split(' ');
        let fstype = right.next()?;
        let options = right.nth(1)?;
        Some(Mount {
            root: unescape(root),
            point: PathBuf::from(unescape(point)),
            fstype: fstype.to_owned(),
            options: options.to_owned(),
        })
    }

    /// Whether the super options list `option` (a v1 controller name, for instance).
    pub fn has_option(&self, option: &str) -> bool {
        self.options.split(',').any(|o| o == option)
    }

    /// The directory of the cgroup at `path` (from `/proc/self/cgroup`) under this mount: the
    /// mount's root is stripped from the path first.
    pub fn dir_of(&self, path: &str) -> PathBuf {
        let relative =
            if self.root == "/" { path } else { path.strip_prefix(self.root.as_str()).unwrap_or(path) };
        self.point.join(relative.trim_start_matches('/'))
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/plain\x"), r"/plain\x");
    }

    #[test]
    fn a_mount_line_gives_root_point_type_and_super_options() {
        let mount = Mount::parse(
            r"31 30 0:27 /a\040b /sys/fs/cgroup/c\040d rw shared:9 - cgroup cgroup rw,cpu,cpuacct",
        )
        .expect("parses");
        assert_eq!(
            mount,
            Mount {
                root: "/a b".to_owned(),
                point: PathBuf::from("/sys/fs/cgroup/c d"),
                fstype: "cgroup".to_owned(),
                options: "rw,cpu,cpuacct".to_owned(),
            }
        );
        assert!(mount.has_option("cpu") && mount.has_option("cpuacct") && !mount.has_option("cpuset"));
        // The root is stripped as the cgroup file writes it (unescaped).
        assert_eq!(mount.dir_of("/a b/ctr"), PathBuf::from("/sys/fs/cgroup/c d/ctr"));
        assert!(Mount::parse("no separator here").is_none());
        assert!(Mount::parse("1 2 3 - cgroup2").is_none());
    }

    #[test]
    fn each_hierarchy_joins_its_mount_and_this_process_path() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
        let layout = CgroupLayout::parse(mountinfo, "2:cpuacct:/\n1:cpu:/pod\n0::/\n");
        let dir = |h: Option<Hierarchy<'_>>| h.map(|h| h.dir());
        assert_eq!(dir(layout.v1("cpu")), Some(PathBuf::from("/sys/fs/cgroup/cpu/pod")));
        assert_eq!(dir(layout.v1("cpuacct")), Some(PathBuf::from("/sys/fs/cgroup/cpuacct")));
        assert_eq!(dir(layout.v2()), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        // Mounted but this process is in no cgroup of it, or the other way round.
        assert!(layout.v1("memory").is_none());
        assert!(CgroupLayout::parse(mountinfo, "").v2().is_none());
        assert!(CgroupLayout::parse("", "0::/x\n").v2().is_none());
        assert!(CgroupLayout::parse("", "").v1("cpu").is_none());
    }
}
