# Sourced by the benchmarks: page cache is counted in a memory cgroup of
# the benchmark's own. Readers and simfs processes started from the script
# are charged to it; other work on the machine is not.
#
#   memcg_enter          at the start (the cgroup is left and removed by memcg_leave)
#   cached               KiB of page cache charged so far (the host's if no cgroup)
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
memcg_leave() {
    if [ -n "$cg" ]; then
        echo $$ > "$(dirname "$cg")/cgroup.procs"
        rmdir "$cg" 2>/dev/null || true
    fi
}
cached() {
    if [ -n "$cg" ]; then
        awk -v k="$cg_key" '$1 == k {printf "%d\n", $2 / 1024}' "$cg/memory.stat"
    else
        awk '/^Cached:/ {print $2}' /proc/meminfo
    fi
}
