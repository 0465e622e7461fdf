#!/usr/bin/env python3
"""Memory and idle wake-ups of the guard (a benchmark, not a test).

Usage: bench/guard-memory.py [RUNS] (default 10); builds the binary (make all).

Each run starts the release binary as `oom-ext --root FAKE guard` in fallback
mode against a fresh fake root, waits until it is armed, lets it idle for
IDLE_S seconds and reads /proc/PID/status: the whole resident set, the
part that is the binary's own file pages (locked by mlockall, shared with
the page cache), the anonymous part, and the context switches while
idle. bufsize=1 gives a 1 MiB buffer, subtracted from the totals
("besides the buffer").
"""
import os, shutil, signal, statistics, subprocess, sys, time

from benchlib import build, fake_root as new_root

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
IDLE_S = 2
BUFFER_KB = 1024
binary = build()


def fake_root():
    return new_root("oom-ext-guard-bench-", {
        "run/oom-ext/mode": "fallback\n",
        "run/oom-ext/params": "bufsize=1\npsi=1\n",
        "dev/kmsg": "",
        "proc/self/oom_score_adj": "0\n",
    }, dirs=["proc/sys/kernel"])


def kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            v = v.split()
            if v and v[0].isdigit():
                out[k.strip()] = int(v[0])
    return out


def one():
    r = fake_root()
    p = subprocess.Popen([binary, "--root", r, "guard"], stdin=subprocess.DEVNULL)
    try:
        state = os.path.join(r, "run/oom-ext/guard.state")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(state) and "state=armed" in open(state).read():
                break
            time.sleep(0.02)
        else:
            raise SystemExit("guard did not arm within 10 s")
        time.sleep(0.3)
        st = kv(f"/proc/{p.pid}/status")
        before = st["voluntary_ctxt_switches"] + st["nonvoluntary_ctxt_switches"]
        time.sleep(IDLE_S)
        st = kv(f"/proc/{p.pid}/status")
        after = st["voluntary_ctxt_switches"] + st["nonvoluntary_ctxt_switches"]
        return {
            "VmRSS - buffer": st["VmRSS"] - BUFFER_KB,
            "RssFile (the binary's pages, locked)": st["RssFile"],
            "RssAnon - buffer (the guard's own memory)": st["RssAnon"] - BUFFER_KB,
            "VmLck": st["VmLck"],
            f"wake-ups in {IDLE_S} s idle": after - before,
        }
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
        shutil.rmtree(r)


samples = [one() for _ in range(runs)]
print(f"binary: {os.path.getsize(binary):,} bytes; {runs} runs; figures in kB except wake-ups")
print()
print("| figure | min | median | max |")
print("|---|---|---|---|")
for k in samples[0]:
    v = sorted(s[k] for s in samples)
    print(f"| {k} | {v[0]} | {statistics.median(v):g} | {v[-1]} |")
