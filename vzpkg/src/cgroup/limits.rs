//! OpenVZ's resource keys (`PHYSPAGES`, `CPUUNITS`, ...) and what each
//! becomes in a cgroup: pure functions from values to (controller, file,
//! value), for v1 hierarchies and for v2, tested without a cgroup.

use super::Controller;
use crate::vps::conf::{Conf, UNLIMITED};

/// Bytes in one of OpenVZ's pages (`PHYSPAGES`, `SWAPPAGES`).
pub const PAGE: u64 = 4096;
/// OpenVZ's default CPU weight.
pub const DEFAULT_CPUUNITS: u64 = 1000;
/// The CFS period every quota is counted over (100 ms, the kernel's default).
pub const CFS_PERIOD_US: u64 = 100_000;

/// A VPS's resource settings, by OpenVZ key. `None`: the key is not set
/// (no limit, or the default); [`UNLIMITED`] where a key says `unlimited`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Resources {
    /// `PHYSPAGES` limit, in bytes.
    pub ram: Option<u64>,
    /// `SWAPPAGES` limit, in bytes.
    pub swap: Option<u64>,
    /// `CPUUNITS`: weight, 8..500000.
    pub cpuunits: Option<u64>,
    /// `CPULIMIT`: per cent of one CPU; 0 = none.
    pub cpulimit: Option<u64>,
    /// `CPUS`: how many CPUs the VPS may use (and sees).
    pub cpus: Option<u32>,
    /// `CPUMASK`: which CPUs; `None` or empty (`all`) is every CPU.
    pub cpumask: Option<Vec<u32>>,
    /// `NUMPROC` limit: processes and threads.
    pub numproc: Option<u64>,
    /// `IOLIMIT`: bytes/s on the private area's disk; 0 = none.
    pub iolimit: Option<u64>,
    /// `IOPSLIMIT`: operations/s on that disk; 0 = none.
    pub iopslimit: Option<u64>,
}

/// A bad value for a resource key or option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadResource {
    pub key: &'static str,
    pub value: String,
    pub why: &'static str,
}

impl Resources {
    /// The keys of a `CTID.conf` (or a sample); absent keys stay `None`.
    pub fn from_conf(c: &Conf) -> Result<Resources, BadResource> {
        let get = |key: &'static str| c.get(key).filter(|v| !v.is_empty());
        let with = |key: &'static str, f: fn(&str) -> Option<u64>, why: &'static str| {
            get(key)
                .map(|v| {
                    f(v).ok_or_else(|| BadResource {
                        key,
                        value: v.to_string(),
                        why,
                    })
                })
                .transpose()
        };
        let cpus = with("CPUS", parse_plain, "expected a number of CPUs")?;
        Ok(Resources {
            ram: with("PHYSPAGES", parse_pages_pair, PAGES_WHY)?,
            swap: with("SWAPPAGES", parse_pages_pair, PAGES_WHY)?,
            cpuunits: with("CPUUNITS", parse_cpuunits, CPUUNITS_WHY)?,
            cpulimit: with("CPULIMIT", parse_percent, CPULIMIT_WHY)?,
            cpus: cpus.map(|n| n.min(u32::MAX as u64) as u32),
            cpumask: match get("CPUMASK") {
                None => None,
                Some("all") => Some(Vec::new()),
                Some(v) => Some(parse_cpumask(v).ok_or_else(|| BadResource {
                    key: "CPUMASK",
                    value: v.to_string(),
                    why: CPUMASK_WHY,
                })?),
            },
            numproc: with("NUMPROC", parse_count_pair, "expected N or barrier:limit")?,
            iolimit: with("IOLIMIT", parse_rate, IOLIMIT_WHY)?,
            iopslimit: with("IOPSLIMIT", parse_plain, "expected operations per second")?,
        })
    }

