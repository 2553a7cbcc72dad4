//! The VM's load, memory and disk, from `/proc` and `statvfs`.

use std::path::Path;

use super::protocol::SystemStats;

/// Reads what it can; what it cannot read stays `None`.
/// Linux only (the block counts are `u64` there).
pub fn read(disk: &Path) -> SystemStats {
    let (load1, load5, load15) = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| parse_loadavg(&s))
        .map_or((None, None, None), |(a, b, c)| (Some(a), Some(b), Some(c)));
    let (memory_total_bytes, memory_available_bytes) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .map_or((None, None), |s| parse_meminfo(&s));
    let (disk_total_bytes, disk_available_bytes) = match nix::sys::statvfs::statvfs(disk) {
        Ok(st) => {
            let frag = st.fragment_size();
            (Some(st.blocks() * frag), Some(st.blocks_available() * frag))
        }
        Err(_) => (None, None),
    };
    SystemStats {
        cpus: std::thread::available_parallelism()
            .ok()
            .map(|n| n.get() as u32),
        load1,
        load5,
        load15,
        memory_total_bytes,
        memory_available_bytes,
        disk_path: Some(disk.display().to_string()),
        disk_total_bytes,
        disk_available_bytes,
    }
}

/// `/proc/loadavg`: `0.52 0.58 0.59 1/467 12345`.
pub fn parse_loadavg(s: &str) -> Option<(f64, f64, f64)> {
    let mut it = s.split_whitespace().map(str::parse::<f64>);
    Some((it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?))
}

/// `/proc/meminfo`: `MemTotal` and `MemAvailable`, in bytes.
pub fn parse_meminfo(s: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        s.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kib * 1024)
        })
    };
    (field("MemTotal"), field("MemAvailable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg_and_meminfo_samples_are_parsed() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/467 12345\n"),
            Some((0.52, 0.58, 0.59))
        );
        assert_eq!(parse_loadavg("garbage"), None);
        let meminfo = "MemTotal:       16303420 kB\nMemFree:  1 kB\nMemAvailable:   9000000 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            (Some(16_303_420 * 1024), Some(9_000_000 * 1024))
        );
        assert_eq!(parse_meminfo(""), (None, None));
    }

    #[test]
    fn this_machine_reports_memory_and_disk() {
        let stats = read(Path::new("/"));
        assert!(stats.cpus.unwrap() >= 1);
        assert!(stats.memory_total_bytes.unwrap() > 0);
        assert!(stats.disk_total_bytes.unwrap() >= stats.disk_available_bytes.unwrap());
        assert!(stats.load1.is_some());
    }
}
