//! A Debian-style mirror on disk: `pool/` with real `.deb` files,
//! `dists/SUITE/main/binary-ARCH/Packages{,.gz,.xz}` and an `InRelease`
//! signed with a key the test made.

use crate::signing::TestKey;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One package to publish: its control fields (as the index shows them) and
/// the `.deb` bytes.
pub struct Published {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub fields: Vec<(String, String)>,
    pub deb: Vec<u8>,
}

pub struct MirrorSpec {
    pub suite: String,
    pub codename: String,
    pub arch: String,
    /// Seconds from now until `Valid-Until`; negative makes it already expired.
    pub valid_for: i64,
}

impl Default for MirrorSpec {
    fn default() -> Self {
        MirrorSpec {
            suite: "testing".into(),
            codename: "fixture".into(),
            arch: "amd64".into(),
            valid_for: 7 * 86400,
        }
    }
}

/// Write the mirror under `dir` and sign it with `key`. Returns the path of
/// each published `.deb` (so tests can tamper with one).
pub fn write_mirror(
    dir: &Path,
    spec: &MirrorSpec,
    packages: &[Published],
    key: &TestKey,
) -> Vec<PathBuf> {
    let mut index = String::new();
    let mut paths = Vec::new();
    for p in packages {
        let rel = format!(
            "pool/main/{}/{}_{}_{}.deb",
            p.name,
            p.name,
            p.version.replace(':', "%3a"),
            p.arch
        );
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &p.deb).unwrap();
        paths.push(path);
        index.push_str(&format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\n",
            p.name, p.version, p.arch
        ));
        for (k, v) in &p.fields {
            index.push_str(&format!("{k}: {v}\n"));
        }
        index.push_str(&format!(
            "Filename: {rel}\nSize: {}\nMD5sum: {}\nSHA256: {}\n\n",
            p.deb.len(),
            hex::encode(Md5::digest(&p.deb)),
            hex::encode(Sha256::digest(&p.deb))
        ));
    }
    let dists = dir.join("dists").join(&spec.suite);
    let bin = format!("main/binary-{}", spec.arch);
    std::fs::create_dir_all(dists.join(&bin)).unwrap();
    let plain = index.into_bytes();
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(&plain).unwrap();
        e.finish().unwrap()
    };
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&plain).unwrap();
        e.finish().unwrap()
    };
    let mut sums = String::new();
    for (name, bytes) in [
        ("Packages", &plain),
        ("Packages.xz", &xz),
        ("Packages.gz", &gz),
    ] {
        let rel = format!("{bin}/{name}");
        std::fs::write(dists.join(&rel), bytes).unwrap();
        sums.push_str(&format!(
            " {} {:>8} {rel}\n",
            hex::encode(Sha256::digest(bytes)),
            bytes.len()
        ));
    }
    let now = now_secs();
    let release = format!(
        "Origin: Fixture\nLabel: Fixture\nSuite: {}\nCodename: {}\nDate: {}\nValid-Until: {}\nArchitectures: {}\nComponents: main\nDescription: test fixture\nSHA256:\n{}",
        spec.suite,
        spec.codename,
        rfc2822(now),
        rfc2822(now + spec.valid_for),
        spec.arch,
        sums
    );
    std::fs::write(dists.join("Release"), &release).unwrap();
    std::fs::write(dists.join("InRelease"), key.clearsign(&release)).unwrap();
    paths
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `Sat, 01 Jan 2000 00:00:00 UTC`, as Release files write dates.
pub fn rfc2822(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} UTC",
        WD[days.rem_euclid(7) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::rfc2822(0), "Thu, 01 Jan 1970 00:00:00 UTC");
        assert_eq!(super::rfc2822(951782400), "Tue, 29 Feb 2000 00:00:00 UTC");
    }
}
