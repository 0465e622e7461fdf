"""The scenarios: what each boots, and what must be true afterwards.

A scenario is a guest script (guest/scenarios/NAME.sh, which only gathers
facts and prints them as `OOMTEST key=value`) plus a check here that decides.
Keeping the verdict on the host keeps every expected value in this one file,
next to the kernel command line that should produce it.
"""

import dataclasses
import json
import pathlib

from . import ovmf, stall

BOTH = ("6.1", "6.12")
PROJECT = ("make-install", "dkms", "units")      # image build steps a scenario relies on
MiB = 1024 * 1024


@dataclasses.dataclass
class Scenario:
    name: str
    doc: str
    check: object                     # function(Expect) -> None
    cmdline: str = ""
    initrd: str = "dracut"            # dracut | dracut-shell | initramfs-tools
    kernels: tuple = BOTH
    needs: tuple = PROJECT + ("dracut",)
    script: str = ""                  # guest script, default: the name
    reboots: int = 0                  # reboots the guest must do by itself
    timeout_s: int = 600
    qemu_args: object = None          # function(outdir) -> extra QEMU arguments, or None
    image: str = "project"            # project (make install) | deb (packages, mkinitcpio)

    @property
    def guest_script(self):
        return self.script or self.name

    def needed_steps(self):
        return tuple(dict.fromkeys(self.needs + ((self.initrd,) if self.needs else ())))


def _json_fact(e, key):
    raw = e.fact(key)
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        e.fail(f"{key}: not JSON: {raw!r}")
        return None


# ------------------------------------------------------------------ checks

def check_boot(e):
    if not e.finished():
        return
    e.that(e.fact("uname_r") == e.fact("kernel"), "uname -r differs from the harness's kernel")
    e.equal("swap_total_kb", 0)
    e.at_least("mem_total_kb", 400 * 1024)
    e.at_most("harness_start_s", 240)


PARAMS = {"bufsize": 48, "gracetime": 600, "resettime": 77, "crashflag": 0,
          "crashflag_name": "/var/tmp/oomflag"}


def check_params(e):
    """Command-line parameters in effect; guard started in the initrd alive in the real root."""
    if not e.finished():
        return
    for key, value in PARAMS.items():
        e.equal(f"sysctl.{key}", value)
    e.equal("status.state", "armed")
    e.equal("status.reserved_bytes", PARAMS["bufsize"] * MiB)
    e.equal("mode", "kernel")
    # gracetime > 0 and Debian's kernel.panic=0: init must make the panic reboot.
    e.that(e.fact("kernel_panic") not in (None, "0"), f"kernel.panic is {e.fact('kernel_panic')!r}, "
           "expected non-zero because gracetime > 0")
    status = _json_fact(e, "status_json")
    if isinstance(status, dict):
        e.that(status.get("mode") == "kernel", f"oom-ext status --json: mode {status.get('mode')!r}")
    check_guard_survived(e)
    check_memcg_kill(e)


def check_guard_survived(e):
    e.equal("guard_alive", 1)
    e.equal("guard_count", 1)
    e.equal("guard_root", "/")
    e.that("(deleted)" not in (e.fact("guard_exe") or "(deleted)"),
           f"guard runs a deleted (initramfs) binary: {e.fact('guard_exe')!r}")
    start, switch = e.number("guard_start_s"), e.number("realroot_start_s")
    if start is not None and switch is not None:
        e.that(start < switch, f"guard started at {start} s, after the real root's init ({switch} s): "
               "it was not carried over from the initrd")


BAD_VALUES = {"bufsize": "abc", "gracetime": "5", "resettime": "99999999999", "crashflag": "2",
              "crashflag_name": "relative/oomflag"}
DEFAULTS = {"bufsize": 32, "gracetime": 0, "resettime": 300, "crashflag": 1, "crashflag_name": "/oomflag"}
LONG_PATH = "/" + "a" * 300


