//! The rtnetlink requests networking makes: links, addresses, routes,
//! neighbour proxies. Each builds one message and hands it to
//! [`Netlink`]; nothing here runs `ip`.

use crate::sys::netlink::{Netlink, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::io;
use std::net::IpAddr;

const RT_TABLE_MAIN: u8 = 254;

fn family(a: &IpAddr) -> AddressFamily {
    if a.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// A request's outcome where the errnos in `already` mean the wanted state
/// holds anyway (the address is there, the route is gone, ...).
pub(crate) fn done_unless<T>(r: io::Result<T>, already: &[i32]) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error().is_some_and(|n| already.contains(&n)) => Ok(()),
        r => r.map(|_| ()),
    }
}

/// The index of device `name`, or `None` if there is none.
pub fn link_index(nl: &mut Netlink, name: &str) -> io::Result<Option<u32>> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    match nl.request(RouteNetlinkMessage::GetLink(msg), 0) {
        Ok(answers) => Ok(answers.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
            _ => None,
        })),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The name of device `index`.
pub fn link_name(nl: &mut Netlink, index: u32) -> io::Result<Option<String>> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    match nl.request(RouteNetlinkMessage::GetLink(msg), 0) {
        Ok(answers) => Ok(answers.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            }),
            _ => None,
        })),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every device name in this namespace.
pub fn link_names(nl: &mut Netlink) -> io::Result<Vec<String>> {
    let answers = nl.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    Ok(answers
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            }),
            _ => None,
        })
        .collect())
}

/// Delete device `name`; false if there was none. Deleting one end of a
/// veth pair deletes the other, wherever it is.
pub fn delete_link(nl: &mut Netlink, name: &str) -> io::Result<bool> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    match nl.request(RouteNetlinkMessage::DelLink(msg), 0) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ENOENT)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One end of a veth pair as it is made.
pub struct VethEnd<'a> {
    pub name: &'a str,
    pub mac: [u8; 6],
    pub flags: LinkFlags,
}

/// Make a veth pair: `host` here, `peer` moved at once into the network
/// namespace of process `peer_pid`. The ends' `flags` are set after (the
/// kernel refuses flags on a pair being made): see [`set_flags`].
pub fn create_veth(
    nl: &mut Netlink,
    host: &VethEnd,
    peer: &VethEnd,
    peer_pid: i32,
) -> io::Result<()> {
    let mut p = LinkMessage::default();
    p.attributes
        .push(LinkAttribute::IfName(peer.name.to_string()));
    p.attributes.push(LinkAttribute::Address(peer.mac.to_vec()));
    p.attributes.push(LinkAttribute::NetNsPid(peer_pid as u32));
    let mut msg = LinkMessage::default();
    msg.attributes
        .push(LinkAttribute::IfName(host.name.to_string()));
    msg.attributes
        .push(LinkAttribute::Address(host.mac.to_vec()));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
    ]));
    nl.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
        .map(|_| ())
}

/// Make a bridge named `name`, up.
pub fn create_bridge(nl: &mut Netlink, name: &str) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    nl.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
        .map(|_| ())
}

/// Put device `index` into bridge `bridge` (its controller).
pub fn set_controller(nl: &mut Netlink, index: u32, bridge: u32) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::Controller(bridge));
    nl.request(RouteNetlinkMessage::SetLink(msg), 0).map(|_| ())
}

/// Set `flags` (up, no ARP) on device `index`.
pub fn set_flags(nl: &mut Netlink, index: u32, flags: LinkFlags) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = flags;
    msg.header.change_mask = flags;
    nl.request(RouteNetlinkMessage::SetLink(msg), 0).map(|_| ())
}

fn address_message(index: u32, addr: IpAddr, prefix: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(&addr);
    msg.header.prefix_len = prefix;
    msg.header.index = index;
    msg.header.scope = AddressScope::Universe;
    msg.attributes.push(AddressAttribute::Local(addr));
    msg.attributes.push(AddressAttribute::Address(addr));
    if addr.is_ipv6() {
        // A point-to-point device with no neighbours: nothing to detect,
        // and the address is usable at once, not after a second of DAD.
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    msg
}

/// Add `addr/prefix` to device `index`; an address already there is fine.
pub fn add_address(nl: &mut Netlink, index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    let msg = address_message(index, addr, prefix);
    done_unless(
        nl.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ),
        &[libc::EEXIST],
    )
}

