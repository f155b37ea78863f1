//! The device policy on cgroup v2: v1's `devices.allow` rules compiled into
//! a `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the VPS's cgroup, as
//! runc and systemd do. The program allows an access when one rule covers
//! it (type, major, minor, and every bit of the access) and denies the rest.
//! A change of rules attaches a new program in place of the old one: the
//! kernel swaps them, so the VPS is never without a policy.

use crate::sys::bpf::op::{AND32_K, EXIT, JNE_K, LDX_W, MOV32_X, MOV64_K, RSH32_K};
use crate::sys::bpf::{attach_cgroup_device, load_cgroup_device, Insn};
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

/// `BPF_DEVCG_DEV_*`, the low 16 bits of `access_type`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
/// `BPF_DEVCG_ACC_*`, the high 16 bits.
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One rule as v1 writes it: `c 1:3 rwm`, `c 136:* rwm`, `a *:* m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `DEV_BLOCK`, `DEV_CHAR`, or `None` for both (`a`).
    kind: Option<i32>,
    major: Option<u32>,
    minor: Option<u32>,
    /// `ACC_*` bits.
    access: i32,
}

impl Rule {
    pub fn parse(text: &str) -> Option<Rule> {
        let mut parts = text.split_whitespace();
        let kind = match parts.next()? {
            "a" => None,
            "b" => Some(DEV_BLOCK),
            "c" => Some(DEV_CHAR),
            _ => return None,
        };
        let (major, minor) = parts.next()?.split_once(':')?;
        let num = |s: &str| -> Option<Option<u32>> {
            match s {
                "*" => Some(None),
                n => n.parse().ok().map(Some),
            }
        };
        let mut access = 0;
        for c in parts.next()?.chars() {
            access |= match c {
                'm' => ACC_MKNOD,
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => return None,
            };
        }
        if parts.next().is_some() || access == 0 {
            return None;
        }
        Some(Rule {
            kind,
            major: num(major)?,
            minor: num(minor)?,
            access,
        })
    }
}

fn op(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// The program for `rules`. Registers: r2 device type, r3 access bits,
/// r4 major, r5 minor (all loaded from the context once), r6 scratch.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        op(LDX_W, 2, 1, 0, 0),
        op(MOV32_X, 3, 2, 0, 0),
        op(AND32_K, 2, 0, 0, 0xffff),
        op(RSH32_K, 3, 0, 0, 16),
        op(LDX_W, 4, 1, 4, 0),
        op(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules {
        // Each test jumps past the rule's "allow" on a mismatch; the
        // offsets are filled in once the rule's length is known.
        let mut body: Vec<Insn> = Vec::new();
        if let Some(k) = r.kind {
            body.push(op(JNE_K, 2, 0, 0, k));
        }
        // Access bits outside the rule's: r6 = r3 & !access, must be 0.
        body.push(op(MOV32_X, 6, 3, 0, 0));
        body.push(op(AND32_K, 6, 0, 0, !r.access & 0x7));
        body.push(op(JNE_K, 6, 0, 0, 0));
        if let Some(m) = r.major {
            body.push(op(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            body.push(op(JNE_K, 5, 0, 0, m as i32));
        }
        body.push(op(MOV64_K, 0, 0, 0, 1));
        body.push(op(EXIT, 0, 0, 0, 0));
        let n = body.len();
        for (i, insn) in body.iter_mut().enumerate() {
            if insn.code == JNE_K {
                // To the instruction after this rule's exit.
                insn.off = (n - i - 1) as i16;
            }
        }
        p.extend(body);
    }
    p.push(op(MOV64_K, 0, 0, 0, 0));
    p.push(op(EXIT, 0, 0, 0, 0));
    p
}

/// Attach the policy `rules` (v1 syntax) to the v2 cgroup `dir`, in place
/// of any before it.
pub fn install(dir: &Path, rules: &[String]) -> io::Result<()> {
    let parsed = rules
        .iter()
        .map(|r| {
            Rule::parse(r).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{r}` is not a device rule"),
                )
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    let prog = load_cgroup_device(&program(&parsed), "vz_devices")?;
    let cgroup = std::fs::File::open(dir)?;
    attach_cgroup_device(cgroup.as_fd(), prog.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_as_v1_writes_them() {
        assert_eq!(
            Rule::parse("c 1:3 rwm"),
            Some(Rule {
                kind: Some(DEV_CHAR),
                major: Some(1),
                minor: Some(3),
                access: ACC_MKNOD | ACC_READ | ACC_WRITE,
            })
        );
        assert_eq!(
            Rule::parse("a *:* m"),
            Some(Rule {
                kind: None,
                major: None,
                minor: None,
                access: ACC_MKNOD,
            })
        );
        assert_eq!(Rule::parse("b 8:* r").map(|r| r.minor), Some(None));
        for bad in [
            "",
            "x 1:3 r",
            "c 1 r",
            "c 1:3",
            "c 1:3 rx",
            "c a:3 r",
            "c 1:3 r x",
        ] {
            assert_eq!(Rule::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_jump_lands_on_the_next_rule_or_the_final_deny() {
        let rules: Vec<Rule> = ["c 1:3 rwm", "c 136:* rwm", "a *:* m", "b 8:0 r"]
            .iter()
            .map(|r| Rule::parse(r).unwrap())
            .collect();
        let p = program(&rules);
        // Rule starts: after each rule's EXIT, plus the final deny.
        let starts: Vec<usize> = p
            .iter()
            .enumerate()
            .filter(|(at, i)| i.code == EXIT && at + 1 < p.len())
            .map(|(at, _)| at + 1)
            .collect();
        // The second rule on, and the final deny.
        assert_eq!(starts.len(), rules.len());
        for (at, insn) in p.iter().enumerate() {
            if insn.code == JNE_K {
                let to = at + 1 + insn.off as usize;
                assert!(starts.contains(&to), "jump at {at} lands at {to}");
            }
        }
        let end = p.len();
        assert_eq!(p[end - 2].imm, 0, "the last verdict is deny");
    }
}