def check_badparams(e, bad=BAD_VALUES):
    """Boot completes; each bad value is named in exactly one log line; defaults apply."""
    if not e.finished():
        return
    for key, value in bad.items():
        count = e.number(f"badlog_count.{key}")
        line = e.fact(f"badlog.{key}") or ""
        e.that(count == 1, f"oom_ext.{key}={value[:20]}: expected exactly one log line naming it, found {count:g}"
               if count is not None else f"oom_ext.{key}: no count")
        e.that(value[:40] in line, f"oom_ext.{key}: log line does not quote the bad value: {line!r}")
    for key, value in DEFAULTS.items():
        e.equal(f"sysctl.{key}", value)
    e.equal("status.state", "armed")
    e.equal("mode", "kernel")


def check_badparams_path(e):
    check_badparams(e, bad={"crashflag_name": LONG_PATH})


def check_storm(e):
    """Buffer released in an OOM storm, flag present during it and gone after, re-armed."""
    if not e.finished():
        return
    # Someone died: the kernel's OOM killer (vmstat oom_kill) or the
    # guard's stall protection (its victims, killed through a pidfd).
    kernel, guard = e.number("oom_kills"), e.number("guard_victims")
    if kernel is not None and guard is not None:
        e.that(kernel + guard >= 1, f"nobody was killed: oom_kills {kernel:g}, guard_victims {guard:g}")
    e.at_least("status_after.releases", 1)
    e.at_least("status_after.oom_events", 1)
    e.equal("flag_seen_in_oom", 1)
    e.contains("flag_content", "oom_ext_flag=1")
    e.contains("flag_content", f"kernel={e.fact('kernel')}")
    e.equal("left_oom", 1)
    e.equal("flag_after", "absent")
    e.equal("rearmed", 1)
    e.at_least("status_after.rearms", 1)
    e.equal("status_after.state", "armed")
    e.equal("status_after.reserved_bytes", 32 * MiB)
    # The machine answered: the heartbeat went on after the storm.
    after = e.run.ticks_after("storm_over")
    e.that(after >= 3, f"only {after} heartbeat ticks after the storm")


def _first_boot_console(run):
    """The console text of the first boot (up to the second kernel's banner)."""
    try:
        text = pathlib.Path(run.console).read_text(errors="replace")
    except OSError:
        return ""
    second = text.find("Linux version", text.find("Linux version") + 1)
    return text if second < 0 else text[:second]


def check_gracetime(e):
    """Persistent OOM + gracetime: the guest reboots itself; the next boot reports it."""
    run = e.run
    onhang = run.fact("onhang", boot=0) == "1"
    if not e.finished(boots=3 if onhang else 2) or len(run.boots) < 2:
        return
    # The module reboots through panic(); the fallback guard (no module) syncs and reboots.
    if e.fact("mode", boot=0) == "kernel":
        if not any("oom_ext" in p for p in run.panics):
            # The guard's backstop: a stall that outlasts gracetime by 5 s
            # reboots even when the module's own state ended for a moment
            # (memory came back briefly on a slow host) and its timer began
            # again. Accepted only when the console shows exactly that.
            first = _first_boot_console(run)
            backstop = "oom_ext: OOM state ended" in first and "reboot: Restarting system" in first
            e.that(backstop, f"no oom_ext panic on the console (panics: {run.panics}), and no backstop reboot "
                             "after an interrupted module OOM state")
            if backstop:
                print(f"note: gracetime@{e.fact('kernel', boot=0)}: the guard's backstop rebooted (the module's OOM state ended and began "
                      "again before its gracetime)", flush=True)
            e.contains("history_latest", '"gracetime_reboot":true', boot=1)
    else:
        e.equal("mode", "fallback", boot=0)
    e.that(e.fact("kernel_panic", boot=0) not in (None, "0"), "kernel.panic was 0 in the first boot")
    boot_id = e.fact("boot_id", boot=0)
    e.that(e.fact("report_log", boot=1), "the report unit logged nothing on the next boot")
    e.contains("report_log", boot_id or "<no boot id>", boot=1)
    e.at_least("history_count", 1, boot=1)
    e.contains("history_latest", boot_id or "<no boot id>", boot=1)
    if not e.equal("flag_left", "absent", boot=1):
        e.fail(f"flag left after the report: state now {e.fact('status_now.state', boot=1)!r}, "
               f"last_source {e.fact('status_now.last_source', boot=1)!r}, content {e.fact('flag_left_content', boot=1)!r}, "
               f"guard log {e.fact('guard_log_now', boot=1)!r}, module log {e.fact('module_log_now', boot=1)!r}")
    if onhang and len(run.boots) >= 3:
        _check_on_hang(e)


