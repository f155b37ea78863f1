//! `vzctl`: the OpenVZ-compatible front door to the VPS runtime. It parses
//! its own command line and returns vzctl's exit code (see [`crate::vps::exit`]).

use crate::layout;
use crate::vps::conf::{parse_blocks, parse_count, parse_limits};
use crate::vps::{exit, parse_ctid, CreateOptions, Mounted, SetOptions, Stopped, VpsError, Vz};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Where the template store's ROOT is when nothing says otherwise.
pub use crate::layout::DEFAULT_STORE_ROOT as DEFAULT_VZPKG_ROOT;

#[derive(Parser)]
#[command(
    name = "vzctl",
    version,
    about = "Create, start and manage VPSs on shared template layers (OpenVZ vzctl compatible)"
)]
struct Cli {
    /// Where VPSs live: conf/, private/, root/, run/.
    #[arg(long, global = true, env = layout::VZ_ROOT_ENV, default_value = layout::DEFAULT_VZ_ROOT)]
    vzroot: PathBuf,
    /// vzpkg's ROOT; templates come from ROOT/templates.
    #[arg(long, global = true, env = layout::STORE_ROOT_ENV)]
    vzpkg_root: Option<PathBuf>,
    /// Machine-readable output (list, status).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make a VPS from a template: a config and an empty private area.
    Create {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
        #[arg(long)]
        ostemplate: String,
        #[arg(long)]
        hostname: Option<String>,
        /// soft[:hard], 1K blocks or with a K/M/G/T suffix.
        #[arg(long)]
        diskspace: Option<String>,
        /// soft[:hard] inodes.
        #[arg(long)]
        diskinodes: Option<String>,
        /// The private area (default VZROOT/private/CTID; $VEID is replaced).
        #[arg(long)]
        private: Option<PathBuf>,
        /// The mount point (default VZROOT/root/CTID; $VEID is replaced).
        #[arg(long)]
        root: Option<PathBuf>,
        /// yes (the default): simfs with the quota on the root; no: the bare
        /// overlay, no quota, faster for metadata-heavy work.
        #[arg(long, value_parser = ["yes", "no"])]
        diskquota: Option<String>,
        /// OCI: for an image --ostemplate, require HTTPS (false: plain HTTP).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        tls_verify: bool,
        #[command(flatten)]
        ids: UsernsArgs,
        // Resources (cgroups).
        /// A plan: conf/ve-NAME.conf-sample under VZROOT, or a shipped one (basic).
        #[arg(long)]
        config: Option<String>,
        #[command(flatten)]
        resources: ResourceArgs,
    },
    /// Mount if needed and boot the VPS's init in new namespaces.
    Start {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
        /// Accepted for compatibility: start always returns once init runs.
        #[arg(long)]
        wait: bool,
        /// Accepted for compatibility: every VPS has a network namespace of
        /// its own now.
        #[arg(long, hide = true)]
        private_net: bool,
    },
    /// SIGTERM to init, SIGKILL after the timeout, then unmount the root
    /// (simfs saves the quota state clean), as OpenVZ's vzctl does.
    Stop {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
        /// SIGKILL at once.
        #[arg(long)]
        fast: bool,
        /// Seconds to wait for init after SIGTERM.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// Leave the root mounted (and simfs running).
        #[arg(long)]
        skip_umount: bool,
    },
    /// Stop (if running), unmount and start.
    Restart {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
        #[arg(long)]
        private_net: bool,
    },
    Mount {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
    },
    Umount {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
    },
    /// `CTID N exist|deleted mounted|unmounted running|down`
    Status {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
    },
    /// Every VPS with its status, template and hostname.
    List {
        /// Columns: ctid, status, pid, ostemplate, hostname, or a beancounter
        /// (numproc, physpages, swappages, kmemsize) with .m (maxheld),
        /// .b (barrier), .l (limit) or .f (failcnt); comma-separated.
        #[arg(short = 'o', long = "output", value_delimiter = ',')]
        output: Vec<String>,
    },
    /// Run a command with /bin/sh -c inside; exits with its code.
    Exec {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// As exec.
    Exec2 {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// A shell inside a running VPS.
    Enter {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
        #[arg(long, num_args = 1.., allow_hyphen_values = true)]
        exec: Option<Vec<String>>,
    },
    /// Change settings; --save writes them to the config.
    Set {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        diskspace: Option<String>,
        #[arg(long)]
        diskinodes: Option<String>,
        #[arg(long)]
        quotatime: Option<u64>,
        #[arg(long)]
        quotaugidlimit: Option<u64>,
        /// yes: simfs with the quota on the root; no: the bare overlay
        /// (from the next mount on).
        #[arg(long, value_parser = ["yes", "no"])]
        diskquota: Option<String>,
        // Isolation (walls.rs).
        /// NAME:PERMS or none: make the host's /dev/NAME inside and allow it
        /// (PERMS of r, w, q; NAME:none removes it). Live on a running VPS.
        #[arg(long)]
        devnodes: Vec<String>,
        /// b|c:MAJOR:MINOR:PERMS, all:PERMS, or none: allow a device (MAJOR
        /// and MINOR numbers or *; PERMS of r, w, q, or none). Live.
        #[arg(long)]
        devices: Vec<String>,
        /// NAME:on|off[,...]: a capability for the VPS's root (kernel names
        /// without CAP_, e.g. sys_time:on). Takes effect at the next start.
        #[arg(long)]
        capability: Vec<String>,
        #[command(flatten)]
        ids: UsernsArgs,
        // Resources (cgroups).
        #[command(flatten)]
        resources: ResourceArgs,
        #[arg(long)]
        save: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// The beancounters of every running VPS (or those named), as
    /// /proc/user_beancounters shows them.
    #[command(alias = "beancounters")]
    Ubc { ctids: Vec<String> },
    /// Remove a stopped VPS's private area and config.
    #[command(alias = "delete")]
    Destroy {
        #[arg(allow_hyphen_values = true)]
        ctid: String,
    },
    /// Serve a mounted VPS's simfs until SIGTERM (started by `mount`).
    #[command(name = "__simfs", hide = true)]
    Simfs { ctid: String },
    /// Serve a running VPS's /proc view on fd 3 (started by `start`).
    #[command(name = "__procview", hide = true)]
    ProcView { ctid: String },
}

/// Resources (cgroups): OpenVZ's options, for `create` and `set`.
#[derive(clap::Args, Default)]
struct ResourceArgs {
    /// RAM limit (PHYSPAGES): bytes, or with K/M/G/T.
    #[arg(long)]
    ram: Option<String>,
    /// Swap limit (SWAPPAGES): bytes, or with K/M/G/T.
    #[arg(long)]
    swap: Option<String>,
    /// CPU weight, 8..500000 (default 1000).
    #[arg(long)]
    cpuunits: Option<String>,
    /// Per cent of one CPU (N or N%); 0 = no limit.
    #[arg(long)]
    cpulimit: Option<String>,
    /// How many CPUs the VPS may use (and sees).
    #[arg(long)]
    cpus: Option<String>,
    /// Which CPUs: 0-2,7 or all.
    #[arg(long)]
    cpumask: Option<String>,
    /// Processes and threads: N or barrier:limit.
    #[arg(long)]
    numproc: Option<String>,
    /// Disk bytes/s on the private area's disk: N[B|K|M|G]; 0 = no limit.
    #[arg(long)]
    iolimit: Option<String>,
    /// Disk operations/s on that disk; 0 = no limit.
    #[arg(long)]
    iopslimit: Option<String>,
}

impl ResourceArgs {
    fn parse(self) -> Result<crate::cgroup::Resources, VpsError> {
        use crate::cgroup::limits as l;
        fn one<T>(
            option: &'static str,
            v: Option<String>,
            f: impl Fn(&str) -> Option<T>,
            why: &'static str,
        ) -> Result<Option<T>, VpsError> {
            v.map(|v| {
                f(&v).ok_or(VpsError::BadValue {
                    option,
                    value: v,
                    why,
                })
            })
            .transpose()
        }
        let bytes = "expected bytes with an optional K/M/G/T suffix (256M), or unlimited";
        Ok(crate::cgroup::Resources {
            ram: one("--ram", self.ram, l::parse_bytes, bytes)?,
            swap: one("--swap", self.swap, l::parse_bytes, bytes)?,
            cpuunits: one(
                "--cpuunits",
                self.cpuunits,
                l::parse_cpuunits,
                "expected a weight from 8 to 500000",
            )?,
            cpulimit: one(
                "--cpulimit",
                self.cpulimit,
                l::parse_percent,
                "expected a per cent of one CPU (50 or 50%; 0 = none)",
            )?,
            cpus: one(
                "--cpus",
                self.cpus,
                |s| s.parse::<u32>().ok().filter(|n| *n > 0),
                "expected a number of CPUs, 1 or more",
            )?,
            cpumask: one(
                "--cpumask",
                self.cpumask,
                |s| {
                    if s == "all" {
                        Some(Vec::new())
                    } else {
                        l::parse_cpumask(s)
                    }
                },
                "expected CPU numbers and ranges such as 0-2,7, or all",
            )?,
            numproc: one(
                "--numproc",
                self.numproc,
                l::parse_count_pair,
                "expected N or barrier:limit (barrier <= limit), or unlimited",
            )?,
            iolimit: one(
                "--iolimit",
                self.iolimit,
                l::parse_rate,
                "expected bytes per second with an optional B/K/M/G suffix (0 = none)",
            )?,
            iopslimit: one(
                "--iopslimit",
                self.iopslimit,
                |s| s.parse::<u64>().ok(),
                "expected operations per second (0 = none)",
            )?,
        })
    }
}

/// User namespaces: whether root inside is an unprivileged host user, and
/// its id range.
#[derive(clap::Args)]
struct UsernsArgs {
    /// yes (the default): root inside is an unprivileged host user with
    /// its own id range; no: root inside is the host's root (unsafe for
    /// untrusted users). With `set ... --save` on a stopped VPS: convert it.
    #[arg(long, value_parser = ["yes", "no"])]
    userns: Option<String>,
    /// First host uid of the VPS's 65536 ids (default: the lowest free range).
    #[arg(long = "local_uid", alias = "local-uid")]
    local_uid: Option<u32>,
    /// First host gid of the VPS's 65536 ids (default: --local_uid's value,
    /// or the lowest free range).
    #[arg(long = "local_gid", alias = "local-gid")]
    local_gid: Option<u32>,
}

/// Networking options of `set` (issue 26).
#[derive(clap::Args, Default)]
struct NetArgs {
    /// ADDR[/MASK]: a venet address (IPv4 or IPv6); repeatable.
    #[arg(long = "ipadd", value_name = "ADDR[/MASK]")]
    ipadd: Vec<String>,
    /// ADDR or `all`: remove venet addresses; repeatable.
    #[arg(long = "ipdel", value_name = "ADDR|all")]
    ipdel: Vec<String>,
    /// IFNAME[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE]: a veth interface.
    #[arg(
        long = "netif_add",
        value_name = "IFNAME[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE]"
    )]
    netif_add: Vec<String>,
    /// IFNAME or `all`.
    #[arg(long = "netif_del", value_name = "IFNAME|all")]
    netif_del: Vec<String>,
    /// A nameserver address, or `inherit` (the host's); repeatable.
    #[arg(long)]
    nameserver: Vec<String>,
    /// A search domain; repeatable.
    #[arg(long)]
    searchdomain: Vec<String>,
}

/// The networking half of `SetOptions`, checked.
fn net_options(net: NetArgs, opts: &mut SetOptions) -> Result<(), VpsError> {
    use crate::net::config::{valid_domain, valid_ifname, IpDel, IpNet, Netif};
    let bad = |option: &'static str, value: &str, why: &'static str| VpsError::BadValue {
        option,
        value: value.to_string(),
        why,
    };
    for v in &net.ipadd {
        opts.ipadd.push(IpNet::parse(v).ok_or_else(|| {
            bad("--ipadd", v, "expected a unicast IPv4 or IPv6 address, optionally /PREFIX or /NETMASK (e.g. 198.51.100.7 or 2001:db8::7/64)")
        })?);
    }
    for v in &net.ipdel {
        opts.ipdel.push(
            IpDel::parse(v)
                .ok_or_else(|| bad("--ipdel", v, "expected an address the VPS has, or `all`"))?,
        );
    }
    for v in &net.netif_add {
        opts.netif_add.push(Netif::parse_option(v).map_err(|_| {
            bad("--netif_add", v, "expected IFNAME[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE]: names of 1-15 characters without '/', ':', ',', '=', ';', MACs as XX:XX:XX:XX:XX:XX")
        })?);
    }
    for v in &net.netif_del {
        if v != "all" && !valid_ifname(v) {
            return Err(bad("--netif_del", v, "expected an interface name or `all`"));
        }
        opts.netif_del.push(v.clone());
    }
    for v in &net.nameserver {
        if v != crate::net::names::INHERIT && v.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(
                "--nameserver",
                v,
                "expected an IPv4 or IPv6 address, or `inherit`",
            ));
        }
        opts.nameserver.push(v.clone());
    }
    for v in &net.searchdomain {
        if !valid_domain(v) {
            return Err(bad(
                "--searchdomain",
                v,
                "expected a domain name (letters, digits, '-' and '.')",
            ));
        }
        opts.searchdomain.push(v.clone());
    }
    Ok(())
}

