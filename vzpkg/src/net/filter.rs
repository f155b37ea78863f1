//! The source filter on a VPS's host-side venet device: packets the VPS
//! sends pass only with a source address it was given.
//!
//! It is a tc classifier on the device's ingress (what the VPS sends is
//! what the host end receives): a small eBPF program in direct-action mode
//! that passes IPv4 and IPv6 packets whose source is one of the VPS's
//! addresses (compiled into the program) and drops everything else (other
//! sources, ARP, any other protocol). It lives on the device, so it goes
//! with the device: a VPS that stops or a host that crashes leaves no
//! filter state behind, and no host-wide table is shared between VPSs.
//!
//! eBPF rather than u32 + gact or nftables: it needs only `cls_bpf` and the
//! `bpf` system call, which hosts that run containers have, where the
//! generic actions or nftables' netdev family may be left out of the
//! kernel. A change of addresses loads a new program and swaps it in with
//! one netlink request (same filter handle): no moment without a filter.

use super::config::IpNet;
use super::rtnl::done_unless;
use crate::sys::bpf::op::{
    ADD64_K, CALL, EXIT, JA, JEQ32_K, JEQ_X, JNE_K, JNE_X, LDX_DW, LDX_W, LD_IMM64, MOV64_K,
    MOV64_X,
};
use crate::sys::bpf::{load_sched_cls, Insn};
use crate::sys::netlink::{Netlink, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::tc::{
    TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcMessage, TcOption,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

const TC_H_INGRESS: u32 = 0xFFFF_FFF1;
const INGRESS_HANDLE: u32 = 0xFFFF_0000;
const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const PRIO: u16 = 1;
const FILTER_HANDLE: u32 = 1;
const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;

/// `bpf_skb_load_bytes_relative(skb, off, to, len, BPF_HDR_START_NET)`.
const HELPER_LOAD_BYTES_RELATIVE: i32 = 68;
const BPF_HDR_START_NET: i32 = 1;
/// `offsetof(struct __sk_buff, protocol)`.
const SKB_PROTOCOL: i16 = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Drop,
    Accept,
    V4,
    V6,
}

/// A tiny assembler: instructions, and jumps to labels fixed up at the end.
#[derive(Default)]
struct Asm {
    code: Vec<Insn>,
    fixups: Vec<(usize, Label)>,
    labels: Vec<(Label, usize)>,
}

impl Asm {
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.code.push(Insn {
            code,
            dst,
            src,
            off,
            imm,
        });
    }
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) {
        self.fixups.push((self.code.len(), to));
        self.op(code, dst, src, 0, imm);
    }
    fn label(&mut self, l: Label) {
        self.labels.push((l, self.code.len()));
    }
    fn imm64(&mut self, dst: u8, v: u64) {
        self.op(LD_IMM64, dst, 0, 0, v as u32 as i32);
        self.op(0, 0, 0, 0, (v >> 32) as u32 as i32);
    }
    fn exit_with(&mut self, verdict: i32) {
        self.op(MOV64_K, 0, 0, 0, verdict);
        self.op(EXIT, 0, 0, 0, 0);
    }
    /// Load `len` bytes at `off` from the network header to the stack at
    /// r10 - `len`; to Drop if the packet is shorter.
    fn load_net(&mut self, off: i32, len: i32) {
        self.op(MOV64_X, 1, 6, 0, 0);
        self.op(MOV64_K, 2, 0, 0, off);
        self.op(MOV64_X, 3, 10, 0, 0);
        self.op(ADD64_K, 3, 0, 0, -len);
        self.op(MOV64_K, 4, 0, 0, len);
        self.op(MOV64_K, 5, 0, 0, BPF_HDR_START_NET);
        self.op(CALL, 0, 0, 0, HELPER_LOAD_BYTES_RELATIVE);
        self.jump(JNE_K, 0, 0, 0, Label::Drop);
    }
    fn finish(mut self) -> Vec<Insn> {
        for (at, l) in &self.fixups {
            let target = self
                .labels
                .iter()
                .find(|(x, _)| x == l)
                .map_or(0, |(_, t)| *t);
            self.code[*at].off = (target as i64 - *at as i64 - 1) as i16;
        }
        self.code
    }
}

