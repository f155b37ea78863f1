#!/usr/bin/env bash
# simfs figures against the bare overlay (a benchmark, not a test; run as root
# on an idle machine). Figures 1-3 compare, in the same run, a VPS created
# with --diskquota yes (the overlay over simfs, which holds the private
# area) and one with --diskquota no (the bare overlay); 4 and 5 are measured on simfs VPSs:
#  1. sequential read of 1 GiB, cold and warm: a file in the template's
#     layers, and a file the VPS wrote (its private area);
#  2. reading all of /usr, cold;
#  3. unpacking 20 000 small files inside the VPS, then rm -rf of them;
#     and the unpack once more with simfs and tar held on one CPU; what
#     one call (futimens, open+close) costs, how many FUSE requests
#     simfs gets per file in 2 and 3 and what its process spends on them
#     (CPU, context switches), and what waking a process costs on this
#     machine (a FUSE request wakes two): together they bound both
#     figures;
#  4. create + mount N simfs VPSs: time per VPS (the bare overlay's as the
#     yardstick) and simfs memory (PSS, RSS) per VPS at 1, M and N mounted;
#  5. page cache after reading /usr in 1 simfs VPS and in M.
#
#   scripts/bench-simfs.sh [N=200] [M=50] [MIRROR_URL]
set -euo pipefail
# Failures inside $(...) must stop the run too, not yield empty figures.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
scripts/setup.sh
n=${1:-200}
m=${2:-50}
if ((m > n)); then m=$n; fi
mirror=()
[ $# -gt 2 ] && mirror=(--mirror "$3")
cargo build --release --quiet --bin vzpkg
vz=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/vzpkg
work=$(mktemp -d /var/tmp/vzpkg-simfs-bench.XXXXXX)
# mktemp makes it 0700: an unprivileged VPS's root (a host uid of its range)
# must be able to pass through to its own tree below.
chmod 755 "$work"
trace=/sys/kernel/tracing/instances/vzpkg-bench.$$ # see fuse_requests
export VZPKG_ROOT=$work/root VZ_ROOT=$work/vz
bare=900 simfs=901 # the VPS pair for figures 1-3
ids=()
# shellcheck source=scripts/lib-bench-vps.sh
. scripts/lib-bench-vps.sh
trap '{ rmdir "$trace" 2> /dev/null || true; }; finish "${ids[@]}"' EXIT
memcg_enter
# Room for the template, 1 GiB written and 20 000 files.
limits=(--diskspace 10G:11G --diskinodes 400000:420000)
new_vps() { # CTID TEMPLATE yes|no
    ids+=("$1")
    "$vz" vzctl create "$1" --ostemplate "$2" --diskquota "$3" "${limits[@]}" > /dev/null
    "$vz" vzctl mount "$1" > /dev/null
}
fstype() { awk -v d="$1" '$2 == d {t = $3} END {print t}' /proc/self/mounts; }
# Where simfs shows a VPS's private area, under its overlay.
simfs_at() { echo "$VZ_ROOT/mnt/$1"; }

cp recipes/debian-12.toml "$work/debian-12.toml"
"$vz" create "$work/debian-12.toml" "${mirror[@]}" --json > /dev/null
# The same system with 1 GiB more in its layers, written by a post command.
sed -e 's/^name = "debian-12"$/name = "debian-12-big"/' \
    -e 's|^commands = \[\]$|commands = ["mkdir -p /opt \&\& head -c 1G /dev/urandom > /opt/big"]|' \
    recipes/debian-12.toml > "$work/debian-12-big.toml"
grep -q '^name = "debian-12-big"$' "$work/debian-12-big.toml"
grep -q '/opt/big' "$work/debian-12-big.toml"
t0=$(now)
"$vz" create "$work/debian-12-big.toml" "${mirror[@]}" --json > /dev/null
echo "debian-12-big built in $(elapsed "$t0" "$(now)")s; templates:"
"$vz" list | sed 1d

new_vps $bare debian-12-big no
new_vps $simfs debian-12-big yes
# Figures for simfs are worthless if its private area is not under simfs.
case $(fstype "$(simfs_at $simfs)") in fuse*) ;; *)
    echo "VPS $simfs: no simfs (fuse) on $(simfs_at $simfs)" >&2
    exit 1
    ;;
