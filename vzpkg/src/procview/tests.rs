use super::*;

const HOST_CPUINFO: &str = "processor\t: 0\nmodel name\t: Test CPU\n\nprocessor\t: 1\nmodel name\t: Test CPU\n\nprocessor\t: 2\nmodel name\t: Test CPU\n";
const HOST_STAT: &str = "cpu  30 0 30 300 0 0 0 0 0 0\ncpu0 10 0 10 100 0 0 0 0 0 0\ncpu1 5 0 5 50 0 0 0 0 0 0\ncpu2 15 0 15 150 0 0 0 0 0 0\nintr 1 2 3\nctxt 99\nbtime 1700000000\nprocesses 42\n";

#[test]
fn meminfo_and_swaps_from_the_limits() {
    let m = Memory {
        limit: 256 << 20,
        usage: 56 << 20,
        cache: 16 << 20,
        active_file: 8 << 20,
        inactive_file: 8 << 20,
        swap_limit: 128 << 20,
        swap_usage: 4 << 20,
        ..Default::default()
    };
    let text = meminfo(&m);
    let kb = |k| host_meminfo(&text, k).unwrap() / 1024;
    assert_eq!(kb("MemTotal"), 262144);
    assert_eq!(kb("MemFree"), 204800);
    assert_eq!(kb("MemAvailable"), 221184);
    assert_eq!(kb("SwapTotal"), 131072);
    assert_eq!(kb("SwapFree"), 126976);
    assert!(text.starts_with("MemTotal:         262144 kB\n"), "{text}");
    let s = swaps(&m);
    assert!(s.lines().nth(1).unwrap().contains("131072\t\t4096"), "{s}");
    assert_eq!(swaps(&Memory::default()).lines().count(), 1);
}

#[test]
fn cpuinfo_and_stat_cut_to_the_vps_cpus() {
    let c = cpuinfo(HOST_CPUINFO, &[1, 2]);
    assert_eq!(c.matches("processor").count(), 2);
    assert!(
        c.starts_with("processor\t: 0\nmodel name\t: Test CPU\n\nprocessor\t: 1\n"),
        "{c}"
    );
    let s = stat(HOST_STAT, &[2]);
    assert!(
        s.starts_with("cpu  15 0 15 150 0 0 0 0 0 0\ncpu0 15 0 15 150 0 0 0 0 0 0\nintr"),
        "{s}"
    );
    assert!(!s.contains("cpu1"));
    assert!(s.contains("btime 1700000000\n"));
    assert_eq!(cpu_online(1), "0\n");
    assert_eq!(cpu_online(3), "0-2\n");
}

#[test]
fn uptime_and_load() {
    assert_eq!(uptime(10.0, 2, 5.0), "10.00 15.00\n");
    assert_eq!(uptime(1.0, 1, 5.0), "1.00 0.00\n");
    let mut l = Load::default();
    for _ in 0..720 {
        l.sample(2, 2, 5);
    }
    // An hour of two busy tasks: the 1- and 5-minute figures reach 2.
    assert!(
        (l.avg[0] - 2.0).abs() < 0.01 && (l.avg[1] - 2.0).abs() < 0.01,
        "{:?}",
        l.avg
    );
    assert!(l.render().ends_with(" 2/5 0\n"), "{}", l.render());
}
