//! The VPS's own figures inside, as LXCFS gives them to LXC and the OpenVZ
//! kernel gave them natively: `/proc/meminfo` and `/proc/swaps` from its
//! memory limits and usage, `/proc/cpuinfo`, `/proc/stat` and
//! `/sys/devices/system/cpu/online` cut to its CPUs, `/proc/uptime` since
//! it started, `/proc/loadavg` from its own tasks, and its beancounters.
//!
//! Served read-only by a process per VPS (`vzctl __procview CTID`, in the
//! host's namespaces) over FUSE, on a mount made with the new mount API
//! that is attached nowhere on the host ([`crate::sys::fusemount`]): init
//! binds each file over the real one inside its own mount namespace. The
//! file system has one flat directory of regular files and no links, so no
//! path leads anywhere else. When the VPS stops, its mounts go, the FUSE
//! connection ends and the process exits; killed, it leaves no mount on
//! the host.
//!
//! The renderers here are pure functions of the numbers read.

pub mod fs;

use crate::cgroup::{beancounters, Controller, VpsCgroup};
use std::time::Instant;

/// The files, and where init puts each inside.
pub const FILES: &[(&str, &str)] = &[
    ("meminfo", "/proc/meminfo"),
    ("swaps", "/proc/swaps"),
    ("cpuinfo", "/proc/cpuinfo"),
    ("stat", "/proc/stat"),
    ("uptime", "/proc/uptime"),
    ("loadavg", "/proc/loadavg"),
    ("cpu_online", "/sys/devices/system/cpu/online"),
    // procfs takes no new names: beside it, in the VPS's own /dev.
    ("user_beancounters", "/dev/user_beancounters"),
];

/// The hidden vzctl subcommand that serves the view.
pub const SUBCOMMAND: &str = "__procview";
/// The fd its FUSE connection arrives on.
pub const DEVICE_FD: i32 = 3;

/// A VPS's memory, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    pub limit: u64,
    pub usage: u64,
    pub cache: u64,
    pub shmem: u64,
    pub active_anon: u64,
    pub inactive_anon: u64,
    pub active_file: u64,
    pub inactive_file: u64,
    pub unevictable: u64,
    pub mapped: u64,
    pub dirty: u64,
    pub writeback: u64,
    pub anon: u64,
    pub swap_limit: u64,
    pub swap_usage: u64,
}

/// `/proc/meminfo`'s `key:  N kB` lines, as numbers of bytes.
pub fn host_meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| {
            v.split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
                .map(|n| n * 1024)
        })?
    })
}