    /// Write the set keys into `c` in OpenVZ's forms.
    pub fn to_conf(&self, c: &mut Conf) {
        let pages = |b: u64| {
            if b >= UNLIMITED {
                "unlimited".to_string()
            } else {
                b.div_ceil(PAGE).to_string()
            }
        };
        let count = |n: u64| {
            if n >= UNLIMITED {
                "unlimited".to_string()
            } else {
                n.to_string()
            }
        };
        if let Some(b) = self.ram {
            c.set("PHYSPAGES", &format!("0:{}", pages(b)));
        }
        if let Some(b) = self.swap {
            c.set("SWAPPAGES", &format!("0:{}", pages(b)));
        }
        if let Some(n) = self.cpuunits {
            c.set("CPUUNITS", &n.to_string());
        }
        if let Some(n) = self.cpulimit {
            c.set("CPULIMIT", &n.to_string());
        }
        if let Some(n) = self.cpus {
            c.set("CPUS", &n.to_string());
        }
        if let Some(m) = &self.cpumask {
            c.set(
                "CPUMASK",
                &if m.is_empty() {
                    "all".into()
                } else {
                    format_cpus(m)
                },
            );
        }
        if let Some(n) = self.numproc {
            c.set("NUMPROC", &format!("{0}:{0}", count(n)));
        }
        if let Some(n) = self.iolimit {
            c.set("IOLIMIT", &n.to_string());
        }
        if let Some(n) = self.iopslimit {
            c.set("IOPSLIMIT", &n.to_string());
        }
    }

    /// `self` with every key `changes` sets replaced.
    pub fn merged(&self, changes: &Resources) -> Resources {
        Resources {
            ram: changes.ram.or(self.ram),
            swap: changes.swap.or(self.swap),
            cpuunits: changes.cpuunits.or(self.cpuunits),
            cpulimit: changes.cpulimit.or(self.cpulimit),
            cpus: changes.cpus.or(self.cpus),
            cpumask: changes.cpumask.clone().or_else(|| self.cpumask.clone()),
            numproc: changes.numproc.or(self.numproc),
            iolimit: changes.iolimit.or(self.iolimit),
            iopslimit: changes.iopslimit.or(self.iopslimit),
        }
    }

    /// Is any key set?
    pub fn any(&self) -> bool {
        *self != Resources::default()
    }
}

const PAGES_WHY: &str =
    "expected barrier:limit in 4 KiB pages (or bytes with K/M/G/T), or unlimited";
const CPUUNITS_WHY: &str = "expected a weight from 8 to 500000";
const CPULIMIT_WHY: &str = "expected a per cent of one CPU (N or N%; 0 = none)";
const CPUMASK_WHY: &str = "expected CPU numbers and ranges such as 0-2,7, or all";
const IOLIMIT_WHY: &str = "expected bytes per second, with an optional B/K/M/G suffix (0 = none)";

fn parse_plain(s: &str) -> Option<u64> {
    if s == "unlimited" {
        return Some(UNLIMITED);
    }
    s.parse().ok()
}

/// A size with an optional K/M/G/T suffix (powers of 1024) or `unlimited`;
/// a bare number is multiplied by `bare`.
fn parse_size(s: &str, bare: u64) -> Option<u64> {
    if s == "unlimited" {
        return Some(UNLIMITED);
    }
    let (num, mult) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'B' => 1,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return None,
            };
            (&s[..i], m)
        }
        _ => (s, bare),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// `--ram`/`--swap`: bytes, with an optional suffix.
pub fn parse_bytes(s: &str) -> Option<u64> {
    parse_size(s, 1)
}

/// The limit of `PHYSPAGES`/`SWAPPAGES` (`barrier:limit` or one value), in
/// bytes; a bare number is pages.
pub fn parse_pages_pair(s: &str) -> Option<u64> {
    let limit = s.rsplit_once(':').map_or(s, |(_, l)| l);
    let v = parse_size(limit, PAGE)?;
    Some(if v >= UNLIMITED { UNLIMITED } else { v })
}

/// `NUMPROC`: `barrier:limit` or one number; the limit.
pub fn parse_count_pair(s: &str) -> Option<u64> {
    let (barrier, limit) = match s.split_once(':') {
        Some((b, l)) => (parse_plain(b)?, parse_plain(l)?),
        None => {
            let v = parse_plain(s)?;
            (v, v)
        }
    };
    (barrier <= limit).then_some(limit)
}

