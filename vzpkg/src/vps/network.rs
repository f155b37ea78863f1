//! Networking (issue 26) in the VPS's life: what `start`, `stop`,
//! `destroy` and `set` ask of [`crate::net`]. The network namespace itself
//! is made by the start sequence (every VPS has its own, see
//! [`process::StartPlan`]); here its devices are made and configured from
//! the host side once init's namespace exists.

use super::*;
use crate::net::config::{IpNet, Netif};

/// `IP_ADDRESS`, `NETIF`, `NAMESERVER` and `SEARCHDOMAIN` as `set` will
/// leave them, checked before anything changes.
pub(super) struct NetPlan {
    ips: Vec<IpNet>,
    netifs: Vec<Netif>,
    nameserver: Option<Vec<String>>,
    searchdomain: Option<Vec<String>>,
    /// Addresses or interfaces change.
    net_change: bool,
}

impl NetPlan {
    /// Anything the VPS's `/etc/hosts` or `/etc/resolv.conf` shows changes.
    pub(super) fn changes_names(&self) -> bool {
        self.net_change || self.nameserver.is_some() || self.searchdomain.is_some()
    }

    /// `cfg` with the plan applied.
    pub(super) fn apply_to(&self, cfg: &mut VpsConfig) {
        cfg.ip_address = self.ips.clone();
        cfg.netif = self.netifs.clone();
        if let Some(n) = &self.nameserver {
            cfg.nameserver = n.clone();
        }
        if let Some(s) = &self.searchdomain {
            cfg.searchdomain = s.clone();
        }
    }
}

/// Does the VPS have devices for the host to make?
fn networked(cfg: &VpsConfig) -> bool {
    !cfg.ip_address.is_empty() || !cfg.netif.is_empty()
}

impl Vz {
    /// The host side of networking, from `conf/vz.conf`.
    fn host_net(&self) -> Result<crate::net::HostNet, VpsError> {
        let conf = self.root.global_conf()?;
        Ok(crate::net::HostNet {
            run_dir: self.root.base.join("run"),
            route_src_dev: conf
                .get("VE_ROUTE_SRC_DEV")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            conf_path: self.root.global_conf_path(),
        })
    }

    /// Remove what the VPS has on the host (routes, proxies, devices).
    pub(super) fn net_clean(&self, ctid: u32) -> Result<(), VpsError> {
        self.host_net()?
            .clean(ctid)
            .map_err(|source| VpsError::Net { ctid, source })
    }

    /// Before init starts: what a crash or a `kill -9` left on the host
    /// goes, and the VPS's `/etc/hosts` and `/etc/resolv.conf` are brought
    /// up to date (through the mounted root, so the quota sees them).
    pub(super) fn net_before_start(&self, cfg: &VpsConfig) -> Result<(), VpsError> {
        let leftovers = self.root.base.join("run").join(format!("{}.net", cfg.ctid));
        if networked(cfg) || leftovers.exists() {
            self.net_clean(cfg.ctid)?;
        }
        if networked(cfg) {
            self.write_identity(cfg, &cfg.ve_root, false)?;
        }
        Ok(())
    }

    /// Once init (`pid`) runs in its own network namespace: its venet pair
    /// and veth interfaces. On failure the host side is removed again; the
    /// caller stops the VPS.
    pub(super) fn net_after_start(&self, cfg: &VpsConfig, pid: i32) -> Result<(), VpsError> {
        if !networked(cfg) {
            return Ok(());
        }
        let ctid = cfg.ctid;
        let host_net = self.host_net()?;
        let up = host_net
            .set_ips(ctid, pid, &cfg.ip_address)
            .and_then(|warnings| {
                host_net.set_netifs(ctid, pid, &[], &cfg.netif)?;
                Ok(warnings)
            });
        match up {
            Ok(warnings) => {
                for w in warnings {
                    eprintln!("vzctl: VPS {ctid}: warning: {w}");
                }
                Ok(())
            }
            Err(source) => {
                let _ = host_net.clean(ctid);
                Err(VpsError::Net { ctid, source })
            }
        }
    }

