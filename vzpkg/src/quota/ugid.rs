//! Second-level quota: usage and limits per uid and per gid inside one tree
//! (OpenVZ's `QUOTAUGIDLIMIT` and `vzquota setlimit2`). The rules are the
//! first level's: over the soft limit starts the grace timer, when grace runs
//! out the soft limit acts as hard, past the hard limit is `EDQUOT`.
//!
//! At most `limit` uids and gids together are tracked; an id first seen when
//! that many are tracked is not (no usage, no limit) and `exceeded` is set,
//! as OpenVZ does. An id whose usage falls to zero and has no limits stops
//! being tracked, which frees its slot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{timer, verdict, Exceeded, Quota, Scan, Usage, DEFAULT_GRACE};

/// User or group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdKind {
    User,
    Group,
}

impl IdKind {
    pub const BOTH: [IdKind; 2] = [IdKind::User, IdKind::Group];

    /// As `vzquota stat` prints it.
    pub fn name(self) -> &'static str {
        match self {
            IdKind::User => "user",
            IdKind::Group => "group",
        }
    }
}

/// Who owns an inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub fn new(uid: u32, gid: u32) -> Self {
        Owner { uid, gid }
    }

    pub fn id(self, kind: IdKind) -> u32 {
        match kind {
            IdKind::User => self.uid,
            IdKind::Group => self.gid,
        }
    }
}

/// Limits of one uid or gid: 1K blocks and inodes, 0 = none. Grace is per
/// kind ([`UgidQuota::user_grace`], [`UgidQuota::group_grace`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdLimits {
    pub block_soft: u64,
    pub block_hard: u64,
    pub inode_soft: u64,
    pub inode_hard: u64,
}

impl IdLimits {
    pub fn is_none(&self) -> bool {
        *self == IdLimits::default()
    }
}

/// Grace in seconds for the block and inode soft limits of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdGrace {
    pub block: u64,
    pub inode: u64,
}

impl Default for IdGrace {
    /// vzctl's `QUOTATIME` default, so an unset grace is not zero.
    fn default() -> Self {
        IdGrace {
            block: DEFAULT_GRACE,
            inode: DEFAULT_GRACE,
        }
    }
}

/// One tracked uid or gid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdEntry {
    pub usage: Usage,
    pub limits: IdLimits,
    pub block_over_since: Option<u64>,
    pub inode_over_since: Option<u64>,
}

impl IdEntry {
    fn check(&self, bytes: u64, inodes: u64, grace: IdGrace, now: u64) -> Result<(), Exceeded> {
        let l = &self.limits;
        if bytes > 0 {
            match verdict(
                self.usage.bytes.saturating_add(bytes),
                l.block_soft.saturating_mul(1024),
                l.block_hard.saturating_mul(1024),
                self.block_over_since,
                grace.block,
                now,
            ) {
                Some(true) => return Err(Exceeded::BlockHard),
                Some(false) => return Err(Exceeded::BlockSoftGrace),
                None => {}
            }
        }
        if inodes > 0 {
            match verdict(
                self.usage.inodes.saturating_add(inodes),
                l.inode_soft,
                l.inode_hard,
                self.inode_over_since,
                grace.inode,
                now,
            ) {
                Some(true) => return Err(Exceeded::InodeHard),
                Some(false) => return Err(Exceeded::InodeSoftGrace),
                None => {}
            }
        }
        Ok(())
    }

    fn update_timers(&mut self, now: u64) {
        let l = self.limits;
        self.block_over_since = timer(
            self.block_over_since,
            self.usage.bytes,
            l.block_soft.saturating_mul(1024),
            now,
        );
        self.inode_over_since = timer(self.inode_over_since, self.usage.inodes, l.inode_soft, now);
    }

    /// When the block grace runs out (`None` = not over the soft limit).
    pub fn block_expires(&self, grace: IdGrace) -> Option<u64> {
        self.block_over_since.map(|s| s.saturating_add(grace.block))
    }

    pub fn inode_expires(&self, grace: IdGrace) -> Option<u64> {
        self.inode_over_since.map(|s| s.saturating_add(grace.inode))
    }
}

