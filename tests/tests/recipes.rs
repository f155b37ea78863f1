//! Every shipped recipe parses, and the RPM ones point at URLs of the shape
//! their repositories have (this machine cannot reach CentOS or AlmaLinux
//! mirrors, so this is as far as a test can follow them here).

use std::path::Path;
use vzpkg::recipe::{Recipe, Source};

fn shipped() -> Vec<Recipe> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes");
    let names = vzpkg::recipe::known_recipes(&dir);
    assert!(names.len() >= 5, "{names:?}");
    names
        .iter()
        .map(|n| Recipe::find(n, &dir).unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect()
}

#[test]
fn every_shipped_recipe_parses() {
    let recipes = shipped();
    for want in [
        "debian-12",
        "debian-11",
        "centos-4",
        "centos-7",
        "almalinux-9",
    ] {
        assert!(recipes.iter().any(|r| r.name == want), "{want} missing");
    }
    for r in &recipes {
        assert_eq!(r.path.file_stem().unwrap(), r.name.as_str());
        if let Source::Deb(d) = &r.source {
            // Debian recipes name no mirror: the host's apt sources decide.
            assert!(d.mirror.is_none(), "{}", r.name);
            assert!(d.keyring.starts_with("/usr/share/keyrings"), "{}", r.name);
        }
    }
}

#[test]
fn rpm_recipes_point_at_repository_shaped_urls() {
    for r in shipped() {
        let Source::Rpm(src) = &r.source else {
            continue;
        };
        assert!(
            ["x86_64", "i386"].contains(&r.architecture.as_str()),
            "{}",
            r.name
        );
        assert!(
            r.packages.include.iter().any(|p| p == "rpm"),
            "{}: rpm must be in the set",
            r.name
        );
        for repo in &src.repos {
            let url = repo.baseurl.as_deref().unwrap();
            assert!(
                url.starts_with("http://") || url.starts_with("https://"),
                "{url}"
            );
            assert!(
                url.ends_with('/') && url.contains("$basearch"),
                "{}: {url}",
                r.name
            );
            assert!(
                repo.gpgcheck && !repo.gpgkey.is_empty() && !repo.unverified,
                "{}: {}",
                r.name,
                repo.name
            );
            // Every shipped key is pinned to the fingerprint the
            // distribution publishes.
            assert_eq!(repo.gpgkey_fingerprints.len(), 1, "{}", r.name);
            let fp = &repo.gpgkey_fingerprints[0];
            assert!(
                fp.len() == 40 && fp.chars().all(|c| c.is_ascii_hexdigit()),
                "{}: {fp}",
                r.name
            );
        }
    }
}
