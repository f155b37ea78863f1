//! vzquota against real quota files and trees.

use super::*;

#[test]
fn grace_syntax() {
    assert_eq!(parse_grace("0"), Some(0));
    assert_eq!(parse_grace("259200"), Some(259_200));
    assert_eq!(parse_grace("7d"), Some(7 * 86_400));
    assert_eq!(parse_grace("7D"), Some(7 * 86_400));
    assert_eq!(parse_grace("1w"), Some(604_800));
    assert_eq!(parse_grace("01w"), Some(604_800));
    assert_eq!(parse_grace("2h"), Some(7200));
    assert_eq!(parse_grace("3m"), Some(90 * 86_400));
    assert_eq!(parse_grace("1y"), Some(365 * 86_400));
    assert_eq!(parse_grace("3:00:00:00"), Some(259_200));
    assert_eq!(parse_grace("1:02:03:04"), Some(86_400 + 7200 + 180 + 4));
    assert_eq!(parse_grace("1:00:00"), Some(3600));
    assert_eq!(parse_grace("01:30"), Some(90));
    for bad in [
        "",
        "d",
        "7x",
        "-1",
        "1:60",
        "1:1:60:0",
        "0:24:00:00",
        "1:2:3:4:5",
        "1::2",
        ":5",
        "7 d",
        "1.5d",
        "99999999999999999999",
    ] {
        assert_eq!(parse_grace(bad), None, "{bad:?}");
    }
}

#[test]
fn time_columns() {
    assert_eq!(time_str(259_200), "3days");
    assert_eq!(time_str(3600 + 29), "01:00");
    assert_eq!(time_str(90), "00:02");
    assert_eq!(grace_left(None, 10), "");
    assert_eq!(grace_left(Some(10), 10), "none");
    assert_eq!(grace_left(Some(100), 40), "00:01");
}

fn run(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("vzquota")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    let code = vzquota_run(argv, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[test]
fn usage_and_bad_values_differ() {
    let dir = tempfile::tempdir().unwrap();
    let qd = dir.path().to_str().unwrap();
    assert_eq!(run(&["--quota-dir", qd, "frobnicate", "1"]).0, exit::USAGE);
    assert_eq!(run(&["--quota-dir", qd, "on"]).0, exit::USAGE);
    assert_eq!(
        run(&["--quota-dir", qd, "on", "1", "-b", "lots"]).0,
        exit::BAD_VALUE
    );
    assert_eq!(
        run(&["--quota-dir", qd, "on", "1", "-e", "7x"]).0,
        exit::BAD_VALUE
    );
    assert_eq!(
        run(&["--quota-dir", qd, "on", "1", "-s", "2"]).0,
        exit::BAD_VALUE
    );
    assert_eq!(run(&["--quota-dir", qd, "on", "x"]).0, exit::BAD_VALUE);
    assert_eq!(run(&["--help"]).0, exit::OK);
    let (code, _, err) = run(&[
        "--quota-dir",
        qd,
        "init",
        "1",
        "-p",
        qd,
        "-b",
        "10",
        "-B",
        "5",
    ]);
    assert_eq!(code, exit::BAD_VALUE, "{err}");
    assert!(err.contains("hard limit is below"), "{err}");
}

#[test]
fn old_state_file_reads() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("quota.7");
    std::fs::write(
        &p,
        br#"{"version":1,"dirty":false,"usage":{"bytes":8192,"inodes":3},
            "limits":{"block_soft":100,"block_hard":200,"inode_soft":10,"inode_hard":20,
                      "block_grace":60,"inode_grace":60}}"#,
    )
    .unwrap();
    let s = StateFile::load(&p).unwrap().unwrap();
    assert!(!s.running && s.path.is_none() && !s.ugid.active());
    let qd = dir.path().to_str().unwrap();
    let (code, out, err) = run(&["--quota-dir", qd, "show", "7"]);
    assert_eq!(code, 0, "{err}");
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.trim_start().starts_with("1k-blocks"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(row, ["1k-blocks", "8", "100", "200"], "{out}");
    assert!(!out.contains("User/group"), "{out}");
    // Written back in the new format, still the same figures.
    assert_eq!(
        run(&["--quota-dir", qd, "setlimit", "7", "-s", "1", "-u", "10"]).0,
        0
    );
    let s2 = StateFile::load(&p).unwrap().unwrap();
    assert_eq!(
        (s2.version, s2.usage, s2.limits),
        (StateFile::VERSION, s.usage, s.limits)
    );
    assert!(s2.ugid.active() && s2.dirty, "second level on: rescan due");
}
