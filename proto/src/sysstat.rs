//! Live system figures a service reports to the conscience: CPU idle %, I/O idle % of
//! the device holding a path, free space % of the file system holding a path.

use std::path::{Path, PathBuf};
use std::time::Instant;

/// Samples CPU and disk counters; each call to [`SysStats::sample`] returns the
/// figures over the interval since the previous call.
pub struct SysStats {
    volume: Option<PathBuf>,
    last_cpu: Option<(u64, u64)>,
    last_io: Option<(u64, Instant)>,
    disk_stat_file: Option<PathBuf>,
}

/// One sample of the figures, in percent (0..=100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// CPU idle percentage over the last interval.
    pub cpu_idle: f64,
    /// Percentage of the last interval the device was not busy.
    pub io_idle: f64,
    /// Free percentage of the file system (min of blocks and inodes).
    pub space_free: f64,
}

impl SysStats {
    /// Stats for a service whose data lives under `volume` (None: no volume, space
    /// and io report 100).
    pub fn new(volume: Option<&Path>) -> Self {
        let disk_stat_file = volume.and_then(disk_stat_path);
        let mut s = SysStats {
            volume: volume.map(Path::to_path_buf),
            last_cpu: None,
            last_io: None,
            disk_stat_file,
        };
        let _ = s.sample();
        s
    }

    /// Figures since the previous sample.
    pub fn sample(&mut self) -> Sample {
        let cpu_idle = match read_cpu() {
            Some((idle, total)) => {
                let pct = match self.last_cpu {
                    Some((li, lt)) if total > lt => {
                        100.0 * (idle.saturating_sub(li)) as f64 / (total - lt) as f64
                    }
                    _ => 100.0,
                };
                self.last_cpu = Some((idle, total));
                pct
            }
            None => 100.0,
        };
        let io_idle = match self.disk_stat_file.as_deref().and_then(read_io_ticks) {
            Some(ticks) => {
                let now = Instant::now();
                let pct = match self.last_io {
                    Some((lt, at)) => {
                        let elapsed_ms = now.duration_since(at).as_millis() as f64;
                        if elapsed_ms > 0.0 {
                            100.0 - 100.0 * (ticks.saturating_sub(lt)) as f64 / elapsed_ms
                        } else {
                            100.0
                        }
                    }
                    None => 100.0,
                };
                self.last_io = Some((ticks, now));
                pct
            }
            None => 100.0,
        };
        let space_free = self
            .volume
            .as_deref()
            .and_then(space_free_pct)
            .unwrap_or(100.0);
        Sample {
            cpu_idle: cpu_idle.clamp(0.0, 100.0),
            io_idle: io_idle.clamp(0.0, 100.0),
            space_free: space_free.clamp(0.0, 100.0),
        }
    }
}

/// (idle + iowait, total) jiffies from the first line of /proc/stat.
fn read_cpu() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    if nums.len() < 5 {
        return None;
    }
    let idle = nums[3] + nums[4];
    let total = nums.iter().take(8).sum();
    Some((idle, total))
}

/// `/sys/dev/block/MAJ:MIN/stat` of the device holding `path`.
fn disk_stat_path(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let p = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
    p.exists().then_some(p)
}

/// Milliseconds spent doing I/O (field 10 of the block stat file).
fn read_io_ticks(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().nth(9)?.parse().ok()
}

/// Free percentage of the file system holding `path`: min of blocks and inodes.
pub fn space_free_pct(path: &Path) -> Option<f64> {
    let st = statvfs(path)?;
    if st.f_blocks == 0 {
        return None;
    }
    let blocks = 100.0 * st.f_bavail as f64 / st.f_blocks as f64;
    let inodes = if st.f_files > 0 {
        100.0 * st.f_favail as f64 / st.f_files as f64
    } else {
        100.0
    };
    Some(blocks.min(inodes))
}

/// Bytes an unprivileged writer may still add to the file system holding `path`.
pub fn space_avail_bytes(path: &Path) -> Option<u64> {
    let st = statvfs(path)?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

fn statvfs(path: &Path) -> Option<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes into the zeroed struct we pass; `c` is a valid
    // NUL-terminated path for the duration of the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then_some(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_percentages() {
        let dir = std::env::temp_dir();
        let mut s = SysStats::new(Some(&dir));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let x = s.sample();
        for v in [x.cpu_idle, x.io_idle, x.space_free] {
            assert!((0.0..=100.0).contains(&v), "{x:?}");
        }
        assert!(space_free_pct(&dir).is_some());
        assert!(space_avail_bytes(&dir).is_some_and(|b| b > 0));
    }
}
