//! The escape battery's probe: run as root inside a VPS, it makes one
//! exact system call sequence that would harm the host and says what the
//! kernel answered. Output is one line, `ok ...` (the call went through)
//! or `refused errno=N ...`; the exit code is 0 for ok, 1 for refused, 2
//! for a usage error. Copied into the test template with its libraries.

use std::ffi::CString;
use std::io::Error;
use std::os::unix::fs::MetadataExt;

fn done(r: Result<String, (String, Error)>) -> ! {
    match r {
        Ok(what) => {
            println!("ok {what}");
            std::process::exit(0)
        }
        Err((what, e)) => {
            println!(
                "refused errno={} {what}: {e}",
                e.raw_os_error().unwrap_or(0)
            );
            std::process::exit(1)
        }
    }
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in probe arguments")
}

fn check(what: &str, r: libc::c_long) -> Result<libc::c_long, (String, Error)> {
    if r < 0 {
        Err((what.to_string(), Error::last_os_error()))
    } else {
        Ok(r)
    }
}

fn num(s: Option<&String>) -> u32 {
    s.and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: a number is missing");
        std::process::exit(2)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(probe) = args.first() else {
        eprintln!("usage: vzprobe PROBE [ARGS]");
        std::process::exit(2)
    };
    // The probes' scratch space; the test template may have no /tmp.
    let _ = std::fs::create_dir("/tmp");
    // SAFETY (all blocks below): plain system calls on local buffers.
    let r = unsafe {
        match probe.as_str() {
            // Load a kernel module (a stub image: the loader's answer to it
            // shows the call reached the kernel's module code).
            "module" => {
                let image = [0u8; 64];
                check(
                    "init_module",
                    libc::syscall(
                        libc::SYS_init_module,
                        image.as_ptr(),
                        image.len(),
                        c"".as_ptr(),
                    ),
                )
                .map(|_| "module loaded".into())
            }
            // mknod the host's disk, then open and read it.
            "disk-read" => {
                let (major, minor) = (num(args.get(1)), num(args.get(2)));
                let path = c("/tmp/vzprobe-disk");
                libc::unlink(path.as_ptr());
                let made = check(
                    "mknod",
                    libc::mknod(
                        path.as_ptr(),
                        libc::S_IFBLK | 0o600,
                        libc::makedev(major, minor),
                    ) as libc::c_long,
                );
                let r = made.and_then(|_| {
                    let fd = check("open", libc::open(path.as_ptr(), libc::O_RDONLY) as _)?;
                    let mut buf = [0u8; 512];
                    let n = check(
                        "read",
                        libc::read(fd as i32, buf.as_mut_ptr().cast(), buf.len()) as _,
                    );
                    libc::close(fd as i32);
                    n.map(|n| format!("read {n} bytes of the disk"))
                });
                libc::unlink(path.as_ptr());
                r
            }
            // mknod a character device, then open it (no read or ioctl).
            "open-dev" => {
                let (major, minor) = (num(args.get(1)), num(args.get(2)));
                let path = c("/tmp/vzprobe-dev");
                libc::unlink(path.as_ptr());
                let r = check(
                    "mknod",
                    libc::mknod(
                        path.as_ptr(),
                        libc::S_IFCHR | 0o600,
                        libc::makedev(major, minor),
                    ) as libc::c_long,
                )
                .and_then(|_| {
                    check(
                        "open",
                        libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) as _,
                    )
                })
                .map(|fd| {
                    libc::close(fd as i32);
                    format!("opened device {major}:{minor}")
                });
                libc::unlink(path.as_ptr());
                r
            }
            // Open an existing node (a granted one) for reading.
            "open-path" => {
                let path = c(args.get(1).map_or("", |s| s.as_str()));
                check(
                    "open",
                    libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) as _,
                )
                .map(|fd| {
                    libc::close(fd as i32);
                    "opened".to_string()
                })
            }
            // Mount the host's disk (device node made as above).
            "disk-mount" => {
                let (major, minor) = (num(args.get(1)), num(args.get(2)));
                let fstype = c(args.get(3).map_or("ext4", |s| s.as_str()));
                let path = c("/tmp/vzprobe-disk");
                let dir = c("/tmp/vzprobe-mnt");
                libc::unlink(path.as_ptr());
                libc::mkdir(dir.as_ptr(), 0o700);
                let made = check(
                    "mknod",
                    libc::mknod(
                        path.as_ptr(),
                        libc::S_IFBLK | 0o600,
                        libc::makedev(major, minor),
                    ) as libc::c_long,
                );
                let r = made.and_then(|_| {
                    check(
                        "mount",
                        libc::mount(
                            path.as_ptr(),
                            dir.as_ptr(),
                            fstype.as_ptr(),
                            libc::MS_RDONLY,
                            std::ptr::null(),
                        ) as _,
                    )
                    .map(|_| {
                        libc::umount2(dir.as_ptr(), libc::MNT_DETACH);
                        "mounted the host's disk".to_string()
                    })
                });
                libc::unlink(path.as_ptr());
                libc::rmdir(dir.as_ptr());
                r
            }
            // Write a host sysctl: its own value back, so the host keeps it.
            "sysctl" => {
                let path = args.get(1).cloned().unwrap_or_default();
                match std::fs::read_to_string(&path) {
                    Err(e) => Err((format!("read {path}"), e)),
                    Ok(now) => std::fs::write(&path, now.as_bytes())
                        .map(|()| format!("wrote {path}"))
                        .map_err(|e| (format!("write {path}"), e)),
                }
            }
            // Remount /sys read-write (and back, if that worked).
            "sys-rw" => check(
                "remount /sys rw",
                libc::mount(
                    c"sysfs".as_ptr(),
                    c"/sys".as_ptr(),
                    c"sysfs".as_ptr(),
                    libc::MS_REMOUNT,
                    std::ptr::null(),
                ) as _,
            )
            .map(|_| {
                libc::mount(
                    c"sysfs".as_ptr(),
                    c"/sys".as_ptr(),
                    c"sysfs".as_ptr(),
                    libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null(),
                );
                "remounted /sys read-write".into()
            }),
            // Read the kernel log through /dev/kmsg (made if missing).
            "kmsg" => {
                let path = c("/dev/kmsg");
                // A user namespace's root may not make device nodes: that
                // refusal is the answer then.
                let made = libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 11));
                let refused = (made != 0)
                    .then(Error::last_os_error)
                    .filter(|e| e.raw_os_error() != Some(libc::EEXIST));
                match refused {
                    Some(e) => Err(("mknod /dev/kmsg".into(), e)),
                    None => Ok(()),
                }
                .and_then(|()| {
                    check(
                        "open /dev/kmsg",
                        libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) as _,
                    )
                    .and_then(|fd| {
                        let mut buf = [0u8; 4096];
                        let n = check(
                            "read /dev/kmsg",
                            libc::read(fd as i32, buf.as_mut_ptr().cast(), buf.len()) as _,
                        );
                        libc::close(fd as i32);
                        n.map(|n| format!("read {n} bytes of the kernel log"))
                    })
                })
            }
            // What dmesg does: syslog(2), read all.
            "dmesg" => {
                let mut buf = vec![0u8; 1 << 16];
                check(
                    "syslog(READ_ALL)",
                    libc::klogctl(3, buf.as_mut_ptr().cast(), buf.len() as i32) as _,
                )
                .map(|n| format!("read {n} bytes of the kernel log"))
            }
            // Mount a tmpfs (and take it away again).
            "mount-tmpfs" => {
                let dir = c("/tmp/vzprobe-tmpfs");
                libc::mkdir(dir.as_ptr(), 0o700);
                let r = check(
                    "mount tmpfs",
                    libc::mount(
                        c"tmpfs".as_ptr(),
                        dir.as_ptr(),
                        c"tmpfs".as_ptr(),
                        0,
                        std::ptr::null(),
                    ) as _,
                )
                .map(|_| {
                    libc::umount2(dir.as_ptr(), libc::MNT_DETACH);
                    "mounted a tmpfs".to_string()
                });
                libc::rmdir(dir.as_ptr());
                r
            }
            // Set the clock: the kernel's time zone, to the value it has.
            "clock" => {
                // `struct timezone` (libc has it only as an opaque type).
                #[repr(C)]
                struct TimeZone {
                    minutes_west: i32,
                    dst_time: i32,
                }
                let mut tv: libc::timeval = std::mem::zeroed();
                let mut tz = TimeZone {
                    minutes_west: 0,
                    dst_time: 0,
                };
                libc::gettimeofday(&mut tv, (&mut tz as *mut TimeZone).cast());
                check(
                    "settimeofday",
                    libc::syscall(
                        libc::SYS_settimeofday,
                        std::ptr::null::<libc::timeval>(),
                        &tz as *const TimeZone,
                    ),
                )
                .map(|_| "set the kernel's time zone".into())
            }
            "reboot" => check("reboot", libc::reboot(libc::RB_AUTOBOOT) as libc::c_long)
                .map(|_| "rebooted".into()),
            // Signal, then ptrace, a process by its host pid.
            "signal" => {
                let pid = num(args.get(1)) as i32;
                check("kill", libc::kill(pid, 0) as _)
                    .and_then(|_| {
                        check(
                            "ptrace",
                            libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) as libc::c_long,
                        )
                    })
                    .map(|_| format!("signalled and seized pid {pid}"))
            }
            // The network interfaces this process sees.
            "netif" => {
                let list = libc::if_nameindex();
                let mut names = Vec::new();
                let mut p = list;
                while !p.is_null() && (*p).if_index != 0 {
                    names.push(
                        std::ffi::CStr::from_ptr((*p).if_name)
                            .to_string_lossy()
                            .into_owned(),
                    );
                    p = p.add(1);
                }
                if !list.is_null() {
                    libc::if_freenameindex(list);
                }
                Ok(names.join(","))
            }
            // "shocker": a handle of PATH's directory (default /dev, a tmpfs,
            // which has handles; the VPS's overlay root has none), opened
            // back by handle: with a guessed handle, any inode of that file
            // system, past the VPS's root.
            "shocker" => {
                #[repr(C)]
                struct Handle {
                    bytes: u32,
                    kind: i32,
                    f: [u8; 128],
                }
                let mut h = Handle {
                    bytes: 128,
                    kind: 0,
                    f: [0; 128],
                };
                let mut mount_id = 0i32;
                let path = c(args.get(1).map_or("/dev", |s| s.as_str()));
                check(
                    "name_to_handle_at",
                    libc::syscall(
                        libc::SYS_name_to_handle_at,
                        libc::AT_FDCWD,
                        path.as_ptr(),
                        &mut h as *mut Handle,
                        &mut mount_id as *mut i32,
                        0,
                    ),
                )
                .and_then(|_| {
                    let dir = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
                    check(
                        "open_by_handle_at",
                        libc::syscall(
                            libc::SYS_open_by_handle_at,
                            dir,
                            &mut h as *mut Handle,
                            libc::O_RDONLY,
                        ),
                    )
                })
                .map(|_| "opened a directory by its handle".into())
            }
            // Leave the root through `..`, plain and with the chroot trick;
            // "ok" only if MARKER (a file on the host) shows up.
            "dotdot" => {
                let marker = args.get(1).cloned().unwrap_or_default();
                let root = std::fs::metadata("/").map(|m| (m.dev(), m.ino())).ok();
                libc::chdir(c"/".as_ptr());
                for _ in 0..64 {
                    libc::chdir(c"..".as_ptr());
                }
                let mut seen = std::fs::metadata(".").map(|m| (m.dev(), m.ino())).ok() != root
                    || std::path::Path::new(&marker).exists();
                libc::mkdir(c"/tmp/vzprobe-jail".as_ptr(), 0o700);
                if libc::chroot(c"/tmp/vzprobe-jail".as_ptr()) == 0 {
                    for _ in 0..64 {
                        libc::chdir(c"..".as_ptr());
                    }
                    libc::chroot(c".".as_ptr());
                    seen |= std::path::Path::new(&marker).exists();
                }
                if seen {
                    Ok(format!("reached the host's {marker}"))
                } else {
                    Err((
                        "`..` past the root".into(),
                        Error::from_raw_os_error(libc::ENOENT),
                    ))
                }
            }
            // A walk up with `..` while its directories are renamed around
            // it (the class of CVE-2015-2925); "ok" if MARKER shows up.
            "rename-race" => {
                let marker = args.get(1).cloned().unwrap_or_default();
                let _ = std::fs::create_dir_all("/tmp/race/a/b/c/d");
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let s2 = stop.clone();
                let mover = std::thread::spawn(move || {
                    while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = std::fs::rename("/tmp/race/a/b", "/tmp/moved");
                        let _ = std::fs::rename("/tmp/moved", "/tmp/race/a/b");
                    }
                });
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
                let mut seen = false;
                while std::time::Instant::now() < deadline && !seen {
                    if libc::chdir(c"/tmp/race/a/b/c/d".as_ptr()) != 0 {
                        continue;
                    }
                    for _ in 0..16 {
                        libc::chdir(c"..".as_ptr());
                    }
                    seen = std::path::Path::new(&marker).exists();
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = mover.join();
                if seen {
                    Ok(format!("reached the host's {marker}"))
                } else {
                    Err((
                        "`..` during renames".into(),
                        Error::from_raw_os_error(libc::ENOENT),
                    ))
                }
            }
            // How much of a file can be read (a masked one: nothing).
            "size" => {
                let path = args.get(1).cloned().unwrap_or_default();
                match std::fs::File::open(&path) {
                    Err(e) => Err((format!("open {path}"), e)),
                    Ok(f) => {
                        use std::io::Read;
                        let mut buf = Vec::new();
                        match f.take(1 << 20).read_to_end(&mut buf) {
                            Ok(n) => Ok(format!("{n} bytes")),
                            Err(e) => Err((format!("read {path}"), e)),
                        }
                    }
                }
            }
            // Who this process is: a setuid program sees euid 0.
            "ids" => Ok(format!("uid={} euid={}", libc::getuid(), libc::geteuid())),
            // What the process is allowed: bounding set, no_new_privs, seccomp.
            "status" => {
                let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let pick: Vec<&str> = s
                    .lines()
                    .filter(|l| {
                        ["CapBnd", "CapEff", "NoNewPrivs", "Seccomp:"]
                            .iter()
                            .any(|k| l.starts_with(k))
                    })
                    .collect();
                Ok(pick
                    .join(" ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "))
            }
            other => {
                eprintln!("vzprobe: unknown probe {other}");
                std::process::exit(2)
            }
        }
    };
    done(r)
}
