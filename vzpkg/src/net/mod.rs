//! VPS networking, OpenVZ style, done with the kernel's own parts.
//!
//! *venet*: a VPS with addresses gets a veth pair, `venet0` inside and
//! `venet<CTID>` on the host. Both ends carry no ARP and one MAC, so the
//! pair is a plain point-to-point link: the VPS sends everything to it
//! (its default routes go through `venet0`, no gateway) and the host routes
//! each of the VPS's addresses (`/32`, `/128`) to `venet<CTID>`. The host
//! answers ARP and NDP for the addresses on its uplink (neighbour proxy
//! entries), so the LAN reaches the VPS, and a tc filter on the host end
//! ([`filter`]) drops whatever the VPS sends from an address it was not
//! given.
//!
//! *veth* (`NETIF`): a veth pair with MACs, the host end optionally in a
//! bridge; what runs on it is the VPS's business.
//!
//! Everything is made over netlink from this process ([`rtnl`]). What
//! outlives a VPS on the host (proxy entries on the uplink, and the host
//! ends while the VPS's namespace is being torn down) is written to
//! `run/CTID.net` *before* it is made, and removed from there by `stop`,
//! and by the next `start` after a crash.

pub mod config;
pub mod filter;
pub mod names;
pub mod rtnl;

use crate::sys::netlink::Netlink;
use config::{IpNet, Netif};
use netlink_packet_route::link::LinkFlags;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The device a venet pair has inside a VPS.
pub const VENET_INSIDE: &str = "venet0";

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("cannot {what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("the uplink {name} (VE_ROUTE_SRC_DEV in {conf}) is no device of this host; set it to the interface of the host's LAN, or remove it to use the default route's")]
    NoUplink { name: String, conf: PathBuf },
    #[error("device name {name} is taken on the host by something other than this VPS; pick another host_ifname with --netif_del/--netif_add")]
    NameTaken { name: String },
    #[error("the VPS runs in the host's network namespace (it was started by a vzctl that did not give every VPS its own); restart it to give it its own")]
    SharedNamespace,
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn nl_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Netlink { what, source }
}

/// The host's name for a VPS's venet end.
pub fn venet_host_name(ctid: u32) -> String {
    format!("venet{ctid}")
}

/// OpenVZ's default name for the host end of a VPS's `n`th veth.
pub fn default_host_ifname(ctid: u32, n: usize) -> String {
    format!("veth{ctid}.{n}")
}

/// The one MAC both venet ends carry: with no ARP, each end sends to its
/// own address, which the other end must take as its own.
fn venet_mac(ctid: u32) -> [u8; 6] {
    let c = ctid.to_be_bytes();
    [0x02, 0x56, c[0], c[1], c[2], c[3]]
}

/// A fresh locally administered unicast MAC.
pub fn random_mac() -> io::Result<[u8; 6]> {
    let mut m = [0u8; 6];
    crate::sys::rand::fill(&mut m)?;
    m[0] = (m[0] & 0xFC) | 0x02;
    Ok(m)
}

/// What `start` left on the host for a VPS, recorded before it is made.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct HostState {
    /// The uplink the proxies are on.
    uplink: Option<String>,
    proxied: Vec<IpAddr>,
    /// Host-side devices (venet and veth ends).
    devices: Vec<String>,
}

/// The host side: where state is kept and which device faces the LAN.
#[derive(Debug, Clone)]
pub struct HostNet {
    /// `VZ_ROOT/run`.
    pub run_dir: PathBuf,
    /// `VE_ROUTE_SRC_DEV` from the global config, if set.
    pub route_src_dev: Option<String>,
    /// The global config's path, for messages.
    pub conf_path: PathBuf,
}

impl HostNet {
    fn state_path(&self, ctid: u32) -> PathBuf {
        self.run_dir.join(format!("{ctid}.net"))
    }

