#!/usr/bin/env python3
"""Time `oom-ext init` against a fake root (min/median/max over N runs).

What it measures: the time `init` adds to boot without the module load
itself (the fake root has no module, so init plans, logs, writes the run
files and decides on fallback), as one fork+exec+run of the static binary.
Variants: with --no-guard, and with the guard spawned (spawn cost only; the
spawned guards are stopped after each run).

Usage: bench/init-bench.py [RUNS] (default 30); builds the release binary (make all).
"""
import os, shutil, signal, statistics, subprocess, sys, time

from benchlib import build, fake_root as new_root

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
binary = build()


def fake_root():
    return new_root("oom-ext-bench-", {
        "proc/cmdline": "BOOT_IMAGE=/vmlinuz root=UUID=1 ro quiet oom_ext.bufsize=64 oom_ext.gracetime=30 oom_ext.bufsize=x\n",
        "proc/sys/kernel/osrelease": "6.1.0-56-amd64\n",
        "proc/sys/kernel/panic": "0\n",
        "dev/kmsg": "",
        "lib/modules/6.1.0-56-amd64/modules.dep": "kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko\n" * 3000,
    }, dirs=["run"])


def stop(pid):
    """SIGTERM the spawned guard and wait until it is gone: it writes its
    state file on the way out, which a removal of the root would race."""
    os.kill(pid, signal.SIGTERM)
    for _ in range(500):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    sys.exit(f"init-bench: guard pid {pid} still alive 5 s after SIGTERM")


def bench(extra):
    times = []
    for _ in range(runs):
        r = fake_root()
        t = time.perf_counter()
        subprocess.run([binary, "--root", r, "init"] + extra, check=True)
        times.append((time.perf_counter() - t) * 1000)
        pidfile = os.path.join(r, "run/oom-ext/guard.pid")
        for _ in range(200):
            if "--no-guard" in extra or os.path.exists(pidfile):
                break
            time.sleep(0.01)
        if os.path.exists(pidfile):
            stop(int(open(pidfile).read()))
        shutil.rmtree(r)
    times.sort()
    return times[0], statistics.median(times), times[-1]


print(f"| variant | runs | min ms | median ms | max ms |")
print(f"|---|---|---|---|---|")
for name, extra in [("init --no-guard", ["--no-guard"]), ("init (spawns the guard)", [])]:
    lo, med, hi = bench(extra)
    print(f"| `{name}` | {runs} | {lo:.2f} | {med:.2f} | {hi:.2f} |")
