//! How much memory a check may use, and how much it uses.
//!
//! A breadth-first search keeps its whole frontier in memory, and a configuration one size too
//! big outgrows any machine within a minute. Without a limit the kernel kills the checker and
//! the user gets nothing; with one, the check stops, says why, and reports what it settled
//! (the unsettled properties are UNKNOWN).
//!
//! Both figures come from `/proc` (Linux). Where it cannot be read there is no default limit
//! and an explicit one cannot be enforced; [`resident_bytes`] then returns `None`.

use std::fs;

/// The share of the memory available at start that a check may use by default: the rest is
/// for the reports, the other programs on the machine, and the allocator's slack.
pub const DEFAULT_SHARE_PERCENT: u64 = 80;

/// The smallest limit accepted: below it not even the small test configurations fit.
pub const LIMIT_MIN_BYTES: u64 = 64 << 20;

/// This process's resident memory, in bytes.
pub fn resident_bytes() -> Option<u64> {
    kib_field(&fs::read_to_string("/proc/self/status").ok()?, "VmRSS:")
}

/// Memory the system can give without swapping, in bytes.
pub fn available_bytes() -> Option<u64> {
    kib_field(&fs::read_to_string("/proc/meminfo").ok()?, "MemAvailable:")
}

/// The default limit: [`DEFAULT_SHARE_PERCENT`] of the memory available now, if known.
pub fn default_limit() -> Option<u64> {
    available_bytes().map(|a| (a / 100 * DEFAULT_SHARE_PERCENT).max(LIMIT_MIN_BYTES))
}

/// Whether a limit can be enforced on this system.
pub fn can_measure() -> bool {
    resident_bytes().is_some()
}

/// A `Name:   123 kB` line's value in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// `bytes` as GiB with one decimal, for messages.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read_in_bytes() {
        let status = "Name:\ttenure\nVmPeak:\t  2000 kB\nVmRSS:\t  1536 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(1536 * 1024));
        assert_eq!(kib_field(status, "VmSwap:"), None);
        assert_eq!(kib_field("VmRSS: lots kB", "VmRSS:"), None);
    }

    #[test]
    fn this_process_is_measured_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = resident_bytes().expect("/proc/self/status has VmRSS on Linux");
            assert!(rss > 0);
            let limit = default_limit().expect("/proc/meminfo has MemAvailable on Linux");
            assert!(limit >= LIMIT_MIN_BYTES);
        }
    }
}
