//! The network keys of `CTID.conf`, parsed and rendered without touching
//! the system: `IP_ADDRESS`, `NETIF`, `NAMESERVER`, `SEARCHDOMAIN`.

use std::fmt;
use std::net::IpAddr;

/// One venet address: the address the VPS owns, and the prefix length its
/// `venet0` shows (32 or 128 unless given). The host routes only the
/// address itself to the VPS, whatever the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// `ADDR`, `ADDR/LEN` or (IPv4) `ADDR/255.255.255.0`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, m) = match s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match m {
            None => max,
            Some(m) => match m.parse::<u8>() {
                Ok(n) if n <= max => n,
                Ok(_) => return None,
                Err(_) => {
                    let mask: std::net::Ipv4Addr = m.parse().ok()?;
                    let bits = u32::from(mask);
                    // A netmask is ones then zeros.
                    if !addr.is_ipv4() || bits.leading_ones() + bits.trailing_zeros() != 32 {
                        return None;
                    }
                    bits.leading_ones() as u8
                }
            },
        };
        usable(addr).then_some(IpNet { addr, prefix })
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The prefix length of the address alone (32 or 128).
    pub fn host_len(&self) -> u8 {
        if self.is_ipv4() {
            32
        } else {
            128
        }
    }
}

/// An address a VPS can own: unicast, not loopback or unspecified.
fn usable(a: IpAddr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
        && match a {
            IpAddr::V4(v4) => !v4.is_broadcast(),
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == self.host_len() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// `IP_ADDRESS="a b/24 ..."`; `None` names the first bad word.
pub fn parse_ip_list(s: &str) -> Result<Vec<IpNet>, String> {
    let mut out: Vec<IpNet> = Vec::new();
    for w in s.split_whitespace() {
        let ip = IpNet::parse(w).ok_or_else(|| w.to_string())?;
        if !out.iter().any(|o| o.addr == ip.addr) {
            out.push(ip);
        }
    }
    Ok(out)
}

pub fn render_ip_list(ips: &[IpNet]) -> String {
    ips.iter()
        .map(IpNet::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What `--ipdel` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpDel {
    All,
    One(IpAddr),
}

impl IpDel {
    pub fn parse(s: &str) -> Option<IpDel> {
        if s == "all" {
            return Some(IpDel::All);
        }
        // `--ipdel ADDR/MASK` names the same address.
        IpNet::parse(s).map(|n| IpDel::One(n.addr))
    }

    pub fn matches(&self, ip: &IpNet) -> bool {
        match self {
            IpDel::All => true,
            IpDel::One(a) => ip.addr == *a,
        }
    }
}

/// A veth interface of a VPS (OpenVZ's `NETIF` entry).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Netif {
    /// The name inside the VPS.
    pub ifname: String,
    pub mac: Option<[u8; 6]>,
    /// The host end's name (default `veth<CTID>.<N>`).
    pub host_ifname: Option<String>,
    pub host_mac: Option<[u8; 6]>,
    /// A bridge the host end joins (made if missing).
    pub bridge: Option<String>,
}

/// A name the kernel takes for a network device.
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && s.bytes().all(|b| {
            b.is_ascii_graphic() && b != b'/' && b != b':' && b != b',' && b != b'=' && b != b';'
        })
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    // Multicast addresses cannot be a device's own.
    (mac[0] & 1 == 0 && mac != [0; 6]).then_some(mac)
}

pub fn render_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Netif {
    /// `IFNAME[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE]` (`--netif_add`); empty
    /// fields are left to defaults. The error says which field is bad.
    pub fn parse_option(s: &str) -> Result<Netif, String> {
        let f: Vec<&str> = s.split(',').collect();
        if f.len() > 5 {
            return Err("more than 5 comma-separated fields".into());
        }
        let field = |i: usize| f.get(i).copied().filter(|v| !v.is_empty());
        Netif::from_fields(
            field(0).unwrap_or(""),
            field(1),
            field(2),
            field(3),
            field(4),
        )
    }

    fn from_fields(
        ifname: &str,
        mac: Option<&str>,
        host_ifname: Option<&str>,
        host_mac: Option<&str>,
        bridge: Option<&str>,
    ) -> Result<Netif, String> {
        if !valid_ifname(ifname) {
            return Err(format!("interface name {ifname:?}: 1 to 15 characters, no '/', ':', ',', '=', ';' or spaces"));
        }
        let mac_of = |what: &str, v: Option<&str>| {
            v.map(|m| {
                parse_mac(m).ok_or(format!(
                    "{what} {m:?}: expected XX:XX:XX:XX:XX:XX, not multicast"
                ))
            })
            .transpose()
        };
        let name_of = |what: &str, v: Option<&str>| {
            v.map(|n| {
                if valid_ifname(n) {
                    Ok(n.to_string())
                } else {
                    Err(format!(
                        "{what} {n:?}: 1 to 15 characters, no '/', ':', ',', '=', ';' or spaces"
                    ))
                }
            })
            .transpose()
        };
        Ok(Netif {
            ifname: ifname.to_string(),
            mac: mac_of("mac", mac)?,
            host_ifname: name_of("host_ifname", host_ifname)?,
            host_mac: mac_of("host_mac", host_mac)?,
            bridge: name_of("bridge", bridge)?,
        })
    }

    /// One `NETIF` entry: `ifname=eth0,mac=...,host_ifname=...,host_mac=...,bridge=...`.
    fn parse_conf_entry(s: &str) -> Result<Netif, String> {
        let (mut ifname, mut mac, mut host, mut host_mac, mut bridge) =
            ("", None, None, None, None);
        for kv in s.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or(format!("{kv:?} is not key=value"))?;
            let v = Some(v).filter(|v| !v.is_empty());
            match k {
                "ifname" => ifname = v.unwrap_or(""),
                "mac" => mac = v,
                "host_ifname" => host = v,
                "host_mac" => host_mac = v,
                "bridge" => bridge = v,
                // OpenVZ's other keys (gw, network, ...) are not ours to act on.
                _ => {}
            }
        }
        Netif::from_fields(ifname, mac, host, host_mac, bridge)
    }

    fn render_conf_entry(&self) -> String {
        let mut parts = vec![format!("ifname={}", self.ifname)];
        if let Some(m) = &self.mac {
            parts.push(format!("mac={}", render_mac(m)));
        }
        if let Some(h) = &self.host_ifname {
            parts.push(format!("host_ifname={h}"));
        }
        if let Some(m) = &self.host_mac {
            parts.push(format!("host_mac={}", render_mac(m)));
        }
        if let Some(b) = &self.bridge {
            parts.push(format!("bridge={b}"));
        }
        parts.join(",")
    }
}

/// `NETIF="ifname=eth0,...;ifname=eth1,..."`.
pub fn parse_netif_list(s: &str) -> Result<Vec<Netif>, String> {
    s.split(';')
        .filter(|e| !e.trim().is_empty())
        .map(|e| Netif::parse_conf_entry(e.trim()))
        .collect()
}

pub fn render_netif_list(list: &[Netif]) -> String {
    list.iter()
        .map(Netif::render_conf_entry)
        .collect::<Vec<_>>()
        .join(";")
}

/// A domain name for `--searchdomain`.
pub fn valid_domain(s: &str) -> bool {
    crate::vps::conf::valid_hostname(s.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_masks() {
        let a = IpNet::parse("198.51.100.7").unwrap();
        assert_eq!((a.prefix, a.to_string().as_str()), (32, "198.51.100.7"));
        assert_eq!(IpNet::parse("198.51.100.7/24").unwrap().prefix, 24);
        assert_eq!(
            IpNet::parse("198.51.100.7/255.255.255.0").unwrap().prefix,
            24
        );
        let b = IpNet::parse("2001:db8::7/64").unwrap();
        assert_eq!(b.to_string(), "2001:db8::7/64");
        assert_eq!(IpNet::parse("2001:db8::7").unwrap().prefix, 128);
        for bad in [
            "",
            "x",
            "1.2.3.4/33",
            "1.2.3.4/255.0.255.0",
            "0.0.0.0",
            "127.0.0.1",
            "fe80::1",
            "224.0.0.1",
            "2001:db8::1/129",
            "2001:db8::1/255.255.0.0",
        ] {
            assert!(IpNet::parse(bad).is_none(), "{bad}");
        }
        let l = parse_ip_list(" 192.0.2.1  2001:db8::1/64 192.0.2.1 ").unwrap();
        assert_eq!(render_ip_list(&l), "192.0.2.1 2001:db8::1/64");
        assert_eq!(parse_ip_list("192.0.2.1 nope"), Err("nope".into()));
        assert_eq!(IpDel::parse("all"), Some(IpDel::All));
        assert!(IpDel::parse("192.0.2.1/24")
            .unwrap()
            .matches(&IpNet::parse("192.0.2.1").unwrap()));
    }

    #[test]
    fn netif_option_and_conf_round_trip() {
        let n = Netif::parse_option("eth0,00:18:51:AA:BB:CC,veth101.0,,vmbr0").unwrap();
        assert_eq!(n.ifname, "eth0");
        assert_eq!(n.mac, Some([0, 0x18, 0x51, 0xaa, 0xbb, 0xcc]));
        assert_eq!(n.host_ifname.as_deref(), Some("veth101.0"));
        assert_eq!(n.host_mac, None);
        assert_eq!(n.bridge.as_deref(), Some("vmbr0"));
        let list = vec![n, Netif::parse_option("eth1").unwrap()];
        let text = render_netif_list(&list);
        assert_eq!(
            text,
            "ifname=eth0,mac=00:18:51:AA:BB:CC,host_ifname=veth101.0,bridge=vmbr0;ifname=eth1"
        );
        assert_eq!(parse_netif_list(&text).unwrap(), list);
        for bad in [
            "",
            "eth0,zz",
            "eth0,01:00:00:00:00:01",
            "a/b",
            "averyveryverylongname",
            "eth0,,,,,x",
        ] {
            assert!(Netif::parse_option(bad).is_err(), "{bad}");
        }
        assert!(parse_netif_list("mac=00:18:51:AA:BB:CC").is_err());
    }
}