/// vzctl with the store ROOT from `--vzpkg-root`, `$VZPKG_ROOT` or
/// [`DEFAULT_VZPKG_ROOT`]. `args[0]` is the program name.
pub fn vzctl_main(args: Vec<OsString>) -> i32 {
    vzctl_main_with(args, None)
}

/// vzctl for a caller that has resolved vzpkg's ROOT itself (`vzpkg --root
/// R vzctl ...`); `--vzpkg-root`/`$VZPKG_ROOT` still take precedence.
pub fn vzctl_main_with(args: Vec<OsString>, vzpkg_root: Option<PathBuf>) -> i32 {
    let cli: Cli = match crate::cli::parse_or_exit(args, exit::USAGE) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let root = cli
        .vzpkg_root
        .clone()
        .or(vzpkg_root)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VZPKG_ROOT));
    let vz = Vz::new(&cli.vzroot, crate::create::Paths::under(&root).store);
    match run(&vz, cli.json, cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vzctl: {e}");
            e.exit_code()
        }
    }
}

fn limits(
    option: &'static str,
    value: Option<String>,
    one: fn(&str) -> Option<u64>,
) -> Result<Option<(u64, u64)>, VpsError> {
    value
        .map(|v| {
            parse_limits(&v, one).ok_or(VpsError::BadValue {
                option,
                value: v,
                why: "expected soft[:hard] with soft <= hard (sizes in 1K blocks or with K/M/G/T)",
            })
        })
        .transpose()
}

