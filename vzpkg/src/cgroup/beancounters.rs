//! User beancounters from a VPS's cgroup counters: per resource held,
//! maxheld, barrier, limit and failcnt, as `/proc/user_beancounters` shows
//! them (hosting panels parse that table). Pages for memory, counts for
//! processes; "unlimited" is LONG_MAX, as on OpenVZ.

use super::{Controller, VpsCgroup};

/// LONG_MAX: OpenVZ's "no limit".
pub const UNLIMITED: u64 = i64::MAX as u64;
const PAGE: u64 = super::limits::PAGE;

/// One resource's row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bean {
    pub resource: &'static str,
    pub held: u64,
    pub maxheld: u64,
    pub barrier: u64,
    pub limit: u64,
    /// Refusals: OOM kills (physpages), fork/clone refused at pids.max
    /// (numproc), times the memory+swap limit was hit (swappages).
    pub failcnt: u64,
}

fn num(s: Option<String>) -> Option<u64> {
    s.and_then(|t| t.trim().parse().ok())
}

/// A limit file's value: "max", or a v1 "no limit" near u64::MAX, is LONG_MAX.
fn limit(s: Option<String>, unit: u64) -> u64 {
    match s.as_deref().map(str::trim) {
        None | Some("max") => UNLIMITED,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n >= UNLIMITED / 2 => UNLIMITED,
            Ok(n) => n / unit,
            Err(_) => UNLIMITED,
        },
    }
}

/// `key value` lines (pids.events, memory.events, oom_control).
fn field(s: Option<String>, key: &str) -> u64 {
    s.and_then(|t| {
        t.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    })
    .unwrap_or(0)
}

/// The rows for a VPS's cgroup; resources whose controller is missing are left out.
pub fn read(cg: &VpsCgroup) -> Vec<Bean> {
    let mut out = Vec::new();
    let r = |c, f: &str| cg.read(c, f);
    if cg.dir(Controller::Memory).is_some() && !cg.v2 {
        if let Some(held) = num(r(Controller::Memory, "memory.kmem.usage_in_bytes")) {
            out.push(Bean {
                resource: "kmemsize",
                held,
                maxheld: num(r(Controller::Memory, "memory.kmem.max_usage_in_bytes"))
                    .unwrap_or(held),
                barrier: UNLIMITED,
                limit: UNLIMITED,
                failcnt: num(r(Controller::Memory, "memory.kmem.failcnt")).unwrap_or(0),
            });
        }
    }
    if cg.dir(Controller::Pids).is_some() {
        let held = num(r(Controller::Pids, "pids.current")).unwrap_or(0);
        let l = limit(r(Controller::Pids, "pids.max"), 1);
        out.push(Bean {
            resource: "numproc",
            held,
            maxheld: num(r(Controller::Pids, "pids.peak")).unwrap_or(held),
            barrier: l,
            limit: l,
            failcnt: field(r(Controller::Pids, "pids.events"), "max"),
        });
    }
    if cg.dir(Controller::Memory).is_some() {
        let m = |f| r(Controller::Memory, f);
        if cg.v2 {
            let held = num(m("memory.current")).unwrap_or(0);
            out.push(Bean {
                resource: "physpages",
                held: held / PAGE,
                maxheld: num(m("memory.peak")).unwrap_or(held) / PAGE,
                barrier: 0,
                limit: limit(m("memory.max"), PAGE),
                failcnt: field(m("memory.events"), "oom_kill"),
            });
            let swap = num(m("memory.swap.current")).unwrap_or(0);
            out.push(Bean {
                resource: "swappages",
                held: swap / PAGE,
                maxheld: num(m("memory.swap.peak")).unwrap_or(swap) / PAGE,
                barrier: 0,
                limit: limit(m("memory.swap.max"), PAGE),
                failcnt: field(m("memory.swap.events"), "fail"),
            });
        } else {
            let held = num(m("memory.usage_in_bytes")).unwrap_or(0);
            let max = num(m("memory.max_usage_in_bytes")).unwrap_or(held);
            let ram_limit = limit(m("memory.limit_in_bytes"), PAGE);
            out.push(Bean {
                resource: "physpages",
                held: held / PAGE,
                maxheld: max / PAGE,
                barrier: 0,
                limit: ram_limit,
                failcnt: field(m("memory.oom_control"), "oom_kill"),
            });
            // memsw counts memory plus swap: swap is the difference.
            if let Some(both) = num(m("memory.memsw.usage_in_bytes")) {
                let both_max = num(m("memory.memsw.max_usage_in_bytes")).unwrap_or(both);
                let both_limit = limit(m("memory.memsw.limit_in_bytes"), PAGE);
                out.push(Bean {
                    resource: "swappages",
                    held: both.saturating_sub(held) / PAGE,
                    maxheld: both_max.saturating_sub(max) / PAGE,
                    barrier: 0,
                    limit: if both_limit == UNLIMITED || ram_limit == UNLIMITED {
                        UNLIMITED
                    } else {
                        both_limit.saturating_sub(ram_limit)
                    },
                    failcnt: num(m("memory.memsw.failcnt")).unwrap_or(0),
                });
            }
        }
    }
    out
}