def _check_on_hang(e):
    """Issue 17, on_hang=mask-unit: boots 1 and 2 hang in oomtest-leak.service, boot 3 has it masked."""
    leak = "oomtest-leak.service"
    # Boot 2: one hang before it, reported only; the unit came up (and hung the boot).
    e.contains("onhang_log", "1 hang boot(s) in a row; reported only", boot=1)
    e.contains("onhang_record", "action=report|", boot=1)
    e.equal("leak_load", "loaded", boot=1)
    e.equal("leak_started", 1, boot=1)
    # The archived report of boot 1 names the victim's unit and the boot that reported it.
    e.contains("history_latest", f'"unit":"{leak}"', boot=1)
    e.contains("history_latest", f'"reported_boot_id":"{e.fact("boot_id2", boot=1)}"', boot=1)
    # Boot 3: masked before it started; the report, the history and status say so.
    e.contains("onhang_log", f"2 hang boot(s) in a row; masked {leak} for this boot", boot=2)
    e.contains("onhang_record", f"action=mask-unit|unit={leak}|hang_boots=2|", boot=2)
    e.equal("mask", "/dev/null", boot=2)
    e.equal("leak_load", "masked", boot=2)
    e.that(e.fact("leak_active", boot=2) in ("inactive", "failed"),
           f"{leak} is {e.fact('leak_active', boot=2)!r} in the masked boot")
    e.equal("leak_started", 0, boot=2)
    e.contains("report_log", f"on_hang=mask-unit on_hang_unit={leak}", boot=2)
    e.contains("history_latest", f'"on_hang":{{"action":"mask-unit","unit":"{leak}","hang_boots":2', boot=2)
    e.contains("history_latest", e.fact("boot_id2", boot=1) or "<no boot id>", boot=2)
    e.contains("status_text", f"masked {leak} for this boot (undo: oom-ext on-hang undo)", boot=2)
    e.contains("status_json", '"on_hang":{"on_hang":"mask-unit","on_hang_boots":2,"this_boot":{"action":"mask-unit"', boot=2)
    # Undo: one command, the unit loads again.
    e.equal("undo_rc", 0, boot=2)
    e.contains("undo_out", f"unmasked {leak}", boot=2)
    e.equal("leak_load_after", "loaded", boot=2)
    e.equal("mask_after", "absent", boot=2)
    e.contains("undo_log", f"on_hang undone: unmasked {leak}", boot=2)


# pstore names efi_pstore's records after the backend: "efi" up to 6.1,
# the module's name from 6.2 on ("efi: pstore: Follow convention for the
# efi-pstore backend name").
EFI_RECORD = {"6.1": "dmesg-efi-", "6.12": "dmesg-efi_pstore-"}
PSTORE_EFI_GRACETIME = 7


def _series(release):
    return "6.12" if (release or "").startswith("6.12") else "6.1"


