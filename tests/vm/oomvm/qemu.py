"""Boot one guest under QEMU/TCG and collect what it reports.

Two channels: the kernel and systemd console on the serial port (saved to
console.log, used for boot counting, panics and diagnostics), and the test
harness's own channel on a virtio console (results.log): `OOMTEST …` lines,
each timestamped by the host as it arrives, so freezes are measured with the
host's clock, which does not stop when the guest does.

Waiting is always bounded: a guest that stops writing anything for
`hang_s` seconds is reported as hung, one that runs past `timeout_s` as timed
out. Both are results, not harness errors.
"""

import dataclasses
import re
import subprocess
import time

RESULT_RE = re.compile(r"OOMTEST ([^\s=]+)=(.*)")
TICK_RE = re.compile(r"OOMTEST tick (\d+)")
PANIC_RE = re.compile(r"Kernel panic - not syncing.*")
# Where a record starts: a reboot can cut a line (no newline), so the next
# boot's first record is glued to the cut one on the same line.
RECORD_START_RE = re.compile(r"(?=OOMTEST )")
# Reported, but not an end: under TCG on a busy host "soft lockup" warnings
# are the host's doing, and a real Oops shows up in the scenario's own checks.
WARN_RE = re.compile(r"BUG: .*|Oops: .*|WARNING: .*")
# After the harness said done=1 the guest only powers off: allow this long.
POWEROFF_GRACE_S = 60

_live = set()          # running QEMU processes, for kill_all()


def kill_all():
    """Kill every guest this process started (on interrupt)."""
    for proc in list(_live):
        if proc.poll() is None:
            proc.kill()


@dataclasses.dataclass
class Boot:
    index: int                     # 1-based, as counted by the harness on disk
    facts: dict                    # OOMTEST key=value (last value wins)
    fact_times: dict               # host seconds when each key last arrived
    ticks: list                    # host seconds since start, one per tick
    started: float                 # host seconds when `boot=` arrived


@dataclasses.dataclass
class Run:
    outcome: str                   # finished | hung | timeout | panic | qemu-error
    detail: str
    boots: list
    wall_s: float
    console: str                   # path of console.log
    results: str                   # path of results.log
    panics: list                   # panic lines seen on the console
    warnings: list                 # BUG/Oops/WARNING lines seen on the console
    kernel_starts: int             # "Linux version" lines on the console

    def last(self):
        return self.boots[-1] if self.boots else None

    def fact(self, key, boot=-1, default=None):
        if not self.boots:
            return default
        return self.boots[boot].facts.get(key, default)

    def ticks_after(self, key, boot=-1):
        """Heartbeat ticks that arrived after the fact `key` did."""
        if not self.boots or key not in self.boots[boot].fact_times:
            return 0
        since = self.boots[boot].fact_times[key]
        return sum(1 for t in self.boots[boot].ticks if t > since)

    def longest_gap(self, boot=-1):
        """Longest silence between two heartbeat ticks, in host seconds."""
        ticks = self.boots[boot].ticks if self.boots else []
        return max((b - a for a, b in zip(ticks, ticks[1:])), default=0.0)


def records(line):
    """The OOMTEST records of one results line: normally one, but a line cut
    by a reboot carries the next boot's first record (`OOMTEST tick 12
    up=50.OOMTEST boot=2`), which must not be swallowed by the cut one."""
    return [r for r in RECORD_START_RE.split(line) if r]