    /// `set`'s networking options against the VPS's config: the lists as
    /// they will be. An address another VPS of this host has is refused.
    pub(super) fn net_plan(&self, cfg: &VpsConfig, opts: &SetOptions) -> Result<NetPlan, VpsError> {
        let ctid = cfg.ctid;
        let mut ips = cfg.ip_address.clone();
        ips.retain(|ip| !opts.ipdel.iter().any(|d| d.matches(ip)));
        if !opts.ipadd.is_empty() {
            for other in self.list_ids()?.into_iter().filter(|o| *o != ctid) {
                let Ok(ocfg) = self.config(other) else {
                    continue;
                };
                if let Some(ip) = opts
                    .ipadd
                    .iter()
                    .find(|a| ocfg.ip_address.iter().any(|o| o.addr == a.addr))
                {
                    return Err(VpsError::IpInUse {
                        ctid,
                        addr: ip.addr,
                        other,
                    });
                }
            }
        }
        for a in &opts.ipadd {
            match ips.iter_mut().find(|i| i.addr == a.addr) {
                Some(i) => *i = *a,
                None => ips.push(*a),
            }
        }
        let mut netifs = cfg.netif.clone();
        for d in &opts.netif_del {
            if d == "all" {
                netifs.clear();
            } else if !netifs.iter().any(|n| n.ifname == *d) {
                return Err(VpsError::BadValue {
                    option: "--netif_del",
                    value: d.clone(),
                    why: "the VPS has no such interface (see NETIF in its config)",
                });
            } else {
                netifs.retain(|n| n.ifname != *d);
            }
        }
        for a in &opts.netif_add {
            if netifs.iter().any(|n| n.ifname == a.ifname) {
                return Err(VpsError::BadValue {
                    option: "--netif_add",
                    value: a.ifname.clone(),
                    why: "the VPS has an interface of that name; remove it first with --netif_del",
                });
            }
            let mut n = a.clone();
            crate::net::fill_netif(ctid, &mut n, &netifs).map_err(io_err(
                ctid,
                "get random bytes for a MAC address of",
                Path::new(&a.ifname),
            ))?;
            netifs.push(n);
        }
        let net_change = ips != cfg.ip_address || netifs != cfg.netif;
        Ok(NetPlan {
            ips,
            netifs,
            nameserver: (!opts.nameserver.is_empty()).then(|| opts.nameserver.clone()),
            searchdomain: (!opts.searchdomain.is_empty()).then(|| opts.searchdomain.clone()),
            net_change,
        })
    }

    /// On a running VPS, `set`'s networking at once: devices, addresses,
    /// routes, proxies and filter, then the names in its files. `hostname`
    /// is the one `set` gives, if any. Returns whether anything was applied.
    pub(super) fn net_set_live(
        &self,
        cfg: &VpsConfig,
        plan: &NetPlan,
        hostname: Option<&String>,
    ) -> Result<bool, VpsError> {
        let ctid = cfg.ctid;
        let Some(pid) = self.running_pid(cfg) else {
            return Ok(false);
        };
        if plan.net_change {
            let host_net = self.host_net()?;
            let net = |source| VpsError::Net { ctid, source };
            let warnings = host_net.set_ips(ctid, pid, &plan.ips).map_err(net)?;
            host_net
                .set_netifs(ctid, pid, &cfg.netif, &plan.netifs)
                .map_err(net)?;
            for w in warnings {
                eprintln!("vzctl: VPS {ctid}: warning: {w}");
            }
        }
        if !plan.changes_names() {
            return Ok(plan.net_change);
        }
        // /etc/hosts names the addresses; resolv.conf the servers.
        let mut next = cfg.clone();
        plan.apply_to(&mut next);
        if let Some(h) = hostname {
            next.hostname = Some(h.clone());
        }
        self.write_identity(&next, &cfg.ve_root, false)?;
        Ok(true)
    }

    /// The CTIDs with a config under this VZ root.
    fn list_ids(&self) -> Result<Vec<u32>, VpsError> {
        let dir = self.root.conf_dir();
        match std::fs::read_dir(&dir) {
            Ok(rd) => Ok(rd
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    parse_ctid(name.strip_suffix(".conf")?).ok()
                })
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err(0, "list", &dir)(e)),
        }
    }
}

/// The resolver file, once the VPS has a network or names of its own
/// (`NAMESERVER` empty or `inherit`: the host's servers).
pub(super) fn resolv_conf(cfg: &VpsConfig) -> Option<String> {
    if !networked(cfg) && cfg.nameserver.is_empty() && cfg.searchdomain.is_empty() {
        return None;
    }
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let servers = crate::net::names::expand(&cfg.nameserver, &host_resolv);
    Some(crate::net::names::resolv_conf(&servers, &cfg.searchdomain))
}
