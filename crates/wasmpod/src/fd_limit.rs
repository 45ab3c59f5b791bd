//! The process's file descriptor limit: raised to its hard ceiling at start, and the share of it
//! client connections may take (the rest is kept for guests' files, the artifact cache, logs and
//! outbound calls), so that no flood of connections can leave the pod without descriptors.

/// Raises the soft `RLIMIT_NOFILE` to the hard one (as Go's runtime does at start: the soft
/// default of 1024 is a relic of `select`), and returns the soft limit now in force.
pub fn raise() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes to the struct we pass, which lives on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    // An unlimited hard limit is not a number the kernel accepts as soft (nr_open caps it).
    let target = if limit.rlim_max == libc::RLIM_INFINITY { 1 << 20 } else { limit.rlim_max };
    if limit.rlim_cur < target {
        let raised = libc::rlimit { rlim_cur: target, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = target;
        }
    }
    Some(limit.rlim_cur)
}

/// How many connections fit in a descriptor limit of `fd_limit`: all but a reserve of 1,024 (half
/// the limit when it is that small) for everything else the pod opens.
pub fn connections_within(fd_limit: u64) -> usize {
    let reserve = (fd_limit / 2).min(1024);
    usize::try_from(fd_limit - reserve).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_a_reserve_of_descriptors() {
        assert_eq!(connections_within(1024), 512);
        assert_eq!(connections_within(20_000), 18_976);
        assert_eq!(connections_within(1 << 20), (1 << 20) - 1024);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let soft = raise().expect("getrlimit works on Linux");
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as in `raise`.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!(limit.rlim_cur, soft);
        assert!(limit.rlim_max == libc::RLIM_INFINITY || soft == limit.rlim_max);
    }
}