class _Tail:
    """Incremental reader of a growing file, yielding complete lines."""

    def __init__(self, path):
        self.path, self.offset, self.partial = path, 0, b""

    def read(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        chunks = (self.partial + data).split(b"\n")
        self.partial = chunks.pop()
        return [c.decode(errors="replace").rstrip("\r") for c in chunks]


def boot(*, outdir, image, harness, kernel, initrd, cmdline, expect_reboots=0,
         timeout_s=600, hang_s=180, memory_mb=512, extra_args=()):
    """Boot `image` (raw, shared read-only through a qcow2 overlay) and wait for it to finish.

    `extra_args`: more QEMU arguments, e.g. a second drive (the stall suite's swap disk).
    """
    outdir.mkdir(parents=True, exist_ok=True)
    overlay = outdir / "overlay.qcow2"
    console, results = outdir / "console.log", outdir / "results.log"
    for f in (overlay, console, results):
        f.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", "raw", str(overlay)],
                   check=True)
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", str(memory_mb), "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
        "-serial", f"file:{console}",
        "-chardev", f"file,id=results,path={results}",
        "-device", "virtio-serial-pci", "-device", "virtconsole,chardev=results",
        "-device", "virtio-rng-pci",
        "-drive", f"file={overlay},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
        "-drive", f"file={harness},if=virtio,format=raw,readonly=on",
        "-kernel", str(kernel), "-initrd", str(initrd),
        # mitigations=off: page-table isolation and friends are very costly under TCG.
        # no_timer_check: on a loaded host the early IO-APIC timer check can
        # fail under TCG and panic at 0.05 s (seen by the stall suite).
        "-append", f"root=/dev/vda rw console=ttyS0 mitigations=off no_timer_check {cmdline}",
        *extra_args,
    ]
    if not expect_reboots:
        argv.append("-no-reboot")
    (outdir / "qemu.argv").write_text(" ".join(argv) + "\n")

    started = time.monotonic()
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=open(outdir / "qemu.out", "w"),
                            stderr=subprocess.STDOUT)
    _live.add(qemu)
    done_at = None
    ctail, rtail = _Tail(console), _Tail(results)
    boots, panics, warnings, kernel_starts = [], [], [], 0
    last_output = started
    outcome, detail = None, ""
    stamped = open(outdir / "results.timed", "w")
    try:
        while True:
            now = time.monotonic()
            t = now - started
            exited = qemu.poll() is not None
            clines, rlines = ctail.read(), rtail.read()
            if clines or rlines:
                last_output = now
            for line in clines:
                if "Linux version" in line:
                    kernel_starts += 1
                m = PANIC_RE.search(line)
                if m:
                    panics.append(m.group(0))
                m = WARN_RE.search(line)
                if m:
                    warnings.append(m.group(0))
            for line in (r for raw in rlines for r in records(raw)):
                stamped.write(f"{t:9.2f} {line}\n")
                if TICK_RE.search(line):
                    if boots:
                        boots[-1].ticks.append(t)
                    continue
                m = RESULT_RE.search(line)
                if not m:
                    continue
                key, value = m.group(1), m.group(2)
                if key == "boot":
                    boots.append(Boot(index=int(value), facts={}, fact_times={}, ticks=[], started=t))
                if boots:
                    boots[-1].facts[key] = value
                    boots[-1].fact_times[key] = t
                if key == "done" and len(boots) > expect_reboots:
                    done_at = now
            stamped.flush()
            if exited:
                rc = qemu.returncode
                if rc != 0:
                    outcome, detail = "qemu-error", f"qemu exited with {rc}, see {outdir}/qemu.out"
                elif panics and not expect_reboots:
                    outcome, detail = "panic", panics[0]
                else:
                    outcome = "finished"
                break
            if done_at is not None and now - done_at > POWEROFF_GRACE_S:
                outcome, detail = "finished", f"(guest did not power off within {POWEROFF_GRACE_S} s; killed)"
                break
            if panics and not expect_reboots and now - last_output > 5:
                outcome, detail = "panic", panics[0]
                break
            if now - last_output > hang_s:
                outcome, detail = "hung", f"hung: no console output for {hang_s} s (at {t:.0f} s)"
                break
            if t > timeout_s and done_at is None:
                outcome, detail = "timeout", f"timeout: still running after {timeout_s} s"
                break
            time.sleep(0.2)
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
        _live.discard(qemu)
        stamped.close()
    return Run(outcome=outcome, detail=detail, boots=boots, wall_s=time.monotonic() - started,
               console=str(console), results=str(results), panics=panics, warnings=warnings,
               kernel_starts=kernel_starts)
