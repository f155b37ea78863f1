# Sourced by the VPS benchmarks (bench-vps.sh, bench-simfs.sh) after they
# set $vz (the binary) and $work (their scratch directory):
#
#   now, elapsed T0 T1   wall clock, and seconds between two readings
#   drop_caches          sync, then drop the page cache
#   memcg_enter          at the start: page cache from here on is counted in
#                        a memory cgroup of the benchmark's own, so readers
#                        and simfs processes it starts are charged to it and
#                        other work on the machine is not
#   cached               KiB of page cache charged so far (the host's if no cgroup)
#   finish ID...         on exit: stop and destroy the VPSs, unmount what a
#                        failed destroy left under $work, remove $work and the
#                        VPSs' cgroup parent, leave the cgroup
# The VPSs' cgroups go under a parent of this run's, removed by `finish`,
# so a benchmark leaves no `vz` directory in the host's hierarchies.
export VZ_CGROUP_PARENT=vzpkg-bench-$$

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

cg= cg_key=
memcg_enter() {
    if [ -d /sys/fs/cgroup/memory ] && mkdir /sys/fs/cgroup/memory/vzpkg-bench.$$ 2>/dev/null; then
        cg=/sys/fs/cgroup/memory/vzpkg-bench.$$ cg_key=cache
    elif grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null &&
        mkdir /sys/fs/cgroup/vzpkg-bench.$$ 2>/dev/null; then
        cg=/sys/fs/cgroup/vzpkg-bench.$$ cg_key=file
    fi
    if [ -n "$cg" ]; then echo $$ > "$cg/cgroup.procs"; fi
}
cached() {
    if [ -n "$cg" ]; then
        awk -v k="$cg_key" '$1 == k {printf "%d\n", $2 / 1024}' "$cg/memory.stat"
    else
        awk '/^Cached:/ {print $2}' /proc/meminfo
    fi
}

finish() {
    local id
    for id in "$@"; do
        "$vz" vzctl stop "$id" --fast >/dev/null 2>&1 || true
        "$vz" vzctl destroy "$id" >/dev/null 2>&1 || true
    done
    # A mount that survived a failed destroy must not be walked by rm -rf.
    awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r |
        while read -r mnt; do umount -l "$mnt" || true; done
    rm -rf "$work"
    rmdir /sys/fs/cgroup/*/"$VZ_CGROUP_PARENT" /sys/fs/cgroup/"$VZ_CGROUP_PARENT" 2>/dev/null || true
    if [ -n "$cg" ]; then
        echo $$ > "$(dirname "$cg")/cgroup.procs"
        rmdir "$cg" 2>/dev/null || true
    fi
}
