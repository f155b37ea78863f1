//! `vzquota`: OpenVZ's quota tool over vzpkg's quota state files, one file
//! per quota id (`QUOTA_DIR/quota.<id>`). `init` scans the private area,
//! `setlimit`/`setlimit2` change limits, `stat`/`show` print them as OpenVZ
//! does. There is no kernel quota here: `on`/`off` only mark the file
//! running or stopped; what enforces the limits is the simfs process of a
//! mounted VPS.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::simfs::control::{self, Reply, Request};

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

use crate::quota::{
    now_secs, scan_tree, IdGrace, IdKind, IdLimits, Quota, StateError, StateFile, UgidQuota,
    DEFAULT_GRACE,
};

pub use crate::layout::{quota_dir_for, DEFAULT_QUOTA_DIR};

/// Exit codes: OpenVZ's where it has one.
pub mod exit {
    pub const OK: i32 = 0;
    /// A system call failed (scanning the tree, creating the directory).
    pub const SYSTEM: i32 = 1;
    /// Unknown command or option, missing argument.
    pub const USAGE: i32 = 2;
    /// The quota file cannot be read, parsed or written.
    pub const QUOTA_FILE: i32 = 4;
    /// `on`, `init`, `drop` while the quota is running.
    pub const RUNNING: i32 = 5;
    /// `off`, `stat` while it is not; `setlimit2` with the second level off.
    pub const NOT_RUNNING: i32 = 6;
    /// `show`: the file is marked dirty (informational, as OpenVZ has it).
    pub const DIRTY: i32 = 10;
    pub const NO_QUOTA_FILE: i32 = 11;
    /// An option's value is malformed or out of range. OpenVZ reports these
    /// as usage errors (2); a code of its own tells them apart.
    pub const BAD_VALUE: i32 = 14;
}

