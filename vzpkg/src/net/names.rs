//! The name files networking writes into a VPS: `/etc/resolv.conf` and
//! `/etc/hosts`. Pure text here; the caller writes them through the VPS's
//! mount, so they are charged to its quota.

use super::config::IpNet;

/// `NAMESERVER`'s default and keyword: the host's own nameservers.
pub const INHERIT: &str = "inherit";

/// The nameservers `resolv` lists in its `nameserver` lines.
pub fn nameservers_of(resolv: &str) -> Vec<String> {
    resolv
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next().map(str::to_string))
                .flatten()
        })
        .collect()
}

/// The servers to write: `inherit` (or nothing configured) expands to the
/// host's, read from `host_resolv`.
pub fn expand(configured: &[String], host_resolv: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let wanted: Vec<&str> = if configured.is_empty() {
        vec![INHERIT]
    } else {
        configured.iter().map(String::as_str).collect()
    };
    for s in wanted {
        let add = if s == INHERIT {
            nameservers_of(host_resolv)
        } else {
            vec![s.to_string()]
        };
        for a in add {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// `/etc/resolv.conf` for `servers` and `search` domains.
pub fn resolv_conf(servers: &[String], search: &[String]) -> String {
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

/// `/etc/hosts`: localhost, and the hostname beside the VPS's first IPv4
/// and first IPv6 address (or 127.0.1.1 when it has none, as Debian does).
pub fn hosts_file(hostname: &str, ips: &[IpNet]) -> String {
    let short = hostname.split('.').next().unwrap_or(hostname);
    let names = if short == hostname {
        hostname.to_string()
    } else {
        format!("{hostname} {short}")
    };
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let v4 = ips.iter().find(|i| i.is_ipv4());
    let v6 = ips.iter().find(|i| !i.is_ipv4());
    if v4.is_none() && v6.is_none() {
        out.push_str(&format!("127.0.1.1\t{names}\n"));
    }
    for ip in [v4, v6].into_iter().flatten() {
        out.push_str(&format!("{}\t{names}\n", ip.addr));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherit_and_explicit_servers() {
        let host =
            "# made by hand\nnameserver 192.0.2.53\nsearch example.net\nnameserver 2001:db8::53\n";
        assert_eq!(expand(&[], host), vec!["192.0.2.53", "2001:db8::53"]);
        let mine = vec!["198.51.100.1".to_string(), INHERIT.to_string()];
        assert_eq!(
            expand(&mine, host),
            vec!["198.51.100.1", "192.0.2.53", "2001:db8::53"]
        );
        assert_eq!(
            resolv_conf(
                &["192.0.2.53".into()],
                &["example.com".into(), "example.org".into()]
            ),
            "search example.com example.org\nnameserver 192.0.2.53\n"
        );
    }

    #[test]
    fn hosts_names_the_addresses() {
        let ips = [
            IpNet::parse("2001:db8::7").unwrap(),
            IpNet::parse("198.51.100.7").unwrap(),
        ];
        let h = hosts_file("web.example.com", &ips);
        assert!(h.contains("198.51.100.7\tweb.example.com web\n"), "{h}");
        assert!(h.contains("2001:db8::7\tweb.example.com web\n"), "{h}");
        assert!(!h.contains("127.0.1.1"));
        assert!(hosts_file("web", &[]).contains("127.0.1.1\tweb\n"));
    }
}