esac
echo "roots: bare $(fstype "$VZ_ROOT/root/$bare"), simfs $(fstype "$VZ_ROOT/root/$simfs") over $(fstype "$(simfs_at $simfs)")"
root() { echo "$VZ_ROOT/root/$1"; }
# FUSE requests the kernel sends a VPS's simfs while COMMAND runs, counted
# with the kernel's fuse tracepoints in a tracing instance of our own, and
# how long each kind was in flight on average (from the kernel's send to
# simfs's reply: simfs waking up and doing the work; the caller waking up
# afterwards is not in it). Prints a line "KIND COUNT MICROSECONDS" per
# kind, most first; nothing (and runs COMMAND all the same) where the
# kernel has no such tracepoints.
fuse_requests() { # CTID COMMAND...
    local ev=$trace/events/fuse id=$1 dev
    shift
    if ! mkdir "$trace" 2> /dev/null || [ ! -d "$ev/fuse_request_end" ]; then
        rmdir "$trace" 2> /dev/null || true
        "$@" >&2
        return 0
    fi
    # KiB per CPU: room for 250 000 requests from one CPU.
    echo 32768 > "$trace/buffer_size_kb"
    dev=$(stat -c %d "$(simfs_at "$id")")
    echo "connection == $dev" > "$ev/fuse_request_send/filter"
    echo "connection == $dev" > "$ev/fuse_request_end/filter"
    echo 1 > "$ev/enable"
    "$@" >&2
    echo 0 > "$ev/enable"
    if grep -q '^overrun: [1-9]' "$trace"/per_cpu/cpu*/stats; then
        echo "the trace buffer overran: request counts would be short" >&2
        exit 1
    fi
    awk '{
        t = $0; sub(/^.* \[[0-9]+\] [^ ]+ +/, "", t); sub(/:.*/, "", t)
        r = $0; sub(/.* req /, "", r); sub(/ .*/, "", r)
    }
    / fuse_request_send: / {
        k = $0; sub(/.*\(FUSE_/, "", k); sub(/\).*/, "", k)
        kind[r] = k; sent[r] = t; n[k]++
    }
    / fuse_request_end: / && (r in sent) { us[kind[r]] += (t - sent[r]) * 1e6; done[kind[r]]++; delete sent[r] }
    END { for (k in n) printf "%s %d %.1f\n", k, n[k], done[k] ? us[k] / done[k] : 0 }' "$trace/trace" |
        sort -k2,2nr
    rmdir "$trace"
}
per_file() { # LABEL FILES LINES: prints requests per file from fuse_requests' lines
    if [ -z "$3" ]; then
        echo "FUSE requests per file, $1: not counted (the kernel has no fuse tracepoints)"
        return
    fi
    printf '%s\n' "$3" | awk -v l="$1" -v f="$2" '{
        all += $2
        # A kind seen less than once in 200 files is left out.
        if ($2 / f >= 0.005) s = s sprintf("%s%s %.2f x %.1f us", s == "" ? "" : ", ", $1, $2 / f, $3)
    }
    END { printf "FUSE requests per file, %s: %.2f; per kind, per file and in flight each (%s)\n", l, all / f, s }'
}

# 1. Sequential reads of 1 GiB; read_mbs prints the MB/s of one.
read_mbs() {
    local size t0 t1
    size=$(stat -c %s "$1")
    t0=$(now)
    dd if="$1" of=/dev/null bs=1M status=none
    t1=$(now)
    awk -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", s / 1e6 / (b - a) }'
}
seq_read() { # LABEL PATH-IN-VPS
    local -A cold=([$bare]=0 [$simfs]=0) warm=([$bare]=0 [$simfs]=0)
    local id v bc bw sc sw
    # Best of two rounds in alternating order: the machine may be shared.
    for id in $bare $simfs $simfs $bare; do
        drop_caches
        v=$(read_mbs "$(root $id)$2"); cold[$id]=$((v > cold[$id] ? v : cold[$id]))
        v=$(read_mbs "$(root $id)$2"); warm[$id]=$((v > warm[$id] ? v : warm[$id]))
    done
    bc=${cold[$bare]} bw=${warm[$bare]} sc=${cold[$simfs]} sw=${warm[$simfs]}
    awk -v l="$1" -v bc="$bc" -v bw="$bw" -v sc="$sc" -v sw="$sw" 'BEGIN {
        printf "1 GiB read, %s: cold bare %d MB/s, simfs %d MB/s, ratio %.2f; warm bare %d MB/s, simfs %d MB/s, ratio %.2f (target >= 0.9)\n",
            l, bc, sc, sc / bc, bw, sw, sw / bw }'
}
seq_read "template layer (/opt/big)" /opt/big
head -c 1G /dev/urandom > "$work/big"
for id in $bare $simfs; do cp "$work/big" "$(root $id)/root/big"; done
rm "$work/big"
seq_read "private area (/root/big)" /root/big