/// Second-level state of a tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UgidQuota {
    /// `vzquota -s 1|0`: second level wanted.
    pub on: bool,
    /// `-u N` / `QUOTAUGIDLIMIT`: uids and gids tracked at most; 0 = off.
    pub limit: u64,
    /// The per-id usage is the tree's (counted by a scan, kept since); when
    /// false and active, the tree must be rescanned.
    pub counted: bool,
    /// An id went untracked because `limit` were tracked already.
    pub exceeded: bool,
    pub user_grace: IdGrace,
    pub group_grace: IdGrace,
    pub users: BTreeMap<u32, IdEntry>,
    pub groups: BTreeMap<u32, IdEntry>,
    /// An unprivileged VPS's range (first host uid, first host gid): files
    /// are owned by host ids, usage and limits are kept by the VPS's own
    /// ids. Set from the VPS's config at each mount and saved, so that
    /// `vzquota` recounting a stopped VPS counts the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<(u32, u32)>,
}

impl UgidQuota {
    /// The VPS's own id of a file owned by host id `host`: itself without
    /// a range; inside a range, its offset; outside it, the overflow id
    /// 65534, as the kernel shows such a file inside.
    pub fn inside_id(&self, kind: IdKind, host: u32) -> u32 {
        let Some((uid, gid)) = self.shift else {
            return host;
        };
        let base = match kind {
            IdKind::User => uid,
            IdKind::Group => gid,
        };
        match host.checked_sub(base) {
            Some(id) if id < 65_536 => id,
            _ => 65_534,
        }
    }

    /// Second level is enforced and accounted.
    pub fn active(&self) -> bool {
        self.on && self.limit > 0
    }

    /// Active but without per-id usage: rescan with [`super::scan_ids`] and
    /// [`Quota::load_scan`].
    pub fn needs_scan(&self) -> bool {
        self.active() && !self.counted
    }

    /// uids and gids tracked now.
    pub fn tracked(&self) -> u64 {
        (self.users.len() + self.groups.len()) as u64
    }

    pub fn entries(&self, kind: IdKind) -> &BTreeMap<u32, IdEntry> {
        match kind {
            IdKind::User => &self.users,
            IdKind::Group => &self.groups,
        }
    }

    fn entries_mut(&mut self, kind: IdKind) -> &mut BTreeMap<u32, IdEntry> {
        match kind {
            IdKind::User => &mut self.users,
            IdKind::Group => &mut self.groups,
        }
    }

    pub fn grace(&self, kind: IdKind) -> IdGrace {
        match kind {
            IdKind::User => self.user_grace,
            IdKind::Group => self.group_grace,
        }
    }

    /// Drop all per-id usage, keeping ids that have limits.
    fn forget_usage(&mut self) {
        for kind in IdKind::BOTH {
            let map = self.entries_mut(kind);
            map.retain(|_, e| !e.limits.is_none());
            for e in map.values_mut() {
                e.usage = Usage::default();
                e.block_over_since = None;
                e.inode_over_since = None;
            }
        }
        self.counted = false;
        self.exceeded = false;
    }

    /// Account a change for one id; frees never fail.
    fn charge(&mut self, kind: IdKind, id: u32, bytes: i64, inodes: i64, now: u64) {
        if !self.entries(kind).contains_key(&id) {
            if !(bytes > 0 || inodes > 0) {
                return;
            }
            if self.tracked() >= self.limit {
                self.exceeded = true;
                return;
            }
        }
        let map = self.entries_mut(kind);
        let e = map.entry(id).or_default();
        e.usage.bytes = e.usage.bytes.saturating_add_signed(bytes);
        e.usage.inodes = e.usage.inodes.saturating_add_signed(inodes);
        e.update_timers(now);
        if e.usage == Usage::default() && e.limits.is_none() {
            map.remove(&id);
        }
    }

    /// A scan's per-host-id usage by the VPS's own ids.
    fn inside_usage(&self, kind: IdKind, found: &BTreeMap<u32, Usage>) -> BTreeMap<u32, Usage> {
        let mut out: BTreeMap<u32, Usage> = BTreeMap::new();
        for (&host, u) in found {
            let e = out.entry(self.inside_id(kind, host)).or_default();
            e.bytes += u.bytes;
            e.inodes += u.inodes;
        }
        out
    }