def check_pstore_efi(e):
    """UEFI guest, efi_pstore: the gracetime panic's log in EFI variables; the next boot's report names
    the record and archives it once; the variables are erased."""
    if not e.finished(boots=2):
        return
    name = EFI_RECORD[_series(e.fact("kernel", boot=0))]
    for boot in (0, 1):
        e.equal("efi", 1, boot=boot)
        e.at_least("efivars", 1, boot=boot)
        e.equal("efi_pstore_loaded", 1, boot=boot)
        e.that(e.fact("pstore_backend", boot=boot) in ("efi", "efi_pstore"),
               f"boot {boot + 1}: pstore backend {e.fact('pstore_backend', boot=boot)!r}, not efi_pstore")
    e.equal("dump_vars", 0, boot=0)
    e.equal("mode", "kernel", boot=0)
    e.that(any("oom_ext" in p for p in e.run.panics), f"no oom_ext panic on the console (panics: {e.run.panics})")
    e.at_least("records_with_oom_ext", 1)
    # The record the report names: the backend's own (live, or moved by
    # systemd-pstore) or systemd-pstore's dmesg.txt, which joins a dump's
    # parts under their names ("dmesg-efi-…:" lines). Either way the
    # backend's name is in it.
    summary = f"oom_ext panicked after gracetime={PSTORE_EFI_GRACETIME} s in the OOM state (crash flag present at /oomflag)"
    log = e.fact("report_log") or ""
    lines = [line for line in log.split("|") if "pstore record /" in line]
    named = [line.split("pstore record ", 1)[1].split(": ", 1)[0] for line in lines if summary in line]
    texts = dict(v.split(": ", 1) for k, v in e.run.boots[1].facts.items() if k.startswith("record.") and ": " in v)
    e.that(any(pathlib.PurePath(r).name.startswith(name) or f"|{name}" in "|" + texts.get(r, "") for r in named),
           f"the report names no record of efi_pstore ({name}…) with {summary!r}: {lines or log!r}")
    # One panic, one pstore report in the history; a second report finds
    # systemd-pstore's copy again (archived this boot) and archives nothing.
    e.equal("history_pstore_count", 1)
    e.contains("history_pstore", '"panic":"gracetime"')
    e.equal("history_count_again", e.fact("history_count") or "<none>")
    # The records were erased from the firmware's store (by systemd-pstore's
    # unlink, or the report's when systemd-pstore did not run).
    e.equal("dump_vars_now", 0)
    e.equal("flag_left", "absent")


def check_fallback(e):
    """Module refused: the guard holds the buffer itself; boot completes."""
    if not e.finished():
        return
    e.equal("module_loaded", 0)
    e.equal("mode", "fallback")
    status = _json_fact(e, "status_json")
    if isinstance(status, dict):
        e.that(status.get("mode") == "fallback", f"oom-ext status --json: mode {status.get('mode')!r}")
    e.equal("guard_alive", 1)
    e.at_least("guard_vmlck_kb", 40 * 1024 * 0.95)
    e.that(e.fact("fallback_log"), "no log line says why the module could not be used")
    e.that(e.fact("system_state") in ("running", "degraded"), f"system state {e.fact('system_state')!r}")
    check_memcg_kill(e)


def check_memcg_kill(e):
    """Issue 17: a MemoryMax= unit's OOM kill is counted as a cgroup kill, and
    is no system OOM: no OOM state, release, kill or flag followed from it."""
    e.contains("memcg_hog_result", "oom-kill")
    lines = e.number("memcg_lines")
    if not e.that(lines is not None and lines >= 1,
                  f"no 'Memory cgroup out of memory' line in dmesg: {e.fact('memcg_hog')!r}"):
        return
    # vmstat's oom_kill counted the cgroup kills too (the bug's trigger).
    e.equal("memcg_vmstat_rise", int(lines))
    status = _json_fact(e, "memcg_status_json")
    if not isinstance(status, dict):
        return
    counters = status.get("counters") or {}
    facts = f"guard.state {e.fact('memcg_guard_state')!r}, guard log {e.fact('memcg_guard_log')!r}"
    e.that(counters.get("memcg_kills") == int(lines),
           f"status counters.memcg_kills {counters.get('memcg_kills')!r}, the kernel logged {int(lines)}: {facts}")
    for k in ("oom_events", "releases", "kills", "victims"):
        e.that(counters.get(k) == 0, f"the cgroup kill was taken for a system OOM: counters.{k}={counters.get(k)!r}; {facts}")
    e.that(status.get("state") == "armed", f"status state {status.get('state')!r} after the cgroup kill: {facts}")
    e.contains("memcg_status_text", f"memcg_kills={int(lines)}")
    e.contains("memcg_prom", f"oom_ext_memcg_kills_total {int(lines)}")
    e.contains("memcg_prom", "oom_ext_oom_events_total 0")
    log = e.fact("memcg_guard_log") or ""
    e.that("cgroup OOM: the kernel killed pid" in log, f"no guard log line for the cgroup kill: {log!r}")
    e.that(not any(w in log for w in ("OOM state entered", "killing a victim", "-> oom")),
           f"the guard or the module acted on the cgroup kill: {log!r}")
    if e.fact("memcg_module_oom_calls"):
        e.equal("memcg_module_oom_calls", 0)
    e.equal("memcg_flag", "absent")