pub fn parse_cpuunits(s: &str) -> Option<u64> {
    s.parse().ok().filter(|n| (8..=500_000).contains(n))
}

/// `--cpulimit N[%]`.
pub fn parse_percent(s: &str) -> Option<u64> {
    s.strip_suffix('%').unwrap_or(s).parse().ok()
}

/// `--iolimit N[B|K|M|G]`: bytes per second.
pub fn parse_rate(s: &str) -> Option<u64> {
    parse_size(s, 1).filter(|v| *v < UNLIMITED)
}

/// `0-2,7`: sorted, without duplicates.
pub fn parse_cpumask(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let v = part.parse::<u32>().ok()?;
                (v, v)
            }
        };
        if a > b || b > 4095 {
            return None;
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    (!out.is_empty()).then_some(out)
}

/// The kernel's list form: `0-2,7`.
pub fn format_cpus(cpus: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// The CPUs a VPS runs on: `CPUMASK` (or every online CPU), cut down to
/// `CPUS` of them. The cut starts at the CTID's place in the set, so VPSs
/// with the same count spread over the host instead of all taking CPU 0.
pub fn chosen_cpus(res: &Resources, online: &[u32], ctid: u32) -> Vec<u32> {
    let set: Vec<u32> = match &res.cpumask {
        Some(m) if !m.is_empty() => m.iter().copied().filter(|c| online.contains(c)).collect(),
        _ => online.to_vec(),
    };
    match res.cpus {
        Some(n) if n > 0 && (n as usize) < set.len() => {
            let start = ctid as usize % set.len();
            let mut picked: Vec<u32> = (0..n as usize)
                .map(|i| set[(start + i) % set.len()])
                .collect();
            picked.sort_unstable();
            picked
        }
        _ => set,
    }
}

/// What the host decides beyond the keys: its CPUs, its memory nodes and
/// the private area's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub ctid: u32,
    pub online_cpus: Vec<u32>,
    /// `cpuset.mems` of the parent.
    pub mems: String,
    /// major:minor of the whole disk under the private area.
    pub disk: Option<(u32, u32)>,
}

/// One value to write into a cgroup file. `key` is the OpenVZ key that
/// asked for it, or `None` for a default written so a live change back
/// to "no limit" takes effect (skipped where the controller is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: Controller,
    pub file: &'static str,
    pub value: String,
    pub key: Option<&'static str>,
}

fn set_key(v: Option<u64>, key: &'static str) -> Option<&'static str> {
    v.map(|_| key)
}

fn limited(v: Option<u64>) -> Option<u64> {
    v.filter(|v| *v < UNLIMITED && *v > 0)
}

/// cpu.shares from CPUUNITS: 1000 units (OpenVZ's default) = 1024 shares
/// (the kernel's default), so the ratio between VPSs is the units' ratio.
pub fn shares(cpuunits: u64) -> u64 {
    (cpuunits * 1024 / DEFAULT_CPUUNITS).max(2)
}

/// cpu.weight (v2, 1..10000, default 100) from CPUUNITS.
pub fn weight(cpuunits: u64) -> u64 {
    (cpuunits * 100 / DEFAULT_CPUUNITS).clamp(1, 10_000)
}

fn cpuset_key(res: &Resources) -> Option<&'static str> {
    if res.cpumask.as_ref().is_some_and(|m| !m.is_empty()) {
        Some("CPUMASK")
    } else {
        res.cpus.map(|_| "CPUS")
    }
}