/// What can go wrong, naming the quota id, the file and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VzquotaError {
    #[error(
        "no quota file {path} for id {id}; create it with `vzquota init {id} -p PRIVATE_AREA`"
    )]
    NoQuotaFile { id: u32, path: PathBuf },
    #[error("quota for id {id} is served by the simfs of a mounted VPS; unmount it with `vzctl umount {id}`")]
    Served { id: u32 },
    #[error("quota for id {id} is running; stop it first with `vzquota off {id}`")]
    Running { id: u32 },
    #[error("quota for id {id} is not running; start it with `vzquota on {id}`, or read the file with `vzquota show {id}`")]
    NotRunning { id: u32 },
    #[error("second-level quota is off for id {id}; turn it on with `vzquota setlimit {id} -s 1 -u UGID_LIMIT`")]
    SecondLevelOff { id: u32 },
    #[error("{0}")]
    Usage(String),
    #[error("bad value {value:?} for {option} (id {id}): {why}")]
    BadValue {
        id: u32,
        option: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("quota file {path} of id {id} records no private area to scan; pass -p PRIVATE_AREA")]
    NoPath { id: u32, path: PathBuf },
    #[error("cannot scan {path} for quota id {id}: {source}; pass the VPS's private area with -p")]
    Scan {
        id: u32,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot create quota directory {path}: {source}; create it or choose another with --quota-dir")]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot remove quota file {path} of id {id}: {source}")]
    Remove {
        id: u32,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

impl VzquotaError {
    pub fn exit_code(&self) -> i32 {
        match self {
            VzquotaError::NoQuotaFile { .. } => exit::NO_QUOTA_FILE,
            VzquotaError::Running { .. } | VzquotaError::Served { .. } => exit::RUNNING,
            VzquotaError::NotRunning { .. } | VzquotaError::SecondLevelOff { .. } => {
                exit::NOT_RUNNING
            }
            VzquotaError::Usage(_) | VzquotaError::NoPath { .. } => exit::USAGE,
            VzquotaError::BadValue { .. } => exit::BAD_VALUE,
            VzquotaError::Scan { .. } | VzquotaError::Dir { .. } => exit::SYSTEM,
            VzquotaError::Remove { .. } | VzquotaError::State(_) => exit::QUOTA_FILE,
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "vzquota",
    version,
    about = "Disk quota of VPSs, OpenVZ's way: vzquota init|drop|on|off|setlimit|setlimit2|stat|show QUOTA_ID",
    disable_help_subcommand = true
)]
struct Cli {
    /// Directory of the quota files (`quota.<id>`); default `$VZQUOTA_DIR`,
    /// else `/var/vzquota`, or `$VZ_ROOT/vzquota` when `$VZ_ROOT` is not `/vz`.
    #[arg(long, global = true, value_name = "DIR")]
    quota_dir: Option<PathBuf>,
    /// Print errors only.
    #[arg(short = 'q', long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Target {
    /// Quota id (the CTID).
    #[arg(value_name = "QUOTA_ID")]
    id: u32,
    /// Use this quota file instead of QUOTA_DIR/quota.<id>.
    #[arg(short = 'c', long = "quota-file", value_name = "FILE")]
    quota_file: Option<PathBuf>,
}

#[derive(Args, Debug, Default)]
struct LimitArgs {
    /// Block soft limit, 1K blocks.
    #[arg(short = 'b', long = "block-softlimit", value_name = "BLOCKS")]
    block_soft: Option<u64>,
    /// Block hard limit, 1K blocks.
    #[arg(short = 'B', long = "block-hardlimit", value_name = "BLOCKS")]
    block_hard: Option<u64>,
    /// Inode soft limit.
    #[arg(short = 'i', long = "inode-softlimit", value_name = "INODES")]
    inode_soft: Option<u64>,
    /// Inode hard limit.
    #[arg(short = 'I', long = "inode-hardlimit", value_name = "INODES")]
    inode_hard: Option<u64>,
    /// Block grace: seconds, dd:hh:mm:ss, or N with h/d/w/m/y (7d, 1w).
    #[arg(short = 'e', long = "block-exptime", value_name = "TIME", value_parser = grace_arg)]
    block_grace: Option<u64>,
    /// Inode grace, as -e.
    #[arg(short = 'n', long = "inode-exptime", value_name = "TIME", value_parser = grace_arg)]
    inode_grace: Option<u64>,
    /// Second-level (per uid/gid) quota: 1 on, 0 off.
    #[arg(short = 's', long = "sub-quotas", value_name = "1|0", value_parser = ["1", "0"])]
    sub_quotas: Option<String>,
    /// How many uids and gids the second level tracks; 0 turns it off.
    #[arg(short = 'u', long = "ugid-limit", value_name = "N")]
    ugid_limit: Option<u64>,
}

impl LimitArgs {
    fn any(&self) -> bool {
        self.block_soft.is_some()
            || self.block_hard.is_some()
            || self.inode_soft.is_some()
            || self.inode_hard.is_some()
            || self.block_grace.is_some()
            || self.inode_grace.is_some()
            || self.sub_quotas.is_some()
            || self.ugid_limit.is_some()
    }

    /// Apply what was given to `q`; limits are checked first, so a refused
    /// line changes nothing.
    fn apply(&self, id: u32, q: &mut Quota) -> Result<(), VzquotaError> {
        let mut l = q.limits;
        l.block_soft = self.block_soft.unwrap_or(l.block_soft);
        l.block_hard = self.block_hard.unwrap_or(l.block_hard);
        l.inode_soft = self.inode_soft.unwrap_or(l.inode_soft);
        l.inode_hard = self.inode_hard.unwrap_or(l.inode_hard);
        l.block_grace = self.block_grace.unwrap_or(l.block_grace);
        l.inode_grace = self.inode_grace.unwrap_or(l.inode_grace);
        soft_hard(id, "-b/-B", l.block_soft, l.block_hard)?;
        soft_hard(id, "-i/-I", l.inode_soft, l.inode_hard)?;
        q.set_limits(l);
        if self.sub_quotas.is_some() || self.ugid_limit.is_some() {
            let on = self.sub_quotas.as_deref().map_or(q.ugid.on, |s| s == "1");
            let limit = self.ugid_limit.unwrap_or(q.ugid.limit);
            q.set_ugid(on, limit);
        }
        Ok(())
    }
}

fn soft_hard(id: u32, option: &'static str, soft: u64, hard: u64) -> Result<(), VzquotaError> {
    if hard > 0 && hard < soft {
        return Err(VzquotaError::BadValue {
            id,
            option,
            value: format!("{soft}:{hard}"),
            why: "the hard limit is below the soft limit",
        });
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the quota file, counting the usage of the private area.
    Init {
        #[command(flatten)]
        target: Target,
        /// The private area to scan.
        #[arg(short = 'p', long = "path", value_name = "PATH", required = true)]
        path: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Remove the quota file.
    Drop {
        #[command(flatten)]
        target: Target,
        /// Remove it even while the quota is running.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(short = 'p', long = "path", value_name = "PATH", hide = true)]
        _path: Option<PathBuf>,
    },
    /// Mark the quota running; rescans first when the file is dirty or -f.
    On {
        #[command(flatten)]
        target: Target,
        /// Private area (when it moved; forces a rescan).
        #[arg(short = 'p', long = "path", value_name = "PATH")]
        path: Option<PathBuf>,
        /// Rescan even if the saved usage is clean.
        #[arg(short = 'f', long)]
        force: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Mark the quota stopped.
    Off {
        #[command(flatten)]
        target: Target,
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(short = 'p', long = "path", value_name = "PATH", hide = true)]
        _path: Option<PathBuf>,
    },
    /// Change first-level limits, grace, sub-quotas or the ugid limit.
    Setlimit {
        #[command(flatten)]
        target: Target,
        /// Record a new private area without rescanning.
        #[arg(short = 'p', long = "path", value_name = "PATH")]
        path: Option<PathBuf>,
        /// Mark the usage dirty, so the next `on` rescans.
        #[arg(short = 'f', long)]
        force: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Per uid/gid limits: `-u|-g UGID BSOFT BHARD ISOFT IHARD`, or grace:
    /// `-t BGRACE IGRACE`.
    Setlimit2 {
        #[command(flatten)]
        target: Target,
        /// The id is a uid.
        #[arg(short = 'u', long = "uid")]
        user: bool,
        /// The id is a gid.
        #[arg(short = 'g', long = "gid")]
        group: bool,
        /// Set grace times (of users, groups with -g, both when alone).
        #[arg(short = 't')]
        grace: bool,
        #[arg(short = 'p', long = "path", value_name = "PATH", hide = true)]
        _path: Option<PathBuf>,
        #[arg(value_name = "VALUES", required = true)]
        values: Vec<String>,
    },
    /// Print usage and limits of a running quota.
    Stat {
        #[command(flatten)]
        target: Target,
        /// Also per uid/gid figures (printed anyway when second level is on).
        #[arg(short = 't', long = "user-group")]
        ugid: bool,
        #[arg(short = 'f', hide = true)]
        _force: bool,
    },
    /// Print usage and limits from the quota file.
    Show {
        #[command(flatten)]
        target: Target,
        #[arg(short = 't', long = "user-group")]
        ugid: bool,
    },
}

/// OpenVZ's grace syntax: seconds (`3600`), `dd:hh:mm:ss` (fewer fields
/// from the right: `mm:ss`, `hh:mm:ss`), or a number with a unit
/// `h`/`d`/`w`/`m`/`y` (hours, days, weeks, 30-day months, 365-day years).
pub fn parse_grace(s: &str) -> Option<u64> {
    let s = s.trim_start_matches([' ', '\t']);
    let last = s.chars().last()?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if last.is_ascii_digit() {
        if digits(s) {
            return s.parse().ok();
        }
        let fields: Vec<&str> = s.split(':').collect();
        if fields.len() > 4 {
            return None;
        }
        // seconds, minutes, hours, days; each but days below the next unit
        const UNIT: [u64; 4] = [1, 60, 3600, 86_400];
        const BELOW: [u64; 3] = [60, 60, 24];
        let mut total: u64 = 0;
        for (i, f) in fields.iter().rev().enumerate() {
            if !digits(f) {
                return None;
            }
            let v: u64 = f.parse().ok()?;
            if i < 3 && v >= BELOW[i] {
                return None;
            }
            total = total.checked_add(v.checked_mul(UNIT[i])?)?;
        }
        Some(total)
    } else {
        let unit: u64 = match last.to_ascii_lowercase() {
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            'm' => 30 * 86_400,
            'y' => 365 * 86_400,
            _ => return None,
        };
        let n = &s[..s.len() - last.len_utf8()];
        if !digits(n) {
            return None;
        }
        n.parse::<u64>().ok()?.checked_mul(unit)
    }
}

fn grace_arg(s: &str) -> Result<u64, String> {
    parse_grace(s).ok_or_else(|| {
        "expected seconds, dd:hh:mm:ss, or a number with h/d/w/m/y (e.g. 7d, 1w)".to_string()
    })
}

/// OpenVZ's rounded time: `Ndays`, or `hh:mm` under a day.
fn time_str(secs: u64) -> String {
    let minutes = (secs + 30) / 60;
    let (hours, minutes) = (minutes / 60, minutes % 60);
    let (days, hours) = (hours / 24, hours % 24);
    if days > 0 {
        format!("{days}days")
    } else {
        format!("{hours:02}:{minutes:02}")
    }
}

/// The grace column: empty when under the soft limit, `none` when grace has
/// run out, else the time left.
fn grace_left(expires: Option<u64>, now: u64) -> String {
    match expires {
        None => String::new(),
        Some(t) if t <= now => "none".to_string(),
        Some(t) => time_str(t - now),
    }
}

fn over_mark(usage: u64, soft: u64, hard: u64) -> char {
    if (soft > 0 && usage > soft) || (hard > 0 && usage > hard) {
        '*'
    } else {
        ' '
    }
}

fn print_status(out: &mut dyn Write, s: &StateFile, now: u64) -> io::Result<()> {
    let l = &s.limits;
    writeln!(
        out,
        "{:>11} {:>14}  {:>14} {:>14} {:>8}",
        "resource", "usage", "softlimit", "hardlimit", "grace"
    )?;
    let bexp = s.block_over_since.map(|t| t.saturating_add(l.block_grace));
    writeln!(
        out,
        "{:>11} {:>14}{} {:>14} {:>14} {:>8}",
        "1k-blocks",
        s.usage.blocks_1k(),
        over_mark(
            s.usage.bytes,
            l.block_soft.saturating_mul(1024),
            l.block_hard.saturating_mul(1024)
        ),
        l.block_soft,
        l.block_hard,
        grace_left(bexp, now)
    )?;
    let iexp = s.inode_over_since.map(|t| t.saturating_add(l.inode_grace));
    writeln!(
        out,
        "{:>11} {:>14}{} {:>14} {:>14} {:>8}",
        "inodes",
        s.usage.inodes,
        over_mark(s.usage.inodes, l.inode_soft, l.inode_hard),
        l.inode_soft,
        l.inode_hard,
        grace_left(iexp, now)
    )
}

fn print_ugid(out: &mut dyn Write, s: &StateFile, now: u64) -> io::Result<()> {
    let u: &UgidQuota = &s.ugid;
    let n = u.tracked();
    writeln!(
        out,
        "User/group quota: {},{}",
        if u.on { "on" } else { "off" },
        if s.running && u.active() {
            "active"
        } else {
            "inactive"
        }
    )?;
    writeln!(
        out,
        "{}Ugids: loaded {n}, total {n}, limit {}",
        if n > u.limit { "*" } else { "" },
        u.limit
    )?;
    let exceeded = u.exceeded || (u.limit > 0 && n >= u.limit);
    writeln!(
        out,
        "Ugid limit was exceeded: {}",
        if exceeded { "yes" } else { "no" }
    )?;
    writeln!(out)?;
    writeln!(out, "User/group grace times and quotafile flags:")?;
    writeln!(
        out,
        "{:>5} {:>14} {:>14} {:>10}",
        "type", "block_exp_time", "inode_exp_time", "dqi_flags"
    )?;
    for kind in IdKind::BOTH {
        let g = u.grace(kind);
        let t = |v: u64| if v > 0 { time_str(v) } else { String::new() };
        writeln!(
            out,
            "{:>5} {:>14} {:>14} {:>9}h",
            kind.name(),
            t(g.block),
            t(g.inode),
            0
        )?;
    }
    if n == 0 {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "User/group objects:")?;
    writeln!(
        out,
        "{:<11} {:>5} {:>9} {:>11} {:>11} {:>11} {:>8} {:>6}",
        "ID", "type", "resource", "usage", "softlimit", "hardlimit", "grace", "status"
    )?;
    let status = if s.running { "loaded" } else { "" };
    for kind in IdKind::BOTH {
        let g = u.grace(kind);
        for (id, e) in u.entries(kind) {
            let l = &e.limits;
            writeln!(
                out,
                "{:<11} {:>5} {:>9} {:>11} {:>11} {:>11} {:>8} {:>6}",
                id,
                kind.name(),
                "1k-blocks",
                e.usage.blocks_1k(),
                l.block_soft,
                l.block_hard,
                grace_left(e.block_expires(g), now),
                status
            )?;
            writeln!(
                out,
                "{:<11} {:>5} {:>9} {:>11} {:>11} {:>11} {:>8} {:>6}",
                id,
                kind.name(),
                "inodes",
                e.usage.inodes,
                l.inode_soft,
                l.inode_hard,
                grace_left(e.inode_expires(g), now),
                status
            )?;
        }
    }
    Ok(())
}

/// Run `vzquota` (args[0] is the program name) and return its exit code.
pub fn vzquota_main(args: Vec<OsString>) -> i32 {
    vzquota_run(args, &mut io::stdout().lock(), &mut io::stderr().lock())
}

/// [`vzquota_main`] writing to `out` and `err`, for callers that capture.
pub fn vzquota_run(args: Vec<OsString>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                ErrorKind::ValueValidation | ErrorKind::InvalidValue => exit::BAD_VALUE,
                _ if e.use_stderr() => exit::USAGE,
                _ => exit::OK,
            };
            let text = e.render().ansi().to_string();
            if e.use_stderr() {
                let _ = write!(err, "{text}");
            } else {
                let _ = write!(out, "{text}");
            }
            return code;
        }
    };
    let mut run = Run {
        quota_dir: cli
            .quota_dir
            .unwrap_or_else(|| quota_dir_for(crate::layout::vz_root_from_env().as_deref())),
        quiet: cli.quiet,
        out,
        err,
    };
    match run.command(cli.command) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(run.err, "vzquota: {e}");
            e.exit_code()
        }
    }
}