    fn load(&self, ctid: u32) -> HostState {
        std::fs::read(self.state_path(ctid))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, ctid: u32, s: &HostState) -> Result<(), NetError> {
        let path = self.state_path(ctid);
        let io = |source| NetError::Io {
            op: "write",
            path: path.clone(),
            source,
        };
        if *s == HostState::default() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io(e)),
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(&self.run_dir).map_err(io)?;
        let tmp = path.with_extension("net.tmp");
        let bytes = serde_json::to_vec(s).unwrap_or_default();
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(io)
    }

    /// Remove what the VPS has on the host: its proxies on the uplink and
    /// its host-side devices (routes and the filter go with them). Safe to
    /// run when nothing is there (a clean stop, a host that rebooted).
    pub fn clean(&self, ctid: u32) -> Result<(), NetError> {
        let mut nl = Netlink::open().map_err(nl_err("open a netlink socket"))?;
        let state = self.load(ctid);
        if let Some(up) = &state.uplink {
            if let Some(index) =
                rtnl::link_index(&mut nl, up).map_err(nl_err(format!("look up {up}")))?
            {
                for a in &state.proxied {
                    rtnl::del_proxy(&mut nl, index, *a)
                        .map_err(nl_err(format!("remove the proxy for {a} on {up}")))?;
                }
            }
        }
        let mut devices = state.devices.clone();
        devices.push(venet_host_name(ctid));
        for d in &devices {
            rtnl::delete_link(&mut nl, d).map_err(nl_err(format!("delete device {d}")))?;
        }
        self.save(ctid, &HostState::default())
    }

    /// The uplink's name and index: `VE_ROUTE_SRC_DEV`, else the default
    /// route's device; `None` when the host has neither.
    fn uplink(&self, nl: &mut Netlink) -> Result<Option<(String, u32)>, NetError> {
        if let Some(name) = &self.route_src_dev {
            return match rtnl::link_index(nl, name).map_err(nl_err(format!("look up {name}")))? {
                Some(i) => Ok(Some((name.clone(), i))),
                None => Err(NetError::NoUplink {
                    name: name.clone(),
                    conf: self.conf_path.clone(),
                }),
            };
        }
        let Some(index) = rtnl::default_route_dev(nl).map_err(nl_err("read the default route"))?
        else {
            return Ok(None);
        };
        Ok(rtnl::link_name(nl, index)
            .map_err(nl_err("look up the default route's device"))?
            .map(|n| (n, index)))
    }

    /// Give the VPS whose init is `pid` the addresses `new`, whatever it
    /// has now (what its `venet0` carries): at start, and for `--ipadd` and
    /// `--ipdel` on a running VPS. Returns warnings for the operator
    /// (forwarding off, no uplink).
    pub fn set_ips(&self, ctid: u32, pid: i32, new: &[IpNet]) -> Result<Vec<String>, NetError> {
        let mut warnings = Vec::new();
        let mut nl = Netlink::open().map_err(nl_err("open a netlink socket"))?;
        let host_name = venet_host_name(ctid);
        let mut state = self.load(ctid);
        let uplink = self.uplink(&mut nl)?;
        let old = &live_ips(pid)?;
        if new.is_empty() {
            // The pair goes, and with it the routes and the filter.
            rtnl::delete_link(&mut nl, &host_name)
                .map_err(nl_err(format!("delete device {host_name}")))?;
            if let Some((up, index)) = &uplink {
                for ip in old {
                    rtnl::del_proxy(&mut nl, *index, ip.addr)
                        .map_err(nl_err(format!("remove the proxy for {} on {up}", ip.addr)))?;
                }
            }
            state.proxied.retain(|a| !old.iter().any(|o| o.addr == *a));
            state.devices.retain(|d| *d != host_name);
            return self.save(ctid, &state).map(|()| warnings);
        }
        let mut inside = Netlink::open_in(pid).map_err(nl_err(
            "open a netlink socket in the VPS's network namespace",
        ))?;
        if same_netns(pid) {
            return Err(NetError::SharedNamespace);
        }
        let host_index = match rtnl::link_index(&mut nl, &host_name)
            .map_err(nl_err(format!("look up {host_name}")))?
        {
            Some(i) => i,
            None => {
                if !state.devices.contains(&host_name) {
                    state.devices.push(host_name.clone());
                    self.save(ctid, &state)?;
                }
                let flags = LinkFlags::Up | LinkFlags::Noarp;
                let mac = venet_mac(ctid);
                rtnl::create_veth(
                    &mut nl,
                    &rtnl::VethEnd {
                        name: &host_name,
                        mac,
                        flags,
                    },
                    &rtnl::VethEnd {
                        name: VENET_INSIDE,
                        mac,
                        flags,
                    },
                    pid,
                )
                .map_err(nl_err(format!(
                    "create the venet pair {host_name}/{VENET_INSIDE}"
                )))?;
                let index = rtnl::link_index(&mut nl, &host_name)
                    .map_err(nl_err(format!("look up {host_name}")))?
                    .ok_or_else(|| {
                        nl_err(format!("find {host_name}"))(io::ErrorKind::NotFound.into())
                    })?;
                rtnl::set_flags(&mut nl, index, flags)
                    .map_err(nl_err(format!("bring {host_name} up")))?;
                // The filter before any route: nothing the VPS sends gets
                // out unchecked.
                filter::install(&mut nl, index, &[])
                    .map_err(nl_err(format!("put the source filter on {host_name}")))?;
                index
            }
        };
        let in_index = rtnl::link_index(&mut inside, VENET_INSIDE)
            .map_err(nl_err(format!("look up {VENET_INSIDE} in the VPS")))?
            .ok_or_else(|| {
                nl_err(format!("find {VENET_INSIDE} in the VPS"))(io::ErrorKind::NotFound.into())
            })?;
        rtnl::set_flags(&mut inside, in_index, LinkFlags::Up | LinkFlags::Noarp)
            .map_err(nl_err(format!("bring {VENET_INSIDE} up")))?;
        let gone: Vec<&IpNet> = old
            .iter()
            .filter(|o| !new.iter().any(|n| n.addr == o.addr))
            .collect();
        let added: Vec<&IpNet> = new.iter().filter(|n| !old.contains(n)).collect();

        // Going: refused at the filter first, so it is cut at once.
        filter::set(&mut nl, host_index, new)
            .map_err(nl_err(format!("set the source filter on {host_name}")))?;
        for ip in &gone {
            let a = ip.addr;
            if let Some((up, index)) = &uplink {
                rtnl::del_proxy(&mut nl, *index, a)
                    .map_err(nl_err(format!("remove the proxy for {a} on {up}")))?;
            }
            rtnl::del_route(&mut nl, host_index, Some((a, ip.host_len())), !ip.is_ipv4())
                .map_err(nl_err(format!("remove the route to {a}")))?;
            rtnl::del_address(&mut inside, in_index, a, ip.prefix)
                .map_err(nl_err(format!("remove {a} from {VENET_INSIDE}")))?;
        }
        state.proxied.retain(|a| !gone.iter().any(|g| g.addr == *a));

        if let Some((up, _)) = &uplink {
            state.uplink = Some(up.clone());
            for ip in &added {
                if !state.proxied.contains(&ip.addr) {
                    state.proxied.push(ip.addr);
                }
            }
        }
        self.save(ctid, &state)?;
        for ip in &added {
            let a = ip.addr;
            // A changed prefix: the old form of the address goes first.
            if let Some(o) = old.iter().find(|o| o.addr == a) {
                rtnl::del_address(&mut inside, in_index, a, o.prefix)
                    .map_err(nl_err(format!("remove {a} from {VENET_INSIDE}")))?;
            }
            rtnl::add_address(&mut inside, in_index, a, ip.prefix)
                .map_err(nl_err(format!("add {ip} to {VENET_INSIDE}")))?;
            rtnl::add_route(&mut nl, host_index, Some((a, ip.host_len())), !ip.is_ipv4())
                .map_err(nl_err(format!("route {a} to {host_name}")))?;
            if let Some((up, index)) = &uplink {
                if !ip.is_ipv4() {
                    enable_proxy_ndp(up)?;
                }
                rtnl::add_proxy(&mut nl, *index, a)
                    .map_err(nl_err(format!("answer ARP/NDP for {a} on {up}")))?;
            }
        }
        for v6 in [false, true] {
            if new.iter().any(|n| n.is_ipv4() != v6) {
                rtnl::add_route(&mut inside, in_index, None, v6).map_err(nl_err(format!(
                    "add the VPS's default route through {VENET_INSIDE}"
                )))?;
            }
        }
        if uplink.is_none() {
            warnings.push("the host has no default route and VE_ROUTE_SRC_DEV is not set: the VPS's addresses are reachable from this host only".into());
        }
        for (v6, file) in [
            (false, "/proc/sys/net/ipv4/ip_forward"),
            (true, "/proc/sys/net/ipv6/conf/all/forwarding"),
        ] {
            if new.iter().any(|n| n.is_ipv4() != v6)
                && std::fs::read_to_string(file).is_ok_and(|v| v.trim() == "0")
            {
                warnings.push(format!("{file} is 0: the host does not forward, so only the host reaches the VPS; set it to 1 (sysctl) to let the LAN in"));
            }
        }
        Ok(warnings)
    }

    /// Bring the VPS's veth interfaces from `old` to `new` (matched by the
    /// inside name). Entries must have their host names filled in
    /// ([`fill_netif`]).
    pub fn set_netifs(
        &self,
        ctid: u32,
        pid: i32,
        old: &[Netif],
        new: &[Netif],
    ) -> Result<(), NetError> {
        let mut nl = Netlink::open().map_err(nl_err("open a netlink socket"))?;
        let mut state = self.load(ctid);
        for o in old.iter().filter(|o| !new.contains(o)) {
            if let Some(h) = &o.host_ifname {
                rtnl::delete_link(&mut nl, h).map_err(nl_err(format!("delete device {h}")))?;
                state.devices.retain(|d| d != h);
            }
        }
        self.save(ctid, &state)?;
        let added: Vec<&Netif> = new.iter().filter(|n| !old.contains(n)).collect();
        if added.is_empty() {
            return Ok(());
        }
        if same_netns(pid) {
            return Err(NetError::SharedNamespace);
        }
        for n in added {
            let host = n
                .host_ifname
                .clone()
                .unwrap_or_else(|| default_host_ifname(ctid, 0));
            if rtnl::link_index(&mut nl, &host)
                .map_err(nl_err(format!("look up {host}")))?
                .is_some()
            {
                if state.devices.contains(&host) {
                    rtnl::delete_link(&mut nl, &host)
                        .map_err(nl_err(format!("delete device {host}")))?;
                } else {
                    return Err(NetError::NameTaken { name: host });
                }
            }
            if !state.devices.contains(&host) {
                state.devices.push(host.clone());
                self.save(ctid, &state)?;
            }
            let rand = |m: Option<[u8; 6]>| match m {
                Some(m) => Ok(m),
                None => random_mac().map_err(nl_err("make a MAC address")),
            };
            rtnl::create_veth(
                &mut nl,
                &rtnl::VethEnd {
                    name: &host,
                    mac: rand(n.host_mac)?,
                    flags: LinkFlags::Up,
                },
                &rtnl::VethEnd {
                    name: &n.ifname,
                    mac: rand(n.mac)?,
                    flags: LinkFlags::Up,
                },
                pid,
            )
            .map_err(nl_err(format!("create the veth pair {host}/{}", n.ifname)))?;
            let hi = rtnl::link_index(&mut nl, &host)
                .map_err(nl_err(format!("look up {host}")))?
                .ok_or_else(|| nl_err(format!("find {host}"))(io::ErrorKind::NotFound.into()))?;
            rtnl::set_flags(&mut nl, hi, LinkFlags::Up)
                .map_err(nl_err(format!("bring {host} up")))?;
            let mut inside = Netlink::open_in(pid).map_err(nl_err(
                "open a netlink socket in the VPS's network namespace",
            ))?;
            if let Some(ii) = rtnl::link_index(&mut inside, &n.ifname)
                .map_err(nl_err(format!("look up {} in the VPS", n.ifname)))?
            {
                rtnl::set_flags(&mut inside, ii, LinkFlags::Up)
                    .map_err(nl_err(format!("bring {} up in the VPS", n.ifname)))?;
            }
            if let Some(br) = &n.bridge {
                let bi = match rtnl::link_index(&mut nl, br)
                    .map_err(nl_err(format!("look up {br}")))?
                {
                    Some(i) => i,
                    None => {
                        match rtnl::create_bridge(&mut nl, br) {
                            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                                return Err(nl_err(format!("create bridge {br}"))(e))
                            }
                            _ => {}
                        }
                        rtnl::link_index(&mut nl, br)
                            .map_err(nl_err(format!("look up {br}")))?
                            .ok_or_else(|| {
                                nl_err(format!("find bridge {br}"))(io::ErrorKind::NotFound.into())
                            })?
                    }
                };
                rtnl::set_controller(&mut nl, hi, bi)
                    .map_err(nl_err(format!("put {host} into bridge {br}")))?;
            }
        }
        Ok(())
    }
}