def check_symlink(e):
    """A flag path pre-created as a symlink by another user is not followed."""
    if not e.finished():
        return
    e.that(e.fact("flag1") not in (None, ""), "no crash-flag path in effect (neither sysctl nor /run/oom-ext/params)")
    e.at_least("oom_events_1", 1)       # the OOM state was entered: the flag path was exercised
    e.equal("target_unchanged", 1)
    e.equal("link_unchanged", 1)
    e.equal("created_elsewhere", 0)


def check_cycles(e):
    """Load/unload cycles (also in the OOM state) leak nothing; bad sysctl writes get EINVAL."""
    if not e.finished():
        return
    e.equal("cycles_ok", e.fact("cycles_total") or "<none>")
    drift = e.number("mem_drift_kb")
    if drift is not None:
        e.that(abs(drift) <= 8 * 1024, f"MemAvailable moved by {drift:g} kB over the load/unload cycles")
    e.equal("kernel_warnings", 0)
    total = int(e.number("badwrites_total") or 0)
    e.that(total > 0, "no bad sysctl writes were tried")
    for i in range(total):
        e.contains(f"badwrite.{i}", "EINVAL, unchanged")
    e.equal("resize_16", 16 * MiB)
    e.equal("resize_0_state", "off")
    e.equal("resize_back", 32 * MiB)


def check_storm_control(e):
    """Negative control: the same storm on a bare kernel (oom_ext=0) must fail check_storm.

    Proves the storm check can fail: without oom_ext nothing is released,
    flagged or re-armed, and the check has to say so.
    """
    from .expect import Expect
    if not e.finished():
        return
    probe = Expect(e.run)
    check_storm(probe)
    e.at_least("oom_kills", 1)          # the storm did hit the OOM killer
    missing = [m for m in ("status_after.releases", "flag_seen_in_oom", "rearmed")
               if not any(m in f for f in probe.failures)]
    e.that(not missing, f"check_storm did not notice the missing {missing} on a bare kernel "
           f"(its failures: {probe.failures})")


BOOT_PARAMS = "oom_ext.bufsize=24 oom_ext.resettime=61"


def check_initrd(e):
    if not e.finished():
        return
    e.equal("sysctl.bufsize", 24)
    e.equal("sysctl.resettime", 61)
    e.equal("status.reserved_bytes", 24 * MiB)
    e.equal("mode", "kernel")
    check_guard_survived(e)


DEB = ("deb-build", "deb-install", "deb-purge")    # package image steps


def check_deb_upgrade(e):
    """Booted from the packaged initramfs; `apt-get install` of the new build restarts the guard with the
    new binary and puts that binary into this kernel's initramfs."""
    check_initrd(e)
    if not e.finished():
        return
    new = e.fact("new_sha")
    e.that(e.fact("before_sha") != new, "the previous build's binary is the new one: the upgrade proves nothing")
    e.equal("upgrade_rc", 0)
    e.that(not (e.fact("installed_version") or "~prev").endswith("~prev"),
           f"oom-ext still at {e.fact('installed_version')!r} after the upgrade")
    e.equal("installed_sha", new)
    e.equal("upgraded_guard_count", 1)
    e.equal("upgraded_unit", "active")
    e.equal("upgraded_guard_sha", new)
    e.equal("initrd_sha", new)


POLICY_HOLDERS = ("lista", "listb", "smallpref", "keeper")


def check_policy(e):
    """Issue 17: dry run kills nobody and logs its choice; then the run-time list in order, a preferred
    small process before bigger ones, and a protected process (the kernel's first choice) survives;
    kill-parent takes a forker after two of its children, not its sibling; policy=panic panics the
    kernel and the next boot's report names it."""
    e.finished(boots=2)
    if not e.run.boots:
        return
    # Every phase's own verdict, also when a later one failed.
    _check_policy_boot1(e)
    _check_policy_parent(e)
    _check_policy_panic(e)