/// The v1 files and values for `res`, in the order they are written.
/// Memory's two files are ordered by the caller (see `apply`).
pub fn v1_writes(res: &Resources, host: &HostFacts) -> Vec<Write> {
    let w = |controller, file, value: String, key| Write {
        controller,
        file,
        value,
        key,
    };
    let mut out = vec![
        w(
            Controller::Cpu,
            "cpu.shares",
            shares(res.cpuunits.unwrap_or(DEFAULT_CPUUNITS)).to_string(),
            set_key(res.cpuunits, "CPUUNITS"),
        ),
        w(
            Controller::Cpu,
            "cpu.cfs_period_us",
            CFS_PERIOD_US.to_string(),
            set_key(limited(res.cpulimit), "CPULIMIT"),
        ),
        w(
            Controller::Cpu,
            "cpu.cfs_quota_us",
            match limited(res.cpulimit) {
                Some(pct) => (pct * CFS_PERIOD_US / 100).max(1000).to_string(),
                None => "-1".into(),
            },
            set_key(limited(res.cpulimit), "CPULIMIT"),
        ),
        w(
            Controller::Cpuset,
            "cpuset.mems",
            host.mems.clone(),
            cpuset_key(res),
        ),
        w(
            Controller::Cpuset,
            "cpuset.cpus",
            format_cpus(&chosen_cpus(res, &host.online_cpus, host.ctid)),
            cpuset_key(res),
        ),
    ];
    let ram = limited(res.ram);
    out.push(w(
        Controller::Memory,
        "memory.limit_in_bytes",
        ram.map_or("-1".into(), |b| b.to_string()),
        set_key(ram, "PHYSPAGES"),
    ));
    // memsw is memory plus swap; without a RAM limit swap cannot be held apart.
    let memsw = match (ram, res.swap) {
        (Some(r), Some(s)) if s < UNLIMITED => Some(r + s),
        _ => None,
    };
    out.push(w(
        Controller::Memory,
        "memory.memsw.limit_in_bytes",
        memsw.map_or("-1".into(), |b| b.to_string()),
        memsw.map(|_| "SWAPPAGES"),
    ));
    out.push(w(
        Controller::Pids,
        "pids.max",
        limited(res.numproc).map_or("max".into(), |n| n.to_string()),
        set_key(limited(res.numproc), "NUMPROC"),
    ));
    if let Some((maj, min)) = host.disk {
        let io = limited(res.iolimit);
        let iops = limited(res.iopslimit);
        // 0 removes the device's rule.
        for file in [
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
        ] {
            out.push(w(
                Controller::Blkio,
                file,
                format!("{maj}:{min} {}", io.unwrap_or(0)),
                set_key(io, "IOLIMIT"),
            ));
        }
        for file in [
            "blkio.throttle.read_iops_device",
            "blkio.throttle.write_iops_device",
        ] {
            out.push(w(
                Controller::Blkio,
                file,
                format!("{maj}:{min} {}", iops.unwrap_or(0)),
                set_key(iops, "IOPSLIMIT"),
            ));
        }
    }
    out
}