/// The addresses on the VPS's `venet0` now (none without one).
fn live_ips(pid: i32) -> Result<Vec<IpNet>, NetError> {
    if same_netns(pid) {
        return Ok(Vec::new());
    }
    let mut inside = Netlink::open_in(pid).map_err(nl_err(
        "open a netlink socket in the VPS's network namespace",
    ))?;
    let Some(index) = rtnl::link_index(&mut inside, VENET_INSIDE)
        .map_err(nl_err(format!("look up {VENET_INSIDE} in the VPS")))?
    else {
        return Ok(Vec::new());
    };
    Ok(rtnl::addresses(&mut inside, index)
        .map_err(nl_err(format!("read the addresses of {VENET_INSIDE}")))?
        .into_iter()
        .map(|(addr, prefix)| IpNet { addr, prefix })
        .collect())
}

/// Give a new `NETIF` entry what OpenVZ fills in at `--netif_add`: MACs
/// and the host end's name, so they stay the same from start to start.
pub fn fill_netif(ctid: u32, n: &mut Netif, others: &[Netif]) -> io::Result<()> {
    if n.mac.is_none() {
        n.mac = Some(random_mac()?);
    }
    if n.host_mac.is_none() {
        n.host_mac = Some(random_mac()?);
    }
    if n.host_ifname.is_none() {
        let taken = |name: &str| {
            others
                .iter()
                .any(|o| o.host_ifname.as_deref() == Some(name))
        };
        n.host_ifname = (0..)
            .map(|i| default_host_ifname(ctid, i))
            .find(|c| !taken(c));
    }
    Ok(())
}

/// Is process `pid` in our own network namespace?
fn same_netns(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let theirs = ino(&format!("/proc/{pid}/ns/net"));
    theirs.is_some() && theirs == ino("/proc/self/ns/net")
}

/// NDP proxy entries answer only where the device's `proxy_ndp` is on;
/// OpenVZ's scripts turned it on for the uplink as well.
fn enable_proxy_ndp(uplink: &str) -> Result<(), NetError> {
    let path = Path::new("/proc/sys/net/ipv6/conf")
        .join(uplink)
        .join("proxy_ndp");
    match std::fs::read_to_string(&path) {
        Ok(v) if v.trim() != "0" => Ok(()),
        _ => std::fs::write(&path, "1").map_err(|source| NetError::Io {
            op: "write",
            path,
            source,
        }),
    }
}