/// The header of `/proc/user_beancounters`.
pub fn header() -> String {
    format!(
        "Version: 2.5\n{:>10}  {:<12} {:>20} {:>20} {:>20} {:>20} {:>20}\n",
        "uid", "resource", "held", "maxheld", "barrier", "limit", "failcnt"
    )
}

/// One VPS's block: the first row carries `ctid:`.
pub fn render(ctid: u32, beans: &[Bean]) -> String {
    let mut out = String::new();
    for (i, b) in beans.iter().enumerate() {
        let uid = if i == 0 {
            format!("{ctid}:")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{uid:>11} {:<12} {:>20} {:>20} {:>20} {:>20} {:>20}\n",
            b.resource, b.held, b.maxheld, b.barrier, b.limit, b.failcnt
        ));
    }
    out
}

/// Parse a table back (for `vzctl list -o` from a file, and tests).
pub fn parse(text: &str) -> Vec<(u32, Bean)> {
    let mut out = Vec::new();
    let mut ctid = 0;
    for line in text.lines().skip(2) {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        if let Some(first) = words.first() {
            if let Some(id) = first.strip_suffix(':') {
                ctid = id.parse().unwrap_or(0);
                words.remove(0);
            }
        }
        if words.len() != 6 {
            continue;
        }
        let n: Vec<u64> = words[1..].iter().filter_map(|w| w.parse().ok()).collect();
        let Some(resource) = ["kmemsize", "numproc", "physpages", "swappages"]
            .into_iter()
            .find(|r| *r == words[0])
        else {
            continue;
        };
        if n.len() == 5 {
            out.push((
                ctid,
                Bean {
                    resource,
                    held: n[0],
                    maxheld: n[1],
                    barrier: n[2],
                    limit: n[3],
                    failcnt: n[4],
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips() {
        let beans = vec![
            Bean {
                resource: "numproc",
                held: 3,
                maxheld: 200,
                barrier: 200,
                limit: 200,
                failcnt: 17,
            },
            Bean {
                resource: "physpages",
                held: 10,
                maxheld: 32768,
                barrier: 0,
                limit: UNLIMITED,
                failcnt: 1,
            },
        ];
        let text = format!("{}{}", header(), render(101, &beans));
        assert!(
            text.starts_with("Version: 2.5\n       uid  resource"),
            "{text}"
        );
        assert!(text.contains("       101: numproc"), "{text}");
        let back = parse(&text);
        assert_eq!(back.len(), 2);
        assert_eq!(back[1], (101, beans[1].clone()));
    }

    #[test]
    fn limits_and_events() {
        assert_eq!(limit(Some("max\n".into()), 1), UNLIMITED);
        assert_eq!(limit(Some("9223372036854771712\n".into()), PAGE), UNLIMITED);
        assert_eq!(limit(Some("134217728\n".into()), PAGE), 32768);
        assert_eq!(
            field(
                Some("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n".into()),
                "oom_kill"
            ),
            2
        );
        assert_eq!(field(Some("max 31\n".into()), "max"), 31);
    }
}