/// The program passing packets from `ips` only. The verifier refuses
/// code no path reaches, so a family without addresses gets no section.
fn program(ips: &[IpNet]) -> Vec<Insn> {
    let v4: Vec<u32> = ips
        .iter()
        .filter_map(|ip| match ip.addr {
            IpAddr::V4(a) => Some(u32::from_ne_bytes(a.octets())),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<(u64, u64)> = ips
        .iter()
        .filter_map(|ip| match ip.addr {
            IpAddr::V6(a) => {
                let o = a.octets();
                let word = |i: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&o[i..i + 8]);
                    u64::from_ne_bytes(w)
                };
                Some((word(0), word(8)))
            }
            IpAddr::V4(_) => None,
        })
        .collect();
    let mut a = Asm::default();
    a.op(MOV64_X, 6, 1, 0, 0);
    a.op(LDX_W, 2, 6, SKB_PROTOCOL, 0);
    // skb->protocol is in network order.
    if !v4.is_empty() {
        a.jump(JEQ32_K, 2, 0, ETH_P_IP.to_be() as i32, Label::V4);
    }
    if !v6.is_empty() {
        a.jump(JEQ32_K, 2, 0, ETH_P_IPV6.to_be() as i32, Label::V6);
    }
    if !ips.is_empty() {
        a.jump(JA, 0, 0, 0, Label::Drop);
    }

    if !v4.is_empty() {
        a.label(Label::V4);
        a.load_net(12, 4);
        a.op(LDX_W, 1, 10, -4, 0);
        for addr in &v4 {
            a.jump(JEQ32_K, 1, 0, *addr as i32, Label::Accept);
        }
        a.jump(JA, 0, 0, 0, Label::Drop);
    }
    if !v6.is_empty() {
        a.label(Label::V6);
        a.load_net(8, 16);
        a.op(LDX_DW, 1, 10, -16, 0);
        a.op(LDX_DW, 2, 10, -8, 0);
        for (hi, lo) in &v6 {
            a.imm64(3, *hi);
            // Not this address: skip the second half (ld_imm64 is two slots).
            a.op(JNE_X, 1, 3, 3, 0);
            a.imm64(3, *lo);
            a.jump(JEQ_X, 2, 3, 0, Label::Accept);
        }
        a.jump(JA, 0, 0, 0, Label::Drop);
    }
    if !ips.is_empty() {
        a.label(Label::Accept);
        a.exit_with(TC_ACT_OK);
    }
    // Last, so that every jump to it goes forward.
    a.label(Label::Drop);
    a.exit_with(TC_ACT_SHOT);
    a.finish()
}

fn tc_message(index: u32, parent: u32, info: u32) -> TcMessage {
    let mut m = TcMessage::default();
    m.header.family = AddressFamily::Unspec;
    m.header.index = index as i32;
    m.header.parent = TcHandle::from(parent);
    m.header.info = info;
    m
}

/// Put the filter on device `index`, letting `ips` through.
pub fn install(nl: &mut Netlink, index: u32, ips: &[IpNet]) -> io::Result<()> {
    let mut q = tc_message(index, TC_H_INGRESS, 0);
    q.header.handle = TcHandle::from(INGRESS_HANDLE);
    q.attributes.push(TcAttribute::Kind("ingress".into()));
    done_unless(
        nl.request(
            RouteNetlinkMessage::NewQueueDiscipline(q),
            NLM_F_CREATE | NLM_F_EXCL,
        ),
        &[libc::EEXIST],
    )?;
    set(nl, index, ips)
}

/// Replace the addresses let through on device `index` by `ips`: a new
/// program under the same filter handle, swapped in by the kernel.
pub fn set(nl: &mut Netlink, index: u32, ips: &[IpNet]) -> io::Result<()> {
    let prog = load_sched_cls(&program(ips), "vz_source")?;
    let info = ((PRIO as u32) << 16) | ETH_P_ALL.to_be() as u32;
    let mut f = tc_message(index, INGRESS_HANDLE, info);
    f.header.handle = TcHandle::from(FILTER_HANDLE);
    f.attributes.push(TcAttribute::Kind("bpf".into()));
    f.attributes.push(TcAttribute::Options(vec![
        TcOption::Bpf(TcFilterBpfOption::ProgFd(prog.as_raw_fd() as u32)),
        TcOption::Bpf(TcFilterBpfOption::ProgName("vz_source".into())),
        TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
    ]));
    // The filter holds the program; our descriptor may close after.
    nl.request(RouteNetlinkMessage::NewTrafficFilter(f), NLM_F_CREATE)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_inside_the_program() {
        let ips = [
            IpNet::parse("192.0.2.1").unwrap(),
            IpNet::parse("2001:db8::1").unwrap(),
            IpNet::parse("198.51.100.200").unwrap(),
        ];
        let p = program(&ips);
        for (i, insn) in p.iter().enumerate() {
            if matches!(insn.code, JEQ32_K | JA | JNE_K | JEQ_X | JNE_X) {
                let t = i as i64 + 1 + insn.off as i64;
                assert!(t > i as i64 && (t as usize) < p.len(), "jump at {i} to {t}");
                // Never into the second slot of a 64-bit load.
                assert!(
                    t == 0 || p[t as usize - 1].code != LD_IMM64,
                    "jump at {i} into ld_imm64"
                );
            }
        }
        assert_eq!(p.last().unwrap().code, EXIT);
        assert_eq!(p.iter().filter(|i| i.code == JEQ32_K).count(), 4);
    }
}