def _check_policy_boot1(e):
    e = _BootExpect(e, 0)
    e.equal("guard_alive", 1)
    e.contains("victims_list", "1. policy-lista.service (unit)|2. ")
    # Phase A: dry run from policy.d, a bad line logged with its place.
    e.contains("a.policy_line", "policy: 2 rules (prefer 1, avoid 0, protect 1, default 0)")
    e.contains("a.policy_line", "dry_run=1")
    e.equal("a.bad_line", 1)
    e.at_least("a.dry_lines", 1)
    e.contains("a.dry_first", " lista (unit policy-lista.service")
    e.contains("a.dry_first", "chosen by entry 1 of the victims list; runner-up ")
    e.equal("a.kills", "")
    e.equal("a.sysrq", 0)
    for n in POLICY_HOLDERS[:3]:
        e.equal(f"a.alive.{n}", 1)
    # Phase B: the list, the prefer rule, then the kernel's ranking without the protected keeper.
    e.contains("b.policy_line", "dry_run=0")
    ours = [k.split(":")[0] for k in (e.fact("b.kills") or "").split(",") if k]
    kernels = [k.split(":")[0] for k in (e.fact("b.kernel_killed") or "").split(",") if k]
    timeline = e.fact("guard_timeline")
    e.that(ours[:3] == ["lista", "listb", "smallpref"],
           f"oom_ext's first kills {ours[:3]}, expected lista, listb, smallpref; guard: {timeline}")
    e.that("hog" in ours[3:] or "hog" in kernels,
           f"the hog was not killed (oom_ext: {ours}, kernel: {kernels})")
    e.that("keeper" not in ours, f"oom_ext killed the protected keeper: {ours}")
    # kill_scope=unit: a victim of oom_ext's takes its unit whole (the thrash unit: bash, dd, the hog).
    if "hog" in ours:
        e.contains("b.kill_lines", "hog (unit policy-thrash-b.service")
        e.contains("b.kill_lines", "with its cgroup /system.slice/policy-thrash-b.service chosen by oom_score")
        e.equal("b.thrash_left", 0)
    e.equal("b.alive.keeper", 1)
    for n in ("lista", "listb", "smallpref"):
        e.equal(f"b.alive.{n}", 0)
    e.contains("b.kill_lines", 'chosen by rule "prefer name=smallpref" (/etc/oom-ext/policy.conf:2); runner-up ')
    e.contains("b.kill_lines", "chosen by entry 2 of the victims list")
    e.equal("b.fallbacks", 0)
    e.contains("b.victims_list", "(gone)")
    e.at_least("b.journal_kills", 3)
    e.equal("b.journal_lista", 1)
    e.contains("catalog", "0f9f2ed9e9bc487d8c71326a256fcb7f oom_ext: oom_ext killed")
    e.equal("guard_alive_end", 1)


class _BootExpect:
    """An Expect whose facts default to one boot (the policy scenario's first)."""

    def __init__(self, e, boot):
        self._e, self._boot = e, boot

    def fact(self, key, boot=None):
        return self._e.fact(key, self._boot if boot is None else boot)

    def __getattr__(self, name):
        method = getattr(self._e, name)
        if name in ("equal", "number", "at_least", "at_most", "contains"):
            return lambda key, *a, boot=None: method(key, *a, boot=self._boot if boot is None else boot)
        return method


