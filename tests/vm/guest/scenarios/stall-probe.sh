# shellcheck shell=bash
# stall-probe: one stall workload with a sampler beside it, to measure the
# signals a guard could act on (issue 16), not to judge a guard. Every
# 100 ms the sampler (its own unit, SCHED_RR, its memory protected from
# reclaim by MemoryMin so it keeps sampling through a thrash) writes one
# line: PSI memory some/full avg10 and totals (system and the workload's
# cgroup), MemAvailable, SwapFree, refaults, swap-ins, major faults,
# oom_kill. The lines and the heartbeat's log are reported at the end as
# `OOMTEST probe_sample=` / `OOMTEST probe_hb=` lines (tests/vm/probe-stall
# reads them). Workload from oomtest.probe_workload= (storm | thrash |
# swapleak | nearmiss); swap is used when the host attached /dev/vdc.
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh

# shellcheck disable=SC2016  # perl code, not shell
PROBE_PERL='
use strict; use warnings; use Time::HiRes qw(time sleep);
$| = 1;
my $cg = "/sys/fs/cgroup/system.slice/stall-workload.service";
sub slurp { open(my $f, "<", $_[0]) or return ""; local $/; my $s = <$f>; $s // "" }
sub psi {
	my ($t) = @_; my @o;
	for my $k ("some", "full") {
		if ($t =~ /^$k avg10=([\d.]+) avg60=[\d.]+ avg300=[\d.]+ total=(\d+)/m) { push @o, $1, $2 }
		else { push @o, -1, -1 }
	}
	@o
}
while (1) {
	my $t = int(time() * 1000);
	my %m; for (split /\n/, slurp("/proc/meminfo")) { $m{$1} = $2 if /^(\w+):\s+(\d+)/ }
	my %v; for (split /\n/, slurp("/proc/vmstat")) { $v{$1} = $2 if /^(\w+) (\d+)/ }
	my @p = psi(slurp("/proc/pressure/memory"));
	my @c = psi(slurp("$cg/memory.pressure"));
	my $cur = slurp("$cg/memory.current"); chomp $cur; $cur = -1 if $cur eq "";
	my $alloc = 0; $alloc += $v{$_} for grep { /^allocstall_/ } keys %v;
	printf "%d %s %s %s %s %d %d %d %d %d %d %d %d %d %d %s %s %s %s %d\n", $t, @p,
		$m{MemAvailable} // -1, $m{MemFree} // -1, $m{SwapFree} // -1,
		$v{workingset_refault_anon} // $v{workingset_refault} // 0, $v{workingset_refault_file} // 0,
		$v{pswpin} // 0, $v{pswpout} // 0, $v{pgmajfault} // 0, $v{oom_kill} // 0, $alloc,
		@c, $cur < 0 ? -1 : int($cur / 1024);
	sleep(0.1);
}'
PROBE_COLUMNS="t_ms some_avg10 some_total_us full_avg10 full_total_us avail_kb free_kb swapfree_kb refault_anon refault_file pswpin pswpout pgmajfault oom_kill allocstall cg_some_avg10 cg_some_total_us cg_full_avg10 cg_full_total_us cg_current_kb"

# Near miss: a job that grows to a few per cent of RAM below the limit,
# holds there, and exits by itself. Its size is fixed at the start
# (MemAvailable minus LEFT_MB), so it never eats what comes free later.
# TOUCH=1: it keeps writing every page it holds (a compute job); 0: it only
# holds them.
# shellcheck disable=SC2016  # perl code, not shell
NEARMISS_PERL='
use strict; use warnings; use Time::HiRes qw(time sleep);
my ($left, $hold, $touch) = @ARGV;
my $avail = 0;
open(my $f, "<", "/proc/meminfo") or die; while (<$f>) { $avail = $1 / 1024 if /^MemAvailable:\s+(\d+)/ }
my $mb = int($avail - $left); $mb = 1 if $mb < 1;
print "nearmiss: $mb MiB (MemAvailable $avail MiB, leaving $left), hold ${hold} s, touch $touch\n";
my @held; my $chunk = "x" x (1 << 20);
for (1 .. $mb) { my $c = $chunk; substr($c, $_ * 4096, 1) = "y" for 0 .. 255; push @held, $c }
my $end = time() + $hold; my $n = 0;
while (time() < $end) {
	if ($touch) { for my $c (@held) { substr($c, $_ * 4096, 1) = chr(65 + $n % 26) for 0 .. 255 } $n++ }
	else { sleep(0.1) }
}
print "nearmiss: done after $n passes\n";'

if [ "${1:-}" = --body ]; then
	# Run again as the workload unit's body (see nearmiss below).
	"$STALL/hog" -e "$NEARMISS_PERL" "$2" "$3" "$4"
	exit
fi
if [ -b /dev/vdc ]; then
	mkswap -q /dev/vdc >/dev/null && swapon /dev/vdc
	result swapon_rc $?
fi

stall_setup_guard
result probe_columns "$PROBE_COLUMNS"
systemd-run --quiet --unit=stall-probe -p OOMScoreAdjust=-1000 -p MemoryMin=64M \
	-p CPUSchedulingPolicy=rr -p CPUSchedulingPriority=1 \
	-p StandardOutput=file:"$STALL/probe.log" perl -e "$PROBE_PERL"
workload=$(knob probe_workload nearmiss)
result probe_workload "$workload"
case $workload in
storm)
	secs=$(knob storm_s 35)
	stall_run $((secs + 30)) /bin/bash -c ". $SELF; stall_storm_body $secs $(knob storm_hogs 3) $(knob storm_mb 200)" ;;
thrash)
	secs=$(knob thrash_s 40)
	stall_run $((secs + 30)) /bin/bash -c ". $SELF; stall_thrash_body $secs $(knob thrash_floor 8)" ;;
swapleak)
	secs=$(knob leak_s 60)
	stall_run $((secs + 30)) /bin/bash -c ". $SELF; stall_leak_body $secs $(knob leak_rate 8)" ;;
nearmiss)
	# Default: 6 % of MemTotal left at the peak, 20 s, touching.
	left=$(knob nearmiss_left_mb $(( $(awk '/^MemTotal/ {print $2}' /proc/meminfo) * 6 / 100 / 1024 )))
	stall_run 90 /bin/bash -c ". /opt/oomtest/scenarios/stall-probe.sh --body $left $(knob nearmiss_s 20) $(knob nearmiss_touch 1)" ;;
*)
	result error "unknown oomtest.probe_workload=$workload" ;;
esac
systemctl stop stall-probe.service
result probe_workload_out "$(tr '\n' '|' < "$STALL/workload.out")"
while read -r line; do echo "OOMTEST probe_sample=$line"; done < "$STALL/probe.log"
while read -r line; do echo "OOMTEST probe_hb=$line"; done < "$STALL/heartbeat.log"
