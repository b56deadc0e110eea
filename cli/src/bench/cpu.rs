//! CPU time of this process (`getrusage`) and of the threads whose names start with a
//! prefix (`/proc/self/task/*/stat`), so `--local` can tell the in-process rawx's CPU
//! from the client's.

use std::time::Duration;

/// Most threads read from `/proc/self/task`.
const MAX_THREADS: usize = 4096;

/// User plus system CPU time of the whole process so far.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// User plus system CPU time of this process's live threads named `prefix*`
/// (zero where /proc is not readable).
pub fn threads_cpu(prefix: &str) -> Duration {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        return Duration::ZERO;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut total_ticks = 0u64;
    for entry in dir.flatten().take(MAX_THREADS) {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((name, t)) = parse_stat(&stat) {
            if name.starts_with(prefix) {
                total_ticks += t;
            }
        }
    }
    Duration::from_secs_f64(total_ticks as f64 / ticks as f64)
}

/// The thread name and utime + stime ticks of one `/proc/.../stat` line.
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    // Fields after the name start at field 3 (state); utime and stime are 14 and 15.
    let mut rest = stat.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((name, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse() {
        let line = "1234 (rawx-w0) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(("rawx-w0", 300)));
        assert_eq!(
            parse_stat("12 (a) b) R 1 2 3 4 5 6 7 8 9 10 1 2"),
            Some(("a) b", 3))
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn process_cpu_grows_with_work() {
        let before = process_cpu();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut x = 0u64;
        while process_cpu() <= before && std::time::Instant::now() < deadline {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        assert!(process_cpu() > before);
    }
}
