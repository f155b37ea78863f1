//! Loading eBPF programs (a tc classifier, a cgroup device policy) and
//! attaching one to a cgroup: the `bpf(2)` call, which neither rustix nor
//! libc wraps.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// The eBPF opcodes the programs here use (class | operation | source).
pub mod op {
    pub const ADD64_K: u8 = 0x07;
    pub const AND32_K: u8 = 0x54;
    pub const RSH32_K: u8 = 0x74;
    pub const MOV32_X: u8 = 0xbc;
    pub const MOV64_K: u8 = 0xb7;
    pub const MOV64_X: u8 = 0xbf;
    pub const LDX_W: u8 = 0x61;
    pub const LDX_DW: u8 = 0x79;
    pub const LD_IMM64: u8 = 0x18;
    pub const JA: u8 = 0x05;
    pub const JEQ32_K: u8 = 0x16;
    pub const JNE_K: u8 = 0x55;
    pub const JEQ_X: u8 = 0x1d;
    pub const JNE_X: u8 = 0x5d;
    pub const CALL: u8 = 0x85;
    pub const EXIT: u8 = 0x95;
}

/// One eBPF instruction as the kernel takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

/// Load `prog` as a tc classifier (`BPF_PROG_TYPE_SCHED_CLS`) named
/// `name`; a refusal carries the verifier's log.
pub fn load_sched_cls(prog: &[Insn], name: &str) -> io::Result<OwnedFd> {
    load(BPF_PROG_TYPE_SCHED_CLS, prog, name)
}

/// Load `prog` as a cgroup device policy (`BPF_PROG_TYPE_CGROUP_DEVICE`):
/// it sees `struct bpf_cgroup_dev_ctx` and returns 1 to allow, 0 to deny.
pub fn load_cgroup_device(prog: &[Insn], name: &str) -> io::Result<OwnedFd> {
    load(BPF_PROG_TYPE_CGROUP_DEVICE, prog, name)
}

/// Attach device policy `prog` to the cgroup directory `cgroup`, in place
/// of the one attached there before, if any: without `BPF_F_ALLOW_MULTI`
/// the kernel swaps the two at once, and nothing below may add its own.
pub fn attach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    // union bpf_attr, the BPF_PROG_ATTACH member: target_fd, attach_bpf_fd,
    // attach_type, attach_flags (0).
    let mut attr = [0u8; 32];
    attr[0..4].copy_from_slice(&(cgroup.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    // SAFETY: `attr` is a valid bpf_attr prefix; both fds are open.
    let r = unsafe { bpf(BPF_PROG_ATTACH, &attr) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `bpf(cmd, attr, sizeof attr)`.
///
/// # Safety
/// `attr` must be a valid `union bpf_attr` prefix for `cmd`: every pointer
/// and fd in it alive until the call returns.
unsafe fn bpf(cmd: libc::c_long, attr: &[u8]) -> libc::c_long {
    // SAFETY: the caller vouches for what `attr` points at.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    }
}

fn load(prog_type: u32, prog: &[Insn], name: &str) -> io::Result<OwnedFd> {
    let code: Vec<u8> = prog.iter().flat_map(|i| i.encode()).collect();
    let license = CString::new("GPL").map_err(io::Error::other)?;
    let mut log = vec![0u8; 64 << 10];
    // union bpf_attr, the BPF_PROG_LOAD member; the rest stays zero.
    let mut attr = [0u8; 128];
    let put32 =
        |a: &mut [u8; 128], at: usize, v: u32| a[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    let put64 =
        |a: &mut [u8; 128], at: usize, v: u64| a[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    put32(&mut attr, 0, prog_type);
    put32(&mut attr, 4, prog.len() as u32);
    put64(&mut attr, 8, code.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    let n = name.as_bytes();
    let n = &n[..n.len().min(15)];
    attr[48..48 + n.len()].copy_from_slice(n);
    for log_level in [0u32, 1] {
        put32(&mut attr, 24, log_level);
        put32(
            &mut attr,
            28,
            if log_level > 0 { log.len() as u32 } else { 0 },
        );
        put64(
            &mut attr,
            32,
            if log_level > 0 {
                log.as_mut_ptr() as u64
            } else {
                0
            },
        );
        // SAFETY: `attr` points at the program, license and log buffer,
        // all alive until the call returns.
        let fd = unsafe { bpf(BPF_PROG_LOAD, &attr) };
        if fd >= 0 {
            // SAFETY: a new descriptor the kernel just gave us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = io::Error::last_os_error();
        // Only a program the verifier refused is worth a second try with
        // its log; other errors (EPERM, ENOSYS) are final.
        if log_level > 0
            || e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::EACCES)
        {
            let text =
                String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)])
                    .into_owned();
            return Err(if text.is_empty() {
                e
            } else {
                io::Error::new(e.kind(), format!("{e}; verifier: {}", text.trim()))
            });
        }
    }
    Err(io::Error::other("bpf program load failed"))
}