fn stat_value(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

fn num(s: Option<String>) -> Option<u64> {
    s.and_then(|t| t.trim().parse().ok())
}

impl Memory {
    /// From the cgroup; no limit is the host's own memory or swap.
    pub fn read(cg: &VpsCgroup, host: &str) -> Memory {
        let host_total = host_meminfo(host, "MemTotal").unwrap_or(u64::MAX);
        let host_swap = host_meminfo(host, "SwapTotal").unwrap_or(0);
        let m = |f: &str| cg.read(Controller::Memory, f);
        let stat = m("memory.stat").unwrap_or_default();
        let mut out = Memory::default();
        if cg.v2 {
            out.limit = num(m("memory.max")).unwrap_or(u64::MAX);
            out.usage = num(m("memory.current")).unwrap_or(0);
            out.cache = stat_value(&stat, "file");
            out.anon = stat_value(&stat, "anon");
            out.mapped = stat_value(&stat, "file_mapped");
            out.dirty = stat_value(&stat, "file_dirty");
            out.writeback = stat_value(&stat, "file_writeback");
            out.swap_limit = num(m("memory.swap.max")).unwrap_or(u64::MAX);
            out.swap_usage = num(m("memory.swap.current")).unwrap_or(0);
            for (field, key) in [
                (&mut out.shmem, "shmem"),
                (&mut out.active_anon, "active_anon"),
                (&mut out.inactive_anon, "inactive_anon"),
                (&mut out.active_file, "active_file"),
                (&mut out.inactive_file, "inactive_file"),
                (&mut out.unevictable, "unevictable"),
            ] {
                *field = stat_value(&stat, key);
            }
        } else {
            out.limit = num(m("memory.limit_in_bytes")).unwrap_or(u64::MAX);
            out.usage = num(m("memory.usage_in_bytes")).unwrap_or(0);
            out.cache = stat_value(&stat, "total_cache");
            out.anon = stat_value(&stat, "total_rss");
            out.mapped = stat_value(&stat, "total_mapped_file");
            out.dirty = stat_value(&stat, "total_dirty");
            out.writeback = stat_value(&stat, "total_writeback");
            for (field, key) in [
                (&mut out.shmem, "total_shmem"),
                (&mut out.active_anon, "total_active_anon"),
                (&mut out.inactive_anon, "total_inactive_anon"),
                (&mut out.active_file, "total_active_file"),
                (&mut out.inactive_file, "total_inactive_file"),
                (&mut out.unevictable, "total_unevictable"),
            ] {
                *field = stat_value(&stat, key);
            }
            // memsw is memory plus swap.
            let both_limit = num(m("memory.memsw.limit_in_bytes")).unwrap_or(u64::MAX);
            let both = num(m("memory.memsw.usage_in_bytes")).unwrap_or(out.usage);
            out.swap_limit = both_limit.saturating_sub(out.limit.min(both_limit));
            if out.limit >= host_total || both_limit >= u64::MAX / 2 {
                out.swap_limit = u64::MAX;
            }
            out.swap_usage = both.saturating_sub(out.usage);
        }
        out.limit = out.limit.min(host_total);
        // SWAPPAGES is shown as set, as OpenVZ's virtual swap was, even
        // on a host without swap; no limit shows the host's.
        if out.swap_limit >= u64::MAX / 2 {
            out.swap_limit = host_swap;
        }
        out.usage = out.usage.min(out.limit);
        out.swap_usage = out.swap_usage.min(out.swap_limit);
        out
    }
}

/// `/proc/meminfo` of the VPS.
pub fn meminfo(m: &Memory) -> String {
    let kb = |b: u64| b / 1024;
    let free = m.limit.saturating_sub(m.usage);
    // What could be had without swapping: the free part and the page cache.
    let available = (free + m.active_file + m.inactive_file).min(m.limit);
    let lines: [(&str, u64); 22] = [
        ("MemTotal", m.limit),
        ("MemFree", free),
        ("MemAvailable", available),
        ("Buffers", 0),
        (
            "Cached",
            m.cache.saturating_sub(m.shmem.min(m.cache)) + m.shmem,
        ),
        ("SwapCached", 0),
        ("Active", m.active_anon + m.active_file),
        ("Inactive", m.inactive_anon + m.inactive_file),
        ("Active(anon)", m.active_anon),
        ("Inactive(anon)", m.inactive_anon),
        ("Active(file)", m.active_file),
        ("Inactive(file)", m.inactive_file),
        ("Unevictable", m.unevictable),
        ("Mlocked", 0),
        ("SwapTotal", m.swap_limit),
        ("SwapFree", m.swap_limit.saturating_sub(m.swap_usage)),
        ("Dirty", m.dirty),
        ("Writeback", m.writeback),
        ("AnonPages", m.anon),
        ("Mapped", m.mapped),
        ("Shmem", m.shmem),
        ("SReclaimable", 0),
    ];
    let mut out = String::new();
    for (k, v) in lines {
        out.push_str(&format!("{:<16}{:>8} kB\n", format!("{k}:"), kb(v)));
    }
    out
}

/// `/proc/swaps` of the VPS: one virtual device of its swap limit.
pub fn swaps(m: &Memory) -> String {
    let mut out = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    if m.swap_limit > 0 {
        out.push_str(&format!(
            "none                                    virtual\t\t{}\t\t{}\t\t-2\n",
            m.swap_limit / 1024,
            m.swap_usage / 1024
        ));
    }
    out
}

/// The host's `/proc/cpuinfo` cut to `cpus`, numbered from 0 as the VPS
/// sees them.
pub fn cpuinfo(host: &str, cpus: &[u32]) -> String {
    let mut out = String::new();
    let mut n = 0;
    for block in host.split("\n\n") {
        let id = block.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "processor").then(|| v.trim().parse::<u32>().ok())?
        });
        let Some(id) = id else { continue };
        if !cpus.contains(&id) {
            continue;
        }
        for l in block.lines() {
            match l.split_once(':') {
                Some((k, _)) if k.trim() == "processor" => {
                    out.push_str(&format!("{k}: {n}\n"));
                }
                _ => {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out.push('\n');
        n += 1;
    }
    out
}

/// The host's `/proc/stat` with only `cpus`' lines, renumbered, and the
/// `cpu` total summed over them.
pub fn stat(host: &str, cpus: &[u32]) -> String {
    let mut per: Vec<Vec<u64>> = Vec::new();
    let mut rest = String::new();
    for l in host.lines() {
        let mut words = l.split_whitespace();
        match words.next() {
            Some("cpu") => {}
            Some(w) if w.starts_with("cpu") => {
                let Ok(id) = w[3..].parse::<u32>() else {
                    continue;
                };
                if cpus.contains(&id) {
                    per.push(words.filter_map(|x| x.parse().ok()).collect());
                }
            }
            _ => {
                rest.push_str(l);
                rest.push('\n');
            }
        }
    }
    let width = per.iter().map(Vec::len).max().unwrap_or(0);
    let total: Vec<u64> = (0..width)
        .map(|i| per.iter().map(|v| v.get(i).copied().unwrap_or(0)).sum())
        .collect();
    let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    let mut out = format!("cpu  {}\n", join(&total));
    for (i, v) in per.iter().enumerate() {
        out.push_str(&format!("cpu{i} {}\n", join(v)));
    }
    out.push_str(&rest);
    out
}

/// `/sys/devices/system/cpu/online` for `n` CPUs.
pub fn cpu_online(n: usize) -> String {
    match n {
        0 | 1 => "0\n".into(),
        n => format!("0-{}\n", n - 1),
    }
}

/// `/proc/uptime`: seconds since the VPS started, and idle CPU seconds
/// (its CPUs' time less what it used).
pub fn uptime(secs: f64, ncpus: usize, used_secs: f64) -> String {
    let idle = (secs * ncpus as f64 - used_secs).max(0.0);
    format!("{secs:.2} {idle:.2}\n")
}

/// Load averages, sampled every 5 s as the kernel does.
#[derive(Debug, Clone, Default)]
pub struct Load {
    pub avg: [f64; 3],
    pub running: usize,
    pub total: usize,
}

/// Seconds between load samples.
pub const LOAD_EVERY: f64 = 5.0;

impl Load {
    /// Fold in a sample of `active` (running or uninterruptible) tasks.
    pub fn sample(&mut self, active: usize, running: usize, total: usize) {
        for (a, period) in self.avg.iter_mut().zip([60.0, 300.0, 900.0]) {
            let e = (-LOAD_EVERY / period).exp();
            *a = *a * e + active as f64 * (1.0 - e);
        }
        self.running = running;
        self.total = total;
    }

    pub fn render(&self) -> String {
        format!(
            "{:.2} {:.2} {:.2} {}/{} 0\n",
            self.avg[0],
            self.avg[1],
            self.avg[2],
            self.running.max(1),
            self.total
        )
    }
}

/// Running and uninterruptible tasks of the VPS, and all of them.
pub fn count_tasks(cg: &VpsCgroup) -> (usize, usize, usize) {
    let file = if cg.v2 { "cgroup.threads" } else { "tasks" };
    let Some(list) = cg
        .dirs
        .iter()
        .find_map(|(_, d)| std::fs::read_to_string(d.join(file)).ok())
    else {
        return (0, 0, 0);
    };
    let (mut active, mut running, mut total) = (0, 0, 0);
    for tid in list.lines() {
        total += 1;
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", tid.trim())) else {
            continue;
        };
        match stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.trim_start().chars().next())
        {
            Some('R') => {
                running += 1;
                active += 1;
            }
            Some('D') => active += 1,
            _ => {}
        }
    }
    (active, running, total)
}