# 2. Every file under /usr, cold.
read_usr() { find "$(root "$1")/usr" -type f -print0 | xargs -0 cat > /dev/null 2>&1 || true; }
usr_secs() {
    local t0
    drop_caches
    t0=$(now)
    read_usr "$1"
    elapsed "$t0" "$(now)"
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }
# Best of two rounds in alternating order, as for figure 1.
tb=$(usr_secs $bare)
ts=$(usr_secs $simfs)
ts=$(min "$ts" "$(usr_secs $simfs)")
tb=$(min "$tb" "$(usr_secs $bare)")
awk -v b="$tb" -v s="$ts" -v k="$(du -sxk "$(root $bare)/usr" | cut -f1)" 'BEGIN {
    printf "read /usr (%.0f MiB), cold: bare %.2fs, simfs %.2fs, ratio %.2f (target >= 0.9)\n", k / 1024, b, s, b / s }'
drop_caches
per_file "cold read of /usr" "$(find "$(root $bare)/usr" -type f | wc -l)" "$(fuse_requests $simfs read_usr $simfs)"

# 3. 20 000 files of 1-4 KiB in 200 directories, made once on the host.
mkdir "$work/small"
(cd "$work/small" && mkdir d{000..199})
awk -v dir="$work/small" 'BEGIN {
    srand(1); pad = "x"; while (length(pad) < 4096) pad = pad pad
    for (d = 0; d < 200; d++) for (f = 0; f < 100; f++) {
        p = sprintf("%s/d%03d/f%03d", dir, d, f)
        printf "%s", substr(pad, 1, 1024 + int(rand() * 3072)) > p
        close(p)
    }
}'
tar -cf "$work/x.tar" -C "$work/small" .
# $work/small stays until the end, and every unpack below goes into a new
# directory before any removal: ext4 without a journal passes over inodes
# freed less than 60 s ago (360 s while their inode table block is
# unwritten) when it allocates, which slows an unpack that follows a
# removal, the bare overlay's most, and would flatter the ratio.
untar() { # CTID DIR [one-cpu]: prints the seconds of tar -x into DIR
    local t0 pin=()
    # The tarball is read from the page cache, so only the unpack is timed.
    "$vz" vzctl exec "$1" "cat /x.tar > /dev/null && mkdir $2" >&2
    sync
    if [ $# -gt 2 ]; then
        # The floor for any FUSE transport on this machine: simfs and tar
        # on one CPU, so no request waits for another CPU to wake up.
        taskset -a -p -c 0 "$(cat "$VZ_ROOT/run/$1.simfs.pid")" > /dev/null
        pin=(taskset -c 0)
    fi
    t0=$(now)
    "$vz" vzctl exec "$1" "${pin[*]} tar -xf /x.tar -C $2" >&2
    elapsed "$t0" "$(now)"
    if [ $# -gt 2 ]; then
        taskset -a -p -c "0-$(($(nproc) - 1))" "$(cat "$VZ_ROOT/run/$1.simfs.pid")" > /dev/null
    fi
}
remove() { # CTID DIR: prints the seconds of rm -rf DIR
    local t0
    # Writeback of the unpack must not be charged to rm.
    sync
    t0=$(now)
    "$vz" vzctl exec "$1" "rm -rf $2" >&2
    elapsed "$t0" "$(now)"
}
for id in $bare $simfs; do
    cp "$work/x.tar" "$(root $id)/x.tar"
    "$vz" vzctl start "$id" > /dev/null
done
# Nothing freed before this point may still count as recent.
sync
sleep 61
declare -A xt rt
# Best of two rounds, the order swapped in the second.
orders=("$bare $simfs" "$simfs $bare")
for round in 0 1; do
    for id in ${orders[round]}; do
        x=$(untar "$id" "/root/x$round")
        xt[$id]=$(min "${xt[$id]:-$x}" "$x")
    done
    x=$(untar "$simfs" "/root/y$round" one-cpu)
    x1=$(min "${x1:-$x}" "$x")
done
# What simfs is asked per file: one more unpack and its removal, untimed,
# with the requests counted, and what simfs's process spends on them.
simfs_cost() { # CTID: CPU seconds and context switches of its simfs threads
    local pid t
    pid=$(cat "$VZ_ROOT/run/$1.simfs.pid")
    for t in "/proc/$pid"/task/*; do
        # utime and stime follow the command name, which may hold spaces.
        sed 's/.*) //' "$t/stat" | awk '{ print $12 + $13 }'
        awk '/ctxt_switches/ { n += $2 } END { print "sw", n }' "$t/status"
    done | awk -v hz="$(getconf CLK_TCK)" '$1 == "sw" { sw += $2; next } { cpu += $1 }
        END { printf "%.3f %d\n", cpu / hz, sw }'
}
"$vz" vzctl exec $simfs 'mkdir /root/z' >&2
read -r cpu0 sw0 < <(simfs_cost $simfs)
untar_requests=$(fuse_requests $simfs "$vz" vzctl exec $simfs 'tar -xf /x.tar -C /root/z')
read -r cpu1 sw1 < <(simfs_cost $simfs)
sync
rm_requests=$(fuse_requests $simfs "$vz" vzctl exec $simfs 'rm -rf /root/z')
for round in 0 1; do
    for id in ${orders[round]}; do
        r=$(remove "$id" "/root/x$round")
        rt[$id]=$(min "${rt[$id]:-$r}" "$r")
    done
    "$vz" vzctl exec "$simfs" "rm -rf /root/y$round" >&2
done
# What one call costs, from the host into each running root, 20 000 times:
# futimens (one SETATTR through simfs) and open+close (one OPEN and a
# RELEASE not waited for). Best of two.
calls() { # CTID: prints "futimens_us open_close_us"
    perl -MTime::HiRes=time -MPOSIX -e '
        my ($dir, $n) = ($ARGV[0], 20000);
        my $f = "$dir/root/calls";
        open(my $h, ">", $f) or die "$f: $!"; close $h;
        my $t = time; utime(undef, undef, $f) or die "$f: $!" for 1 .. $n;
        my $u = (time - $t) / $n * 1e6;
        $t = time;
        # POSIX::open, not open: a PerlIO open asks whether the file is a
        # terminal, one more request (an IOCTL) through simfs.
        for (1 .. $n) {
            my $g = POSIX::open("$dir/usr/bin/ls", POSIX::O_RDONLY()) // die "ls: $!";
            POSIX::close($g);
        }
        printf "%.1f %.1f\n", $u, (time - $t) / $n * 1e6; unlink $f' "$(root "$1")"
}
declare -A cu co
for id in $bare $simfs $bare $simfs; do
    read -r u o < <(calls "$id")
    cu[$id]=$(min "${cu[$id]:-$u}" "$u") co[$id]=$(min "${co[$id]:-$o}" "$o")
done
echo "one call: futimens bare ${cu[$bare]} us, simfs ${cu[$simfs]} us; open+close bare ${co[$bare]} us, simfs ${co[$simfs]} us"
for id in $bare $simfs; do "$vz" vzctl stop "$id" --fast > /dev/null; done
# What this machine charges for waking a process, the floor under any FUSE
# request (the kernel wakes simfs, then simfs wakes the caller): a round
# trip between two processes over pipes, on two CPUs and on one, measured
# once the VPSs are stopped.
wakeup() { # CPU CPU: prints the microseconds of one round trip
    perl -MTime::HiRes=time -e '
        my ($ca, $cb, $n) = (@ARGV, 20000);
        pipe(my $r1, my $w1) or die "pipe: $!";
        pipe(my $r2, my $w2) or die "pipe: $!";
        my $buf;
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            system("taskset -p -c $cb $$ > /dev/null") == 0 or die "taskset failed\n";
            for (1 .. $n) { sysread($r1, $buf, 1) or exit 1; syswrite($w2, "x") }
            exit 0;
        }
        system("taskset -p -c $ca $$ > /dev/null") == 0 or die "taskset failed\n";
        # The first round trip waits for the other process to be in place.
        syswrite($w1, "x");
        sysread($r2, $buf, 1) or die "no answer\n";
        my $t = time;
        for (2 .. $n) { syswrite($w1, "x"); sysread($r2, $buf, 1) }
        printf "%.1f\n", (time - $t) / ($n - 1) * 1e6;
        waitpid($pid, 0) == $pid && $? == 0 or die "the other process failed\n"' "$1" "$2"
}
if (($(nproc) > 1)); then
    w2=$(wakeup 0 1)
    w1=$(wakeup 0 0)
    echo "wake-up round trip between two processes (pipes): on two CPUs $w2 us, on one CPU $w1 us"
fi
xb=${xt[$bare]} rb=${rt[$bare]} xs=${xt[$simfs]} rs=${rt[$simfs]}
awk -v xb="$xb" -v rb="$rb" -v xs="$xs" -v rs="$rs" -v x1="$x1" 'BEGIN {
    printf "tar -x of 20000 files: bare %.2fs, simfs %.2fs, ratio %.2f; rm -rf: bare %.2fs, simfs %.2fs, ratio %.2f (target >= 0.5)\n",
        xb, xs, xb / xs, rb, rs, rb / rs
    printf "tar -x of 20000 files, simfs and tar on one CPU: %.2fs, ratio %.2f against the bare overlay\n", x1, xb / x1 }'
per_file "tar -x" 20000 "$untar_requests"
awk -v c="$cpu1" -v c0="$cpu0" -v s="$sw1" -v s0="$sw0" -v xb="$xb" 'BEGIN {
    printf "simfs during tar -x: %.0f us of CPU and %.1f context switches per file (the bare overlay unpacks a file in %.0f us)\n",
        (c - c0) / 20000 * 1e6, (s - s0) / 20000, xb / 20000 * 1e6 }'
per_file "rm -rf" 20000 "$rm_requests"

# 4. Many simfs VPSs, measured as they are added (1, M, N mounted).
simfs_mem() { # K: PSS and RSS of the simfs processes of VPSs 1000..1000+K-1, per VPS
    local files=() id
    for id in $(seq 1000 $((1000 + $1 - 1))); do
        files+=("/proc/$(cat "$VZ_ROOT/run/$id.simfs.pid")/smaps_rollup")
    done
    awk -v k="$1" '/^Pss:/ {p += $2} /^Rss:/ {r += $2}
        END { printf "simfs PSS %.0f KiB, RSS %.0f KiB per VPS (%.1f MiB PSS in all)", p / k, r / k, p / 1024 }' "${files[@]}"
}
# The bare overlay's create+mount as the yardstick, on a few VPSs.
few=$((n < 20 ? n : 20))
t0=$(now)
for id in $(seq 2000 $((2000 + few - 1))); do new_vps "$id" debian-12 no; done
awk -v t="$(elapsed "$t0" "$(now)")" -v k="$few" 'BEGIN { printf "create+mount bare overlay: %.1f ms per VPS (%d VPSs)\n", t * 1000 / k, k }'
mounted=0
for k in $(printf '%s\n' 1 "$m" "$n" | sort -nu); do
    t0=$(now)
    from=$mounted
    while ((mounted < k)); do
        new_vps $((1000 + mounted)) debian-12 yes
        mounted=$((mounted + 1))
    done
    awk -v t="$(elapsed "$t0" "$(now)")" -v a="$from" -v k="$k" -v mem="$(simfs_mem "$k")" 'BEGIN {
        printf "create+mount simfs VPSs %d-%d: %.1f ms per VPS; at %d mounted: %s\n", a + 1, k, t * 1000 / (k - a), k, mem }'
done

# 5. Page cache, as scripts/bench-vps.sh measures it, on simfs VPSs.
drop_caches
c0=$(cached); read_usr 1000; c1=$(cached)
drop_caches
c2=$(cached); for id in $(seq 1000 $((1000 + m - 1))); do read_usr "$id"; done; c3=$(cached)
awk -v a=$((c1 - c0)) -v b=$((c3 - c2)) -v m="$m" 'BEGIN {
    printf "page cache for /usr through simfs: 1 VPS %d KiB, %d VPSs %d KiB, ratio %.2f (target <= 1.2)\n", a, m, b, b / a }'
echo "after reading /usr in $m VPSs: $(simfs_mem "$m")"