/// The v2 files and values for `res`.
pub fn v2_writes(res: &Resources, host: &HostFacts) -> Vec<Write> {
    let w = |controller, file, value: String, key| Write {
        controller,
        file,
        value,
        key,
    };
    let max = |v: Option<u64>| v.map_or("max".to_string(), |n| n.to_string());
    let ram = limited(res.ram);
    let swap = res.swap.filter(|s| *s < UNLIMITED);
    let mut out = vec![
        w(
            Controller::Cpu,
            "cpu.weight",
            weight(res.cpuunits.unwrap_or(DEFAULT_CPUUNITS)).to_string(),
            set_key(res.cpuunits, "CPUUNITS"),
        ),
        w(
            Controller::Cpu,
            "cpu.max",
            format!(
                "{} {CFS_PERIOD_US}",
                max(limited(res.cpulimit).map(|p| (p * CFS_PERIOD_US / 100).max(1000)))
            ),
            set_key(limited(res.cpulimit), "CPULIMIT"),
        ),
        w(
            Controller::Cpuset,
            "cpuset.cpus",
            format_cpus(&chosen_cpus(res, &host.online_cpus, host.ctid)),
            cpuset_key(res),
        ),
        w(
            Controller::Memory,
            "memory.max",
            max(ram),
            set_key(ram, "PHYSPAGES"),
        ),
        // v2 counts swap alone, as SWAPPAGES does.
        w(
            Controller::Memory,
            "memory.swap.max",
            max(swap),
            set_key(swap, "SWAPPAGES"),
        ),
        w(
            Controller::Pids,
            "pids.max",
            max(limited(res.numproc)),
            set_key(limited(res.numproc), "NUMPROC"),
        ),
    ];
    if let Some((maj, min)) = host.disk {
        let io = limited(res.iolimit);
        let iops = limited(res.iopslimit);
        out.push(w(
            Controller::Blkio,
            "io.max",
            format!(
                "{maj}:{min} rbps={0} wbps={0} riops={1} wiops={1}",
                max(io),
                max(iops)
            ),
            set_key(io, "IOLIMIT").or(set_key(iops, "IOPSLIMIT")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            ctid: 101,
            online_cpus: vec![0, 1, 2, 3],
            mems: "0".into(),
            disk: Some((254, 0)),
        }
    }

    fn conf(text: &str) -> Resources {
        Resources::from_conf(&Conf::parse(text).unwrap()).unwrap()
    }

    fn value(ws: &[Write], file: &str) -> (String, Option<&'static str>) {
        let w = ws.iter().find(|w| w.file == file).unwrap();
        (w.value.clone(), w.key)
    }

    #[test]
    fn openvz_forms_parse_and_round_trip() {
        let r = conf(
            "PHYSPAGES=\"0:65536\"\nSWAPPAGES=\"0:256M\"\nCPUUNITS=\"3000\"\nCPULIMIT=\"50%\"\nCPUS=\"1\"\nCPUMASK=\"0-2,7\"\nNUMPROC=\"200:200\"\nIOLIMIT=\"10M\"\nIOPSLIMIT=\"300\"\n",
        );
        assert_eq!(r.ram, Some(256 << 20));
        assert_eq!(r.swap, Some(256 << 20));
        assert_eq!(r.cpuunits, Some(3000));
        assert_eq!(r.cpulimit, Some(50));
        assert_eq!(r.cpus, Some(1));
        assert_eq!(r.cpumask, Some(vec![0, 1, 2, 7]));
        assert_eq!(r.numproc, Some(200));
        assert_eq!(r.iolimit, Some(10 << 20));
        assert_eq!(r.iopslimit, Some(300));
        let mut c = Conf::default();
        r.to_conf(&mut c);
        let text = c.render();
        assert!(text.contains("PHYSPAGES=\"0:65536\"\n"), "{text}");
        assert!(text.contains("SWAPPAGES=\"0:65536\"\n"), "{text}");
        assert!(text.contains("CPUMASK=\"0-2,7\"\n"), "{text}");
        assert_eq!(Resources::from_conf(&c).unwrap(), r);
        assert!(!conf("").any());
        assert_eq!(conf("PHYSPAGES=\"unlimited\"").ram, Some(UNLIMITED));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("CPUUNITS=\"7\"", "CPUUNITS"),
            ("CPUUNITS=\"500001\"", "CPUUNITS"),
            ("PHYSPAGES=\"0:12X\"", "PHYSPAGES"),
            ("CPUMASK=\"3-1\"", "CPUMASK"),
            ("NUMPROC=\"9:5\"", "NUMPROC"),
            ("IOLIMIT=\"-1\"", "IOLIMIT"),
        ] {
            let e = Resources::from_conf(&Conf::parse(text).unwrap()).unwrap_err();
            assert_eq!(e.key, key, "{text}");
        }
        assert_eq!(parse_bytes("128M"), Some(128 << 20));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("1.5G"), None);
        assert_eq!(parse_percent("50%"), Some(50));
        assert_eq!(parse_rate("10K"), Some(10240));
        assert_eq!(parse_rate("7B"), Some(7));
    }

    #[test]
    fn cpus_are_listed_and_spread() {
        assert_eq!(format_cpus(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(parse_cpumask("3,1,1-2"), Some(vec![1, 2, 3]));
        let mut r = Resources {
            cpus: Some(2),
            ..Default::default()
        };
        assert_eq!(chosen_cpus(&r, &[0, 1, 2, 3], 101), vec![1, 2]);
        assert_eq!(chosen_cpus(&r, &[0, 1, 2, 3], 103), vec![0, 3]);
        r.cpumask = Some(vec![2, 3, 9]);
        assert_eq!(chosen_cpus(&r, &[0, 1, 2, 3], 100), vec![2, 3]);
        r.cpus = None;
        assert_eq!(chosen_cpus(&r, &[0, 1, 2, 3], 100), vec![2, 3]);
    }

    #[test]
    fn v1_files_and_values() {
        let r = Resources {
            ram: Some(128 << 20),
            swap: Some(0),
            cpuunits: Some(3000),
            cpulimit: Some(50),
            numproc: Some(200),
            iolimit: Some(1 << 20),
            ..Default::default()
        };
        let ws = v1_writes(&r, &host());
        assert_eq!(value(&ws, "cpu.shares"), ("3072".into(), Some("CPUUNITS")));
        assert_eq!(
            value(&ws, "cpu.cfs_quota_us"),
            ("50000".into(), Some("CPULIMIT"))
        );
        assert_eq!(
            value(&ws, "memory.limit_in_bytes"),
            ("134217728".into(), Some("PHYSPAGES"))
        );
        assert_eq!(
            value(&ws, "memory.memsw.limit_in_bytes"),
            ("134217728".into(), Some("SWAPPAGES"))
        );
        assert_eq!(value(&ws, "pids.max"), ("200".into(), Some("NUMPROC")));
        assert_eq!(
            value(&ws, "blkio.throttle.write_bps_device"),
            ("254:0 1048576".into(), Some("IOLIMIT"))
        );
        assert_eq!(
            value(&ws, "blkio.throttle.read_iops_device"),
            ("254:0 0".into(), None)
        );
        assert_eq!(value(&ws, "cpuset.cpus"), ("0-3".into(), None));
        // Nothing set: defaults, asked for by no key.
        let ws = v1_writes(&Resources::default(), &host());
        assert!(ws.iter().all(|w| w.key.is_none()));
        assert_eq!(value(&ws, "cpu.shares").0, "1024");
        assert_eq!(value(&ws, "cpu.cfs_quota_us").0, "-1");
        assert_eq!(value(&ws, "memory.limit_in_bytes").0, "-1");
        assert_eq!(value(&ws, "pids.max").0, "max");
    }

    #[test]
    fn v2_files_and_values() {
        let r = Resources {
            ram: Some(256 << 20),
            swap: Some(256 << 20),
            cpuunits: Some(1000),
            cpulimit: Some(150),
            cpus: Some(1),
            numproc: Some(200),
            iopslimit: Some(300),
            ..Default::default()
        };
        let ws = v2_writes(&r, &host());
        assert_eq!(value(&ws, "cpu.weight"), ("100".into(), Some("CPUUNITS")));
        assert_eq!(
            value(&ws, "cpu.max"),
            ("150000 100000".into(), Some("CPULIMIT"))
        );
        assert_eq!(value(&ws, "cpuset.cpus"), ("1".into(), Some("CPUS")));
        assert_eq!(
            value(&ws, "memory.max"),
            ("268435456".into(), Some("PHYSPAGES"))
        );
        assert_eq!(
            value(&ws, "memory.swap.max"),
            ("268435456".into(), Some("SWAPPAGES"))
        );
        assert_eq!(value(&ws, "pids.max"), ("200".into(), Some("NUMPROC")));
        assert_eq!(
            value(&ws, "io.max"),
            (
                "254:0 rbps=max wbps=max riops=300 wiops=300".into(),
                Some("IOPSLIMIT")
            )
        );
        let ws = v2_writes(&Resources::default(), &host());
        assert_eq!(value(&ws, "cpu.max").0, "max 100000");
        assert_eq!(value(&ws, "memory.max").0, "max");
        assert_eq!(weight(8), 1);
        assert_eq!(weight(500_000), 10_000);
    }
}