    fn update_timers(&mut self, now: u64) {
        for e in self.users.values_mut().chain(self.groups.values_mut()) {
            e.update_timers(now);
        }
    }
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Second-level operations. Each `*_for` also does the first level, so the
/// FUSE layer calls one method per operation.
impl Quota {
    /// Turn the second level on or off (`-s`) and set the ugid limit (`-u`).
    /// Turning it on, or raising the limit after ids went untracked, leaves
    /// per-id usage unknown: [`UgidQuota::needs_scan`] says so.
    pub fn set_ugid(&mut self, on: bool, limit: u64) {
        let was = self.ugid.active();
        let raised = limit > self.ugid.limit;
        self.ugid.on = on;
        self.ugid.limit = limit;
        let untracked = raised && self.ugid.exceeded;
        if !self.ugid.active() || !was || untracked {
            self.ugid.forget_usage();
        }
    }

    /// `QUOTAUGIDLIMIT` as vzctl has it: 0 = second level off.
    pub fn set_ugid_limit(&mut self, limit: u64) {
        self.set_ugid(limit > 0, limit);
    }

    /// Take usage from a scan: the whole tree always, per uid/gid when the
    /// second level is active and the scan counted them.
    pub fn load_scan(&mut self, scan: &Scan, now: u64) {
        self.usage = scan.usage;
        self.update_timers(now);
        if !self.ugid.active() {
            return;
        }
        self.ugid.forget_usage();
        if !scan.by_id {
            return;
        }
        // Ids with limits are tracked already; the rest in id order while
        // there is room.
        for kind in IdKind::BOTH {
            let found = match kind {
                IdKind::User => &scan.users,
                IdKind::Group => &scan.groups,
            };
            for (&id, &u) in &self.ugid.inside_usage(kind, found) {
                if let Some(e) = self.ugid.entries_mut(kind).get_mut(&id) {
                    e.usage = u;
                }
            }
        }
        for kind in IdKind::BOTH {
            let found = match kind {
                IdKind::User => &scan.users,
                IdKind::Group => &scan.groups,
            };
            for (&id, &u) in &self.ugid.inside_usage(kind, found) {
                if self.ugid.entries(kind).contains_key(&id) {
                    continue;
                }
                if self.ugid.tracked() >= self.ugid.limit {
                    self.ugid.exceeded = true;
                    break;
                }
                self.ugid.entries_mut(kind).insert(
                    id,
                    IdEntry {
                        usage: u,
                        ..IdEntry::default()
                    },
                );
            }
        }
        self.ugid.counted = true;
        self.ugid.update_timers(now);
    }

    /// `vzquota setlimit2 -u|-g ID ...`: tracks the id even past the ugid
    /// limit, as an explicit setting should.
    pub fn set_id_limits(&mut self, kind: IdKind, id: u32, limits: IdLimits, now: u64) {
        let e = self.ugid.entries_mut(kind).entry(id).or_default();
        e.limits = limits;
        e.update_timers(now);
        if e.usage == Usage::default() && limits.is_none() {
            self.ugid.entries_mut(kind).remove(&id);
        }
    }

    /// `vzquota setlimit2 -t`: grace of one kind.
    pub fn set_id_grace(&mut self, kind: IdKind, grace: IdGrace) {
        match kind {
            IdKind::User => self.ugid.user_grace = grace,
            IdKind::Group => self.ugid.group_grace = grace,
        }
    }

    /// Usage of one uid or gid, `None` when it is not tracked.
    pub fn id_usage(&self, kind: IdKind, id: u32) -> Option<Usage> {
        self.ugid.entries(kind).get(&id).map(|e| e.usage)
    }

    /// May `owner` allocate `bytes` and `inodes` more now? Both levels;
    /// refusals map to `EDQUOT` ([`Exceeded::errno`]).
    pub fn check_for(
        &self,
        owner: Owner,
        bytes: u64,
        inodes: u64,
        now: u64,
    ) -> Result<(), Exceeded> {
        self.check_bytes(bytes, now)?;
        if inodes > 0 {
            self.check_inodes(inodes, now)?;
        }
        if !self.ugid.active() {
            return Ok(());
        }
        for kind in IdKind::BOTH {
            let id = self.ugid.inside_id(kind, owner.id(kind));
            if let Some(e) = self.ugid.entries(kind).get(&id) {
                e.check(bytes, inodes, self.ugid.grace(kind), now)
                    .map_err(|x| x.for_id(kind, id))?;
            }
        }
        Ok(())
    }