/// What the view serves from: the VPS's cgroup, when it started, its load.
pub struct Source {
    pub ctid: u32,
    pub cg: VpsCgroup,
    pub started: Instant,
    pub load: std::sync::Mutex<Load>,
}

impl Source {
    /// The VPS's CPUs, as host CPU numbers.
    pub fn cpus(&self) -> Vec<u32> {
        let f = if self.cg.v2 {
            "cpuset.cpus.effective"
        } else {
            "cpuset.effective_cpus"
        };
        self.cg
            .read(Controller::Cpuset, f)
            .and_then(|s| crate::cgroup::limits::parse_cpumask(s.trim()))
            .or_else(|| {
                std::fs::read_to_string("/sys/devices/system/cpu/online")
                    .ok()
                    .and_then(|s| crate::cgroup::limits::parse_cpumask(s.trim()))
            })
            .unwrap_or_else(|| vec![0])
    }

    /// CPU seconds the VPS has used.
    fn used_secs(&self) -> f64 {
        if self.cg.v2 {
            let stat = self
                .cg
                .read(Controller::Cpu, "cpu.stat")
                .unwrap_or_default();
            stat_value(&stat, "usage_usec") as f64 / 1e6
        } else {
            num(self.cg.read(Controller::Cpuacct, "cpuacct.usage")).unwrap_or(0) as f64 / 1e9
        }
    }