/// The global addresses on device `index`, with their prefix lengths.
pub fn addresses(nl: &mut Netlink, index: u32) -> io::Result<Vec<(IpAddr, u8)>> {
    let answers = nl.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
    Ok(answers
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a)
                if a.header.index == index && a.header.scope == AddressScope::Universe =>
            {
                let prefix = a.header.prefix_len;
                a.attributes.into_iter().find_map(|at| match at {
                    AddressAttribute::Address(ip) => Some((ip, prefix)),
                    _ => None,
                })
            }
            _ => None,
        })
        .collect())
}

/// Remove `addr` from device `index`; one not there is fine.
pub fn del_address(nl: &mut Netlink, index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    let msg = address_message(index, addr, prefix);
    done_unless(
        nl.request(RouteNetlinkMessage::DelAddress(msg), 0),
        &[libc::EADDRNOTAVAIL, libc::ENOENT, libc::ENODEV],
    )
}

fn route_message(index: u32, dst: Option<(IpAddr, u8)>, v6: bool) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    msg.header.table = RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Static;
    msg.header.kind = RouteType::Unicast;
    // A route through a device with no gateway: the peer is on the link.
    msg.header.scope = if v6 {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    if let Some((addr, len)) = dst {
        msg.header.destination_prefix_length = len;
        msg.attributes.push(RouteAttribute::Destination(match addr {
            IpAddr::V4(a) => RouteAddress::Inet(a),
            IpAddr::V6(a) => RouteAddress::Inet6(a),
        }));
    }
    msg.attributes.push(RouteAttribute::Oif(index));
    msg
}

/// A route to `dst` (or the default route, `None`) through device `index`.
pub fn add_route(
    nl: &mut Netlink,
    index: u32,
    dst: Option<(IpAddr, u8)>,
    v6: bool,
) -> io::Result<()> {
    let msg = route_message(index, dst, v6);
    done_unless(
        nl.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ),
        &[libc::EEXIST],
    )
}

pub fn del_route(
    nl: &mut Netlink,
    index: u32,
    dst: Option<(IpAddr, u8)>,
    v6: bool,
) -> io::Result<()> {
    let msg = route_message(index, dst, v6);
    done_unless(
        nl.request(RouteNetlinkMessage::DelRoute(msg), 0),
        &[libc::ESRCH, libc::ENOENT, libc::ENODEV],
    )
}

/// The device of the main table's default route (IPv4 first, then IPv6).
pub fn default_route_dev(nl: &mut Netlink) -> io::Result<Option<u32>> {
    for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut q = RouteMessage::default();
        q.header.address_family = fam;
        for m in nl.dump(RouteNetlinkMessage::GetRoute(q))? {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            if r.header.destination_prefix_length != 0
                || r.header.table != RT_TABLE_MAIN
                || r.header.kind != RouteType::Unicast
            {
                continue;
            }
            if let Some(oif) = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            }) {
                return Ok(Some(oif));
            }
        }
    }
    Ok(None)
}

fn proxy_message(index: u32, addr: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family(&addr);
    msg.header.ifindex = index;
    msg.header.flags = NeighbourFlags::Proxy;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::Destination(match addr {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    msg
}

/// Answer ARP (IPv4) or NDP (IPv6) for `addr` on device `index`.
pub fn add_proxy(nl: &mut Netlink, index: u32, addr: IpAddr) -> io::Result<()> {
    let msg = proxy_message(index, addr);
    done_unless(
        nl.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ),
        &[libc::EEXIST],
    )
}

pub fn del_proxy(nl: &mut Netlink, index: u32, addr: IpAddr) -> io::Result<()> {
    let msg = proxy_message(index, addr);
    done_unless(
        nl.request(RouteNetlinkMessage::DelNeighbour(msg), 0),
        &[libc::ENOENT, libc::ENODEV],
    )
}