    /// Account a change owned by `owner` at both levels (negative = freed).
    pub fn add_for(&mut self, owner: Owner, bytes: i64, inodes: i64, now: u64) {
        self.add(bytes, inodes, now);
        if self.ugid.active() && self.ugid.counted {
            for kind in IdKind::BOTH {
                let id = self.ugid.inside_id(kind, owner.id(kind));
                self.ugid.charge(kind, id, bytes, inodes, now);
            }
        }
    }

    /// Account what one operation changed, as net figures: `bytes`/`inodes`
    /// for the tree and `(owner, bytes, inodes)` parts that sum per uid and
    /// per gid. Netting first keeps grace timers running through an
    /// operation that frees and charges the same inode (a chown, a rewrite).
    pub fn apply(&mut self, bytes: i64, inodes: i64, parts: &[(Owner, i64, i64)], now: u64) {
        self.add(bytes, inodes, now);
        if !(self.ugid.active() && self.ugid.counted) {
            return;
        }
        for kind in IdKind::BOTH {
            let mut net: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
            for &(owner, b, i) in parts {
                let e = net
                    .entry(self.ugid.inside_id(kind, owner.id(kind)))
                    .or_default();
                e.0 += b;
                e.1 += i;
            }
            for (id, (b, i)) in net {
                if b != 0 || i != 0 {
                    self.ugid.charge(kind, id, b, i, now);
                }
            }
        }
    }

    /// May an inode of `bytes` (and `inodes`, 1 for one inode) change owner
    /// from `from` to `to`? Only the new owner's limits count, as the
    /// kernel's quota transfer has it.
    pub fn check_chown(
        &self,
        from: Owner,
        to: Owner,
        bytes: u64,
        inodes: u64,
        now: u64,
    ) -> Result<(), Exceeded> {
        if !self.ugid.active() {
            return Ok(());
        }
        for kind in IdKind::BOTH {
            let id = self.ugid.inside_id(kind, to.id(kind));
            if id == self.ugid.inside_id(kind, from.id(kind)) {
                continue;
            }
            if let Some(e) = self.ugid.entries(kind).get(&id) {
                e.check(bytes, inodes, self.ugid.grace(kind), now)
                    .map_err(|x| x.for_id(kind, id))?;
            }
        }
        Ok(())
    }

    /// Move the charge of an inode from `from` to `to`; the first level does
    /// not change.
    pub fn chown(&mut self, from: Owner, to: Owner, bytes: u64, inodes: u64, now: u64) {
        if !(self.ugid.active() && self.ugid.counted) {
            return;
        }
        let (b, i) = (signed(bytes), signed(inodes));
        for kind in IdKind::BOTH {
            let (old, new) = (
                self.ugid.inside_id(kind, from.id(kind)),
                self.ugid.inside_id(kind, to.id(kind)),
            );
            if old != new {
                self.ugid.charge(kind, old, -b, -i, now);
                self.ugid.charge(kind, new, b, i, now);
            }
        }
    }