def _check_policy_parent(e):
    """Phase C: parent_max=2: the forker dies with its second child, its sibling lives."""
    e = _BootExpect(e, 0)
    e.contains("c.policy_line", "kill_scope=process")
    e.contains("c.policy_line", "parent_max=2, parent_expire=120")
    kills = [k.split(":")[0] for k in (e.fact("c.kills") or "").split(",") if k]
    timeline = e.fact("c.timeline")
    e.that(kills[:2] == ["hog", "hog"], f"oom_ext's kills in phase C {kills}, expected two hogs first; guard: {timeline}")
    e.contains("c.parent_line", f"killed parent {e.fact('c.forker_pid')} forker")
    e.contains("c.parent_line", "parent_max=2 of its children were OOM victims")
    e.equal("c.forker_alive", 0)
    e.equal("c.sibling_alive", 1)
    e.equal("c.parent_journal", 1)
    # oom-ext status: the settings of the SIGHUP, the rules per file, the bad line, the list.
    e.contains("c.status", "policy:        kill, kill_scope=process, dry_run=0, parent_max=2, parent_expire=120|")
    e.contains("c.status", "policy rules:  2 (/etc/oom-ext/policy.conf 2)|")
    e.contains("c.status", "policy error:  /etc/oom-ext/policy.conf:4: ")
    e.contains("c.status", "victims list:  1. policy-lista.service (unit)|")
    e.contains("c.status_json", '"policy":{"policy":"kill","kill_scope":"process","dry_run":false,"parent_max":2')
    # kill.d: one run per kill (the hogs, then the parent), told by variables and JSON, at
    # oom_score_adj 0 and SCHED_OTHER (not the guard's -1000 and real-time priority).
    hooks = [h for h in (e.fact("c.killhook") or "").split("|") if h]
    forker = e.fact("c.forker_pid")
    e.that(len(hooks) >= 3, f"kill.d ran {len(hooks)} times in phase C, expected 3 (two hogs, the parent): {hooks}")
    e.that(any(h.startswith("kill ") and ' hog policy-forkc.service adj=0 sched=0 json={"event":"kill"' in h
               for h in hooks), f"no kill.d run for a hog at adj=0 sched=0: {hooks}")
    e.that(any(h.startswith(f"parent {forker} forker policy-forkc.service adj=0 sched=0 json=") and
               '"reason":"parent_max=2 of its children were OOM victims' in h for h in hooks),
           f"no kill.d run for the parent {forker}: {hooks}")


def _check_policy_panic(e):
    """Phase D: policy=panic by SIGHUP, a stall: a kernel panic, a reboot, the report names it."""
    run = e.run
    e.that(e.fact("d.state_before", boot=0) in ("armed", "recovering"),
           f"d.state_before: the module was {e.fact('d.state_before', boot=0)!r} before the panic stall")
    e.contains("d.reload_line", "policy=panic", boot=0)
    e.that(e.fact("d.no_panic", boot=0) is None, f"no panic after policy=panic: {e.fact('d.timeline', boot=0)}")
    e.that(any("sysrq" in p.lower() for p in run.panics), f"no sysrq panic on the console (panics: {run.panics})")
    boot_id = e.fact("boot_id", boot=0) or "<no boot id>"
    if len(run.boots) < 2:
        return
    e.contains("report_log", boot_id, boot=1)
    e.contains("report_log", " policy=panic", boot=1)
    e.contains("history_latest", "policy=panic", boot=1)
    e.equal("flag_left", "absent", boot=1)