fn run(vz: &Vz, json: bool, cmd: Cmd) -> Result<i32, VpsError> {
    match cmd {
        Cmd::Create {
            ctid,
            ostemplate,
            hostname,
            diskspace,
            diskinodes,
            private,
            root,
            diskquota,
            tls_verify,
            ids,
            config,
            resources,
        } => {
            let ctid = parse_ctid(&ctid)?;
            // OCI: an image reference is pulled when the store lacks it.
            let ostemplate = if crate::oci::Reference::looks_like(&ostemplate) {
                let store =
                    crate::store::Store::open(&vz.store).map_err(|source| VpsError::Store {
                        path: vz.store.clone(),
                        source,
                    })?;
                let reporter = crate::terminal::Lines::new();
                crate::oci::ensure_template(&store, &ostemplate, tls_verify, &reporter).map_err(
                    |source| VpsError::Pull {
                        ctid,
                        reference: ostemplate.clone(),
                        source: Box::new(source),
                    },
                )?
            } else {
                ostemplate
            };
            let opts = CreateOptions {
                ostemplate,
                hostname,
                diskspace: limits("--diskspace", diskspace, parse_blocks)?,
                diskinodes: limits("--diskinodes", diskinodes, parse_count)?,
                private,
                root,
                disk_quota: diskquota.map(|v| v == "yes"),
                userns: ids.userns.map(|v| v == "yes"),
                local_uid: ids.local_uid,
                local_gid: ids.local_gid,
                resources: resources.parse()?,
                config,
            };
            let cfg = vz.create(ctid, &opts)?;
            let id = cfg.template_id.as_deref().unwrap_or("");
            println!(
                "VPS {ctid} created from {} ({}); private area {}",
                cfg.ostemplate,
                id.get(..12).unwrap_or(id),
                cfg.ve_private.display()
            );
        }
        Cmd::Start {
            ctid, private_net, ..
        } => {
            let ctid = parse_ctid(&ctid)?;
            warn_privileged(vz, ctid);
            let pid = vz.start(ctid, private_net)?;
            println!("VPS {ctid} is running (init pid {pid})");
        }
        Cmd::Stop {
            ctid,
            fast,
            timeout,
            skip_umount,
        } => {
            let ctid = parse_ctid(&ctid)?;
            let how = vz.stop(ctid, fast, Duration::from_secs(timeout))?;
            print_stopped(ctid, how, timeout);
            if !skip_umount && vz.umount(ctid)? {
                println!("VPS {ctid} is unmounted");
            }
        }
        Cmd::Restart { ctid, private_net } => {
            let ctid = parse_ctid(&ctid)?;
            match vz.stop(ctid, false, Duration::from_secs(10)) {
                Ok(how) => print_stopped(ctid, how, 10),
                Err(VpsError::NotRunning { .. }) => {}
                Err(e) => return Err(e),
            }
            if vz.umount(ctid)? {
                println!("VPS {ctid} is unmounted");
            }
            let pid = vz.start(ctid, private_net)?;
            println!("VPS {ctid} is running (init pid {pid})");
        }
        Cmd::Mount { ctid } => {
            let ctid = parse_ctid(&ctid)?;
            match vz.mount(ctid)? {
                Mounted::Already => println!("VPS {ctid} is already mounted"),
                Mounted::Fresh => println!("VPS {ctid} is mounted"),
                Mounted::Replaced(why) => {
                    println!("VPS {ctid}: removed a stale mount ({why}); VPS {ctid} is mounted")
                }
            }
        }
        Cmd::Umount { ctid } => {
            let ctid = parse_ctid(&ctid)?;
            if vz.umount(ctid)? {
                println!("VPS {ctid} is unmounted");
            } else {
                println!("VPS {ctid} is not mounted");
            }
        }
        Cmd::Status { ctid } => {
            let ctid = parse_ctid(&ctid)?;
            let s = vz.status(ctid)?;
            if json {
                println!("{}", serde_json::to_string(&s).unwrap_or_default());
            } else {
                println!("{s}");
            }
        }
        Cmd::Ubc { ctids } => {
            let ids = ctids
                .iter()
                .map(|c| parse_ctid(c))
                .collect::<Result<Vec<_>, _>>()?;
            for id in &ids {
                vz.config(*id)?;
            }
            print!("{}", vz.beancounters_table(&ids)?);
        }
        Cmd::List { output } => {
            let all = vz.list()?;
            if json {
                println!("{}", serde_json::to_string(&all).unwrap_or_default());
            } else if !output.is_empty() {
                print_columns(&all, &output)?;
            } else {
                println!(
                    "{:>10} {:<9} {:>8} {:<20} HOSTNAME",
                    "CTID", "STATUS", "PID", "OSTEMPLATE"
                );
                for e in all {
                    let state = match (e.status.running, e.status.mounted) {
                        (true, _) => "running",
                        (false, true) => "mounted",
                        (false, false) => "stopped",
                    };
                    println!(
                        "{:>10} {:<9} {:>8} {:<20} {}",
                        e.status.ctid,
                        state,
                        e.status.pid.map_or("-".into(), |p| p.to_string()),
                        e.ostemplate,
                        e.hostname.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        Cmd::Exec { ctid, command } | Cmd::Exec2 { ctid, command } => {
            let ctid = parse_ctid(&ctid)?;
            return vz.exec(ctid, &command.join(" "));
        }
        Cmd::Enter { ctid, exec } => {
            let ctid = parse_ctid(&ctid)?;
            let cmd = exec.map(|words| words.join(" "));
            return vz.enter(ctid, cmd.as_deref());
        }
        Cmd::Set {
            ctid,
            hostname,
            diskspace,
            diskinodes,
            quotatime,
            quotaugidlimit,
            diskquota,
            devnodes,
            devices,
            capability,
            ids,
            resources,
            save,
            net,
        } => {
            let ctid = parse_ctid(&ctid)?;
            let mut opts = SetOptions {
                devnodes,
                devices,
                capability,
                disk_quota: diskquota.map(|v| v == "yes"),
                hostname,
                diskspace: limits("--diskspace", diskspace, parse_blocks)?,
                diskinodes: limits("--diskinodes", diskinodes, parse_count)?,
                quotatime,
                quotaugidlimit,
                userns: ids.userns.map(|v| v == "yes"),
                local_uid: ids.local_uid,
                local_gid: ids.local_gid,
                resources: resources.parse()?,
                save,
                ..Default::default()
            };
            net_options(net, &mut opts)?;
            let live = vz.set(ctid, &opts)?;
            if save {
                println!("VPS {ctid}: saved parameters");
            } else if !live {
                eprintln!("vzctl: nothing applied: VPS {ctid} is not running and --save was not given; add --save to keep the settings");
            }
        }
        Cmd::ProcView { ctid } => {
            let ctid = parse_ctid(&ctid)?;
            return Ok(vz.serve_view(ctid));
        }
        Cmd::Simfs { ctid } => {
            let ctid = parse_ctid(&ctid)?;
            return Ok(crate::vps::daemon::serve(vz, ctid));
        }
        Cmd::Destroy { ctid } => {
            let ctid = parse_ctid(&ctid)?;
            vz.destroy(ctid)?;
            println!("VPS {ctid} was destroyed");
        }
    }
    Ok(0)
}

/// A VPS made before user namespaces runs privileged: say so, and how to
/// convert it.
fn warn_privileged(vz: &Vz, ctid: u32) {
    if vz.predates_userns(ctid) {
        eprintln!("vzctl: warning: VPS {ctid} was created before user namespaces and runs privileged (root inside is the host's root); convert it while stopped with `vzctl set {ctid} --userns yes --save`");
    }
}

/// `list -o`: the named columns, a header line then one line per VPS.
fn print_columns(all: &[crate::vps::ListEntry], fields: &[String]) -> Result<(), VpsError> {
    let cell = |e: &crate::vps::ListEntry, f: &str| -> Option<String> {
        Some(match f {
            "ctid" | "veid" => e.status.ctid.to_string(),
            "status" => if e.status.running {
                "running"
            } else {
                "stopped"
            }
            .into(),
            "pid" => e.status.pid.map_or("-".into(), |p| p.to_string()),
            "ostemplate" => e.ostemplate.clone(),
            "hostname" => e.hostname.clone().unwrap_or_else(|| "-".into()),
            _ => {
                let (name, part) = f.split_once('.').unwrap_or((f, ""));
                if !["numproc", "physpages", "swappages", "kmemsize"].contains(&name) {
                    return None;
                }
                let Some(b) = e.beancounters.iter().find(|b| b.resource == name) else {
                    return Some("-".into());
                };
                match part {
                    "" | "h" => b.held,
                    "m" => b.maxheld,
                    "b" => b.barrier,
                    "l" => b.limit,
                    "f" => b.failcnt,
                    _ => return None,
                }
                .to_string()
            }
        })
    };
    if let Some(bad) = fields.iter().find(|f| !cell_known(f)) {
        return Err(VpsError::BadValue {
            option: "-o",
            value: bad.clone(),
            why: "columns are ctid, status, pid, ostemplate, hostname, or numproc, physpages, swappages, kmemsize with .m, .b, .l or .f",
        });
    }
    println!(
        "{}",
        fields
            .iter()
            .map(|f| format!("{:>12}", f.to_uppercase()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for e in all {
        let row: Vec<String> = fields
            .iter()
            .map(|f| format!("{:>12}", cell(e, f).unwrap_or_default()))
            .collect();
        println!("{}", row.join(" "));
    }
    Ok(())
}

/// Whether `-o f` names a column (checked without a VPS to look at).
fn cell_known(f: &str) -> bool {
    let (name, part) = f.split_once('.').unwrap_or((f, ""));
    matches!(
        name,
        "ctid" | "veid" | "status" | "pid" | "ostemplate" | "hostname"
    ) && part.is_empty()
        || ["numproc", "physpages", "swappages", "kmemsize"].contains(&name)
            && ["", "h", "m", "b", "l", "f"].contains(&part)
}

fn print_stopped(ctid: u32, how: Stopped, timeout: u64) {
    match how {
        Stopped::Clean => println!("VPS {ctid} was stopped"),
        Stopped::Killed => println!("VPS {ctid} was stopped (killed: init did not exit within {timeout}s of SIGTERM, or --fast)"),
        Stopped::Gone => println!("VPS {ctid} was stopped (init had already exited)"),
    }
}