struct Run<'a> {
    quota_dir: PathBuf,
    quiet: bool,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

impl Run<'_> {
    fn warn(&mut self, msg: &str) {
        if !self.quiet {
            let _ = writeln!(self.err, "vzquota: (warning) {msg}");
        }
    }

    fn file(&self, t: &Target) -> PathBuf {
        t.quota_file
            .clone()
            .unwrap_or_else(|| self.quota_dir.join(format!("quota.{}", t.id)))
    }

    /// The state of `t`, or exit 11.
    fn load(&self, t: &Target) -> Result<(PathBuf, StateFile), VzquotaError> {
        let path = self.file(t);
        match StateFile::load(&path)? {
            Some(s) => Ok((path, s)),
            None => Err(VzquotaError::NoQuotaFile { id: t.id, path }),
        }
    }

    fn scan(&mut self, id: u32, q: &mut Quota, path: &Path) -> Result<(), VzquotaError> {
        let scan_err = |source| VzquotaError::Scan {
            id,
            path: path.to_owned(),
            source,
        };
        let md = std::fs::symlink_metadata(path).map_err(scan_err)?;
        if !md.is_dir() {
            return Err(scan_err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        let found = scan_tree(path, q.ugid.active()).map_err(scan_err)?;
        q.load_scan(&found, now_secs());
        Ok(())
    }

    fn warn_over(&mut self, q: &Quota) {
        let l = q.limits;
        let blocks = q.usage.blocks_1k();
        if l.block_hard > 0 && blocks > l.block_hard {
            self.warn(&format!(
                "block hard limit {} is below the usage {blocks}",
                l.block_hard
            ));
        }
        if l.inode_hard > 0 && q.usage.inodes > l.inode_hard {
            self.warn(&format!(
                "inode hard limit {} is below the usage {}",
                l.inode_hard, q.usage.inodes
            ));
        }
        if q.ugid.on && q.ugid.limit == 0 {
            self.warn("second-level quota stays off until a ugid limit is set (-u N)");
        }
    }

    fn command(&mut self, cmd: Command) -> Result<i32, VzquotaError> {
        match cmd {
            Command::Init {
                target,
                path,
                limits,
            } => self.init(&target, &path, &limits),
            Command::Drop { target, force, .. } => {
                let (file, s) = self.load(&target)?;
                if s.running {
                    if !force {
                        return Err(VzquotaError::Running { id: target.id });
                    }
                    self.warn(&format!(
                        "quota for id {} is running; removing its file anyway",
                        target.id
                    ));
                }
                std::fs::remove_file(&file).map_err(|source| VzquotaError::Remove {
                    id: target.id,
                    path: file,
                    source,
                })?;
                Ok(exit::OK)
            }
            Command::On {
                target,
                path,
                force,
                limits,
            } => self.on(&target, path, force, &limits),
            Command::Off { target, .. } => {
                let (file, mut s) = self.load(&target)?;
                if !s.running {
                    return Err(VzquotaError::NotRunning { id: target.id });
                }
                if self.live(&s, target.id, &Request::Usage).is_some() {
                    return Err(VzquotaError::Served { id: target.id });
                }
                s.running = false;
                s.save(&file)?;
                Ok(exit::OK)
            }
            Command::Setlimit {
                target,
                path,
                force,
                limits,
            } => {
                if !limits.any() && path.is_none() && !force {
                    return Err(VzquotaError::Usage(format!(
                        "nothing to set for id {}; give limits (-b -B -i -I -e -n), -s, -u, -p or -f",
                        target.id
                    )));
                }
                let (file, s) = self.load(&target)?;
                let mut q = s.to_quota();
                limits.apply(target.id, &mut q)?;
                self.warn_over(&q);
                // Turning the second level on leaves per-id usage unknown:
                // dirty makes the next `on` or mount rescan.
                let dirty = s.dirty || force || q.ugid.needs_scan();
                let mut s = s.with_quota(&q, dirty);
                if let Some(p) = path {
                    s.path = Some(absolute(&p));
                }
                self.save_limits(&file, &s, target.id)?;
                Ok(exit::OK)
            }
            Command::Setlimit2 {
                target,
                user,
                group,
                grace,
                values,
                ..
            } => self.setlimit2(&target, user, group, grace, &values),
            Command::Stat { target, ugid, .. } => {
                let (_, mut s) = self.load(&target)?;
                if !s.running {
                    return Err(VzquotaError::NotRunning { id: target.id });
                }
                // The live figures, when simfs serves the tree.
                if self.live(&s, target.id, &Request::Sync).is_some() {
                    s = self.load(&target)?.1;
                }
                self.print(&s, ugid);
                Ok(exit::OK)
            }
            Command::Show { target, ugid } => {
                let (_, s) = self.load(&target)?;
                if s.running {
                    self.warn("quota is running, so the figures in its file may lag the live ones");
                }
                self.print(&s, ugid);
                Ok(if s.dirty { exit::DIRTY } else { exit::OK })
            }
        }
    }

    fn print(&mut self, s: &StateFile, ugid: bool) {
        let now = now_secs();
        // A closed stdout (`| head`) is no failure of the quota command.
        let _ = print_status(self.out, s, now).and_then(|()| {
            if ugid || s.ugid.on {
                print_ugid(self.out, s, now)
            } else {
                Ok(())
            }
        });
    }

    fn init(&mut self, t: &Target, path: &Path, limits: &LimitArgs) -> Result<i32, VzquotaError> {
        let file = self.file(t);
        match StateFile::load(&file) {
            Ok(Some(s)) if s.running => return Err(VzquotaError::Running { id: t.id }),
            Ok(Some(_)) => self.warn(&format!(
                "quota file {} exists; it will be overwritten",
                file.display()
            )),
            Ok(None) => {}
            Err(e) => self.warn(&format!("{e}; it will be overwritten")),
        }
        let mut q = Quota::default();
        q.limits.block_grace = DEFAULT_GRACE;
        q.limits.inode_grace = DEFAULT_GRACE;
        limits.apply(t.id, &mut q)?;
        let path = absolute(path);
        self.scan(t.id, &mut q, &path)?;
        self.warn_over(&q);
        let mut s = StateFile::from_quota(&q, false);
        s.path = Some(path);
        if t.quota_file.is_none() {
            std::fs::create_dir_all(&self.quota_dir).map_err(|source| VzquotaError::Dir {
                path: self.quota_dir.clone(),
                source,
            })?;
        }
        s.save(&file)?;
        Ok(exit::OK)
    }

    fn on(
        &mut self,
        t: &Target,
        path: Option<PathBuf>,
        force: bool,
        limits: &LimitArgs,
    ) -> Result<i32, VzquotaError> {
        let (file, mut s) = self.load(t)?;
        if s.running {
            return Err(VzquotaError::Running { id: t.id });
        }
        let mut q = s.to_quota();
        limits.apply(t.id, &mut q)?;
        let mut rescan = force || s.dirty || q.ugid.needs_scan();
        if let Some(p) = path {
            let p = absolute(&p);
            if s.path.as_ref() != Some(&p) {
                s.path = Some(p);
                rescan = true;
            }
        }
        if rescan {
            if s.dirty {
                self.warn(&format!(
                    "usage of id {} is marked dirty; recounting it",
                    t.id
                ));
            }
            let Some(p) = s.path.clone() else {
                return Err(VzquotaError::NoPath {
                    id: t.id,
                    path: file,
                });
            };
            self.scan(t.id, &mut q, &p)?;
        }
        self.warn_over(&q);
        let dirty = s.dirty && !rescan;
        let mut s = s.with_quota(&q, dirty);
        s.running = true;
        s.save(&file)?;
        Ok(exit::OK)
    }

    fn setlimit2(
        &mut self,
        t: &Target,
        user: bool,
        group: bool,
        grace: bool,
        values: &[String],
    ) -> Result<i32, VzquotaError> {
        let usage = |why: &str| {
            VzquotaError::Usage(format!(
                "{why}; use `vzquota setlimit2 {id} -u|-g UGID BSOFT BHARD ISOFT IHARD` or `vzquota setlimit2 {id} -t BGRACE IGRACE`",
                id = t.id
            ))
        };
        if user && group {
            return Err(usage("-u and -g exclude each other"));
        }
        if !(user || group || grace) {
            return Err(usage("say -u, -g or -t"));
        }
        if grace && values.len() != 2 {
            return Err(usage("-t takes two grace times"));
        }
        if !grace && values.len() != 5 {
            return Err(usage("-u/-g take an id and four limits"));
        }
        let number = |option: &'static str, v: &String| {
            v.parse::<u64>().map_err(|_| VzquotaError::BadValue {
                id: t.id,
                option,
                value: v.clone(),
                why: "expected a whole number",
            })
        };
        let time = |option: &'static str, v: &String| {
            parse_grace(v).ok_or_else(|| VzquotaError::BadValue {
                id: t.id,
                option,
                value: v.clone(),
                why: "expected seconds, dd:hh:mm:ss, or a number with h/d/w/m/y (e.g. 7d, 1w)",
            })
        };
        // Parse everything before touching the file.
        enum Change {
            Grace(IdGrace),
            Limits(u32, IdLimits),
        }
        let change = if grace {
            Change::Grace(IdGrace {
                block: time("block grace", &values[0])?,
                inode: time("inode grace", &values[1])?,
            })
        } else {
            let id =
                u32::try_from(number("ugid", &values[0])?).map_err(|_| VzquotaError::BadValue {
                    id: t.id,
                    option: "ugid",
                    value: values[0].clone(),
                    why: "uids and gids are below 2^32",
                })?;
            let l = IdLimits {
                block_soft: number("block soft limit", &values[1])?,
                block_hard: number("block hard limit", &values[2])?,
                inode_soft: number("inode soft limit", &values[3])?,
                inode_hard: number("inode hard limit", &values[4])?,
            };
            soft_hard(t.id, "block limits", l.block_soft, l.block_hard)?;
            soft_hard(t.id, "inode limits", l.inode_soft, l.inode_hard)?;
            Change::Limits(id, l)
        };
        let (file, s) = self.load(t)?;
        if !s.ugid.active() {
            return Err(VzquotaError::SecondLevelOff { id: t.id });
        }
        let mut q = s.to_quota();
        match change {
            Change::Grace(g) => {
                let kinds: &[IdKind] = if user {
                    &[IdKind::User]
                } else if group {
                    &[IdKind::Group]
                } else {
                    &IdKind::BOTH
                };
                for &k in kinds {
                    q.set_id_grace(k, g);
                }
                q.refresh_timers(now_secs());
            }
            Change::Limits(id, l) => {
                let kind = if group { IdKind::Group } else { IdKind::User };
                q.set_id_limits(kind, id, l, now_secs());
            }
        }
        let dirty = s.dirty;
        let s = s.with_quota(&q, dirty);
        self.save_limits(&file, &s, t.id)?;
        Ok(exit::OK)
    }

    /// Store new limits. A live simfs owns the quota file (it saves it as
    /// usage changes, from what it holds), so it gets the new state in a
    /// file beside it and saves it itself; without one, the file is ours.
    fn save_limits(&mut self, file: &Path, s: &StateFile, id: u32) -> Result<(), VzquotaError> {
        if s.running && s.socket.is_some() {
            let handed = file.with_extension(format!("new-{}", std::process::id()));
            s.save(&handed)?;
            let taken = self.live(
                s,
                id,
                &Request::Reload {
                    from: Some(handed.clone()),
                },
            );
            let _ = std::fs::remove_file(&handed);
            if taken.is_some() {
                return Ok(());
            }
        }
        Ok(s.save(file)?)
    }

    /// Send `request` to the simfs process serving this quota, if any; its
    /// reply. A process that is gone is only warned about: its file is
    /// marked dirty and the next mount recounts.
    fn live(&mut self, s: &StateFile, id: u32, request: &Request) -> Option<Reply> {
        let sock = s.socket.as_ref().filter(|_| s.running)?;
        let (read, write) = (Duration::from_secs(10), Duration::from_secs(2));
        match control::ask(sock, request, read, write) {
            Ok(reply) if reply.is_ok() => Some(reply),
            Ok(reply) => {
                self.warn(&format!(
                    "the simfs process of id {id} answered {:?}",
                    reply.encode()
                ));
                None
            }
            Err(e) => {
                self.warn(&format!(
                    "the simfs process of id {id} is not reachable at {} ({e}); figures are from the file",
                    sock.display()
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