    /// Recompute every grace timer (after limits or usage were set directly).
    pub fn refresh_timers(&mut self, now: u64) {
        self.update_timers(now);
        self.ugid.update_timers(now);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{scan_ids, Limits};
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn quota(limit: u64) -> Quota {
        let mut q = Quota::new(Limits::none(), Usage::default());
        q.set_ugid_limit(limit);
        q.load_scan(
            &Scan {
                by_id: true,
                ..Scan::default()
            },
            0,
        );
        q
    }

    const A: Owner = Owner {
        uid: 1000,
        gid: 100,
    };
    const B: Owner = Owner {
        uid: 2000,
        gid: 100,
    };

    #[test]
    fn per_id_accounting() {
        let mut q = quota(10);
        q.add_for(A, 8192, 1, 0);
        q.add_for(B, 4096, 1, 0);
        q.add_for(B, 4096, 1, 0);
        assert_eq!(
            q.usage,
            Usage {
                bytes: 16384,
                inodes: 3
            }
        );
        assert_eq!(
            q.id_usage(IdKind::User, 1000),
            Some(Usage {
                bytes: 8192,
                inodes: 1
            })
        );
        assert_eq!(
            q.id_usage(IdKind::User, 2000),
            Some(Usage {
                bytes: 8192,
                inodes: 2
            })
        );
        assert_eq!(
            q.id_usage(IdKind::Group, 100),
            Some(Usage {
                bytes: 16384,
                inodes: 3
            })
        );
        // All freed, no limits: no longer tracked.
        q.add_for(A, -8192, -1, 0);
        assert_eq!(q.id_usage(IdKind::User, 1000), None);
        assert_eq!(q.ugid.tracked(), 2);
    }

    #[test]
    fn inactive_without_ugid_limit() {
        let mut q = quota(0);
        assert!(!q.ugid.active());
        q.add_for(A, 4096, 1, 0);
        assert_eq!(q.id_usage(IdKind::User, 1000), None);
        q.set_id_limits(
            IdKind::User,
            1000,
            IdLimits {
                block_hard: 1,
                ..IdLimits::default()
            },
            0,
        );
        assert_eq!(
            q.check_for(A, 1 << 20, 1, 0),
            Ok(()),
            "second level off: no refusal"
        );
        // -s 1 alone is not enough either.
        q.set_ugid(true, 0);
        assert!(!q.ugid.active());
    }

    #[test]
    fn ugid_limit_caps_tracked_ids() {
        let mut q = quota(2);
        q.add_for(A, 1024, 1, 0); // uid 1000, gid 100
        q.add_for(B, 1024, 1, 0); // uid 2000: third id
        assert_eq!(q.ugid.tracked(), 2);
        assert!(q.ugid.exceeded);
        assert_eq!(q.id_usage(IdKind::User, 2000), None);
        // Raising the limit after that: per-id usage must be rescanned.
        q.set_ugid_limit(5);
        assert!(q.ugid.needs_scan());
    }

    #[test]
    fn id_limits_soft_grace_then_hard() {
        let mut q = quota(10);
        q.set_id_grace(
            IdKind::User,
            IdGrace {
                block: 100,
                inode: 100,
            },
        );
        let l = IdLimits {
            block_soft: 10,
            block_hard: 20,
            inode_soft: 2,
            inode_hard: 3,
        };
        q.set_id_limits(IdKind::User, 1000, l, 0);
        assert_eq!(q.check_for(A, 15 * 1024, 1, 1000), Ok(()));
        q.add_for(A, 15 * 1024, 1, 1000);
        assert_eq!(q.ugid.users[&1000].block_over_since, Some(1000));
        assert_eq!(q.check_for(A, 1024, 0, 1050), Ok(()), "within grace");
        assert_eq!(
            q.check_for(A, 1024, 0, 1101),
            Err(Exceeded::IdBlockSoftGrace(IdKind::User, 1000))
        );
        assert_eq!(
            q.check_for(A, 6 * 1024, 0, 1050),
            Err(Exceeded::IdBlockHard(IdKind::User, 1000))
        );
        assert_eq!(Exceeded::IdBlockHard(IdKind::User, 1).errno(), libc::EDQUOT);
        // Another uid is not limited by 1000's limits.
        assert_eq!(q.check_for(B, 6 * 1024, 0, 1101), Ok(()));
        q.add_for(A, 0, 2, 1000);
        assert_eq!(
            q.check_for(A, 0, 1, 1000),
            Err(Exceeded::IdInodeHard(IdKind::User, 1000))
        );
        // Back under the soft limit: the timer stops.
        q.add_for(A, -(10 * 1024), -2, 1200);
        assert_eq!(q.ugid.users[&1000].block_over_since, None);
        assert_eq!(q.ugid.users[&1000].inode_over_since, None);
        // Group limits apply to every member.
        q.set_id_limits(IdKind::Group, 100, IdLimits { inode_hard: 1, ..l }, 0);
        assert_eq!(
            q.check_for(B, 0, 1, 1200),
            Err(Exceeded::IdInodeHard(IdKind::Group, 100))
        );
    }

    #[test]
    fn chown_moves_the_charge() {
        let mut q = quota(10);
        q.add_for(A, 8192, 1, 0);
        let to = Owner::new(2000, 200);
        assert_eq!(q.check_chown(A, to, 8192, 1, 0), Ok(()));
        q.chown(A, to, 8192, 1, 0);
        assert_eq!(
            q.usage,
            Usage {
                bytes: 8192,
                inodes: 1
            },
            "first level unchanged"
        );
        assert_eq!(q.id_usage(IdKind::User, 1000), None);
        assert_eq!(q.id_usage(IdKind::Group, 100), None);
        assert_eq!(
            q.id_usage(IdKind::User, 2000),
            Some(Usage {
                bytes: 8192,
                inodes: 1
            })
        );
        assert_eq!(
            q.id_usage(IdKind::Group, 200),
            Some(Usage {
                bytes: 8192,
                inodes: 1
            })
        );
        // The new owner's limits can refuse it.
        q.set_id_limits(
            IdKind::User,
            1000,
            IdLimits {
                block_hard: 4,
                ..IdLimits::default()
            },
            0,
        );
        assert_eq!(
            q.check_chown(to, A, 8192, 1, 0),
            Err(Exceeded::IdBlockHard(IdKind::User, 1000))
        );
        // Only the gid changes: the uid's charge stays.
        let g = Owner::new(2000, 300);
        q.chown(to, g, 8192, 1, 0);
        assert_eq!(
            q.id_usage(IdKind::User, 2000),
            Some(Usage {
                bytes: 8192,
                inodes: 1
            })
        );
        assert_eq!(
            q.id_usage(IdKind::Group, 300),
            Some(Usage {
                bytes: 8192,
                inodes: 1
            })
        );
    }

    fn alloc(p: &Path) -> i64 {
        (std::fs::symlink_metadata(p).unwrap().blocks() * 512) as i64
    }

    fn owner(p: &Path) -> Owner {
        let md = std::fs::symlink_metadata(p).unwrap();
        Owner::new(md.uid(), md.gid())
    }

    /// Do what a FUSE layer does, account it incrementally, and compare
    /// with a scan of the result.
    #[test]
    fn scan_equals_incremental() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut q = Quota::new(Limits::none(), Usage::default());
        q.set_ugid_limit(100);
        q.load_scan(&scan_ids(root).unwrap(), 0);
        assert!(q.ugid.counted);

        let d = root.join("d");
        std::fs::create_dir(&d).unwrap();
        q.add_for(owner(&d), alloc(&d), 1, 0);
        let mut files = Vec::new();
        for (i, size) in [0usize, 100, 5000, 70000].into_iter().enumerate() {
            let f = d.join(format!("f{i}"));
            std::fs::write(&f, b"").unwrap();
            q.add_for(owner(&f), alloc(&f), 1, 0);
            let before = alloc(&f);
            std::fs::write(&f, vec![7u8; size]).unwrap();
            q.add_for(owner(&f), alloc(&f) - before, 0, 0);
            files.push(f);
        }
        // A hardlink adds no inode and no blocks.
        std::fs::hard_link(&files[3], root.join("link")).unwrap();
        // Truncate.
        let before = alloc(&files[3]);
        std::fs::File::options()
            .write(true)
            .open(&files[3])
            .unwrap()
            .set_len(10)
            .unwrap();
        q.add_for(owner(&files[3]), alloc(&files[3]) - before, 0, 0);
        // Unlink the last link of a file.
        let gone = &files[2];
        let (o, a) = (owner(gone), alloc(gone));
        std::fs::remove_file(gone).unwrap();
        q.add_for(o, -a, -1, 0);
        // chown, when allowed to.
        if rustix::process::geteuid().is_root() {
            let f = &files[1];
            let (from, a) = (owner(f), alloc(f) as u64);
            std::os::unix::fs::lchown(f, Some(4242), Some(4343)).unwrap();
            q.chown(from, Owner::new(4242, 4343), a, 1, 0);
        }

        let s = scan_ids(root).unwrap();
        assert_eq!(q.usage, s.usage);
        for kind in IdKind::BOTH {
            let scanned = match kind {
                IdKind::User => &s.users,
                IdKind::Group => &s.groups,
            };
            let counted: BTreeMap<u32, Usage> = q
                .ugid
                .entries(kind)
                .iter()
                .map(|(&id, e)| (id, e.usage))
                .collect();
            assert_eq!(&counted, scanned, "{kind:?}");
        }
    }
}