    /// The content of file `name` now.
    pub fn render(&self, name: &str) -> Option<String> {
        let host = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Some(match name {
            "meminfo" => meminfo(&Memory::read(&self.cg, &host("/proc/meminfo"))),
            "swaps" => swaps(&Memory::read(&self.cg, &host("/proc/meminfo"))),
            "cpuinfo" => cpuinfo(&host("/proc/cpuinfo"), &self.cpus()),
            "stat" => stat(&host("/proc/stat"), &self.cpus()),
            "cpu_online" => cpu_online(self.cpus().len()),
            "uptime" => uptime(
                self.started.elapsed().as_secs_f64(),
                self.cpus().len(),
                self.used_secs(),
            ),
            "loadavg" => self.load.lock().map(|l| l.render()).unwrap_or_default(),
            "user_beancounters" => format!(
                "{}{}",
                beancounters::header(),
                beancounters::render(self.ctid, &beancounters::read(&self.cg))
            ),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests;

/// Serve the view of VPS `ctid` on the FUSE connection `device` until the
/// VPS's mounts of it are gone (the kernel then ends the connection).
pub fn serve(ctid: u32, cg: VpsCgroup, device: std::os::fd::OwnedFd) -> std::io::Result<()> {
    let source = std::sync::Arc::new(Source {
        ctid,
        cg,
        started: Instant::now(),
        load: std::sync::Mutex::new(Load::default()),
    });
    let sampler = source.clone();
    std::thread::Builder::new()
        .name("loadavg".into())
        .spawn(move || loop {
            let (active, running, total) = count_tasks(&sampler.cg);
            if let Ok(mut l) = sampler.load.lock() {
                l.sample(active, running, total);
            }
            std::thread::sleep(std::time::Duration::from_secs_f64(LOAD_EVERY));
        })?;
    let config = fuser::Config::default();
    fuser::Session::from_fd(
        fs::ProcView::new(source),
        device,
        fuser::SessionACL::All,
        config,
    )?
    .run()
}