SCENARIOS = [
    Scenario("boot", "boots to the harness and powers off (no project needed)", check_boot, needs=()),
    Scenario("params", "issue 2.1 / 5: cmdline parameters in effect, dracut systemd initrd; issue 17: a "
             "MemoryMax= unit's OOM kill is counted as a cgroup kill in kernel mode",
             check_params, " ".join(f"oom_ext.{k}={v}" for k, v in PARAMS.items())),
    Scenario("badparams", "issue 2.2: bad cmdline values are logged once each, defaults apply",
             check_badparams, " ".join(f"oom_ext.{k}={v}" for k, v in BAD_VALUES.items())),
    Scenario("badparams-path", "issue 2.2: an over-long crash-flag path is refused",
             check_badparams_path, f"oom_ext.crashflag_name={LONG_PATH}", script="badparams"),
    Scenario("storm", "issue 2.3: OOM storm releases, flags, recovers and re-arms",
             check_storm, "oom_ext.resettime=20", timeout_s=720),
    Scenario("storm-control", "negative control: the storm check fails on a bare kernel (oom_ext=0)",
             check_storm_control, "oom_ext=0", script="storm", kernels=("6.1",), timeout_s=720),
    Scenario("gracetime", "issue 2.4: persistent OOM with gracetime reboots; next boot reports; issue 17: "
             "on_hang=mask-unit, a service that hangs two boots in a row is masked in the third, then undone",
             check_gracetime, "oom_ext.gracetime=20 oomtest.onhang", reboots=2, timeout_s=1500),
    Scenario("gracetime-fallback", "issue 4: fallback mode (module refused): persistent OOM with gracetime, "
             "the guard syncs and reboots; next boot reports",
             check_gracetime, "module_blacklist=oom_ext oom_ext.gracetime=20", script="gracetime",
             reboots=1, timeout_s=900),
    Scenario("pstore-efi", "issue 14.8: UEFI (OVMF), efi_pstore: the gracetime panic's log in EFI variables; "
             "the next boot's report names the record and archives it once",
             check_pstore_efi, f"oom_ext.gracetime={PSTORE_EFI_GRACETIME}",
             reboots=1, timeout_s=900, qemu_args=ovmf.qemu_args),
    Scenario("fallback", "issue 2.5: module refused -> userspace fallback, boot completes; issue 17: a "
             "MemoryMax= unit's OOM kill is counted as a cgroup kill and is no system OOM",
             check_fallback, "module_blacklist=oom_ext oom_ext.bufsize=40", needs=PROJECT),
    Scenario("symlink", "issue 2.6: a symlinked crash-flag path is not followed",
             check_symlink, "oom_ext.crashflag_name=/tmp/oomflag"),
    Scenario("cycles", "issue 2.7: load/unload cycles and bad sysctl writes",
             check_cycles, "", timeout_s=720),
    Scenario("initrd-dracut-shell", "issue 5: dracut shell initrd, params + guard survives",
             check_initrd, BOOT_PARAMS, initrd="dracut-shell", script="initrd"),
    Scenario("initrd-initramfs-tools", "issue 5: initramfs-tools, params + guard survives",
             check_initrd, BOOT_PARAMS, initrd="initramfs-tools", script="initrd"),
]

# Packages and the real mkinitcpio (issue 18): the package image (debimage.py).
SCENARIOS += [
    Scenario("deb-upgrade", "issue 18: .debs installed by apt-get, initramfs-tools initrd from the package's "
             "postinst; params + guard survives; apt-get upgrade restarts the guard, new binary in the initramfs",
             check_deb_upgrade, BOOT_PARAMS, initrd="deb-initramfs-tools", script="deb-upgrade",
             kernels=("6.1",), needs=DEB, image="deb", timeout_s=1200),
    Scenario("deb-dracut", "issue 18: .debs installed by apt-get, dracut initrd (module added by the package's "
             "dracut.conf.d); params + guard survives",
             check_initrd, BOOT_PARAMS, initrd="deb-dracut", script="initrd", kernels=("6.12",), needs=DEB, image="deb"),
    # init=: mkinitcpio's busybox /init tests /sbin/init inside the new root before
    # switch_root, and Debian's is an absolute link (Arch's are relative).
    Scenario("initrd-mkinitcpio", "issue 18: real mkinitcpio v41, HOOKS=(base udev oom-ext ...); params + guard survives",
             check_initrd, BOOT_PARAMS + " init=/lib/systemd/systemd", initrd="mkinitcpio", script="initrd", needs=DEB, image="deb"),
    Scenario("initrd-mkinitcpio-systemd", "issue 18: real mkinitcpio v41, HOOKS=(base systemd sd-oom-ext ...); "
             "params + guard survives",
             check_initrd, BOOT_PARAMS, initrd="mkinitcpio-systemd", script="initrd", needs=DEB, image="deb"),
]


SCENARIOS.append(Scenario(
    "policy", "issue 17: dry run kills nobody and logs its choice; the victims list in order, prefer before a "
    "bigger process, protect keeps the kernel's first choice alive, kill_scope=unit takes the hog's unit whole, "
    "kill-parent takes a forker and not its sibling, policy=panic panics and the next boot's report names it "
    "(two boots, four page-cache stalls)",
    check_policy, stall.COMMON_CMDLINE + " oom_ext.kill_scope=unit", reboots=1, timeout_s=stall.STALL_TIMEOUT_S))

# Stall protection (issue 6): defined in stall.py.
SCENARIOS += stall.stall_scenarios(Scenario)

BY_NAME = {s.name: s for s in SCENARIOS}
