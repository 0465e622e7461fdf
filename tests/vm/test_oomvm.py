"""Unit tests of the suite's own pure logic: python3 -m unittest tests/vm/test_oomvm.py"""

import json
import pathlib
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from oomvm import benchreport, initrd, ovmf, qemu, stall, versions  # noqa: E402
from oomvm.expect import Expect                      # noqa: E402
from oomvm.scenarios import BY_NAME                  # noqa: E402


class InitrdReader(unittest.TestCase):
    """An uncompressed early archive, then a gzip one with Arch's usr/sbin -> bin link."""

    def test_early_then_compressed_with_links(self):
        import os
        import subprocess
        import tempfile

        def cpio(root):
            names = sorted(os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root)
                           for n in ds + fs)
            return subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input="\n".join(names).encode(),
                                  capture_output=True, check=True).stdout

        with tempfile.TemporaryDirectory() as t:
            early, main = pathlib.Path(t, "early"), pathlib.Path(t, "main")
            (early / "kernel").mkdir(parents=True)
            (early / "kernel/ucode.bin").write_bytes(b"u")
            (main / "usr/bin").mkdir(parents=True)
            (main / "usr/bin/oom-ext").write_bytes(b"binary")
            os.symlink("bin", main / "usr/sbin")
            os.symlink("usr/bin", main / "bin")
            data = cpio(early) + b"\0" * 512 + subprocess.run(["gzip", "-c"], input=cpio(main),
                                                                 capture_output=True, check=True).stdout
        entries = initrd.initrd_entries(data)
        self.assertEqual(initrd.initrd_file(entries, "kernel/ucode.bin"), b"u")
        self.assertEqual(initrd.initrd_file(entries, "usr/sbin/oom-ext"), b"binary")
        self.assertEqual(initrd.initrd_file(entries, "/bin/oom-ext"), b"binary")
        self.assertIsNone(initrd.initrd_file(entries, "usr/sbin/missing"))
        self.assertIsNone(initrd.initrd_file(entries, "usr/bin"))       # a directory is not a file


class Versions(unittest.TestCase):
    def test_image_dependency(self):
        out = "linux-image-6.12-amd64\n  Depends: linux-image-6.12.117+deb12-amd64\n"
        self.assertEqual(versions.parse_image_dependency(out), "6.12.117+deb12-amd64")
        self.assertIsNone(versions.parse_image_dependency("linux-image-amd64\n"))

    def test_candidates(self):
        out = ("dkms:\n  Installed: (none)\n  Candidate: 3.0.10-8+deb12u1\n  Version table:\n"
               "gone:\n  Installed: (none)\n  Candidate: (none)\n")
        self.assertEqual(versions.parse_candidates(out), {"dkms": "3.0.10-8+deb12u1"})


def fake_run(facts, outcome="finished", boots=1):
    bs = [qemu.Boot(index=i + 1, facts=dict(facts), fact_times={}, ticks=[], started=0.0)
          for i in range(boots)]
    return qemu.Run(outcome=outcome, detail="", boots=bs, wall_s=1.0, console="", results="",
                    panics=[], warnings=[], kernel_starts=boots)


class Results(unittest.TestCase):
    def test_value_may_contain_equals(self):
        m = qemu.RESULT_RE.search("junk OOMTEST flag_content=a=1|b=2")
        self.assertEqual(m.groups(), ("flag_content", "a=1|b=2"))

    def test_a_line_cut_by_a_reboot_keeps_the_next_boots_first_record(self):
        # gracetime-fallback@6.1, 2026-12-02: the reboot cut "tick 12" and
        # the second boot's "boot=2" arrived glued to it.
        recs = qemu.records("OOMTEST tick 12 up=50.OOMTEST boot=2")
        self.assertEqual(recs, ["OOMTEST tick 12 up=50.", "OOMTEST boot=2"])
        self.assertTrue(qemu.TICK_RE.search(recs[0]))
        self.assertEqual(qemu.RESULT_RE.search(recs[1]).groups(), ("boot", "2"))
        self.assertEqual(qemu.records("OOMTEST mode=kernel"), ["OOMTEST mode=kernel"])
        self.assertEqual(qemu.records("[  1.0] junk OOMTEST a=1"), ["[  1.0] junk ", "OOMTEST a=1"])
        self.assertEqual(qemu.records(""), [])

    def test_a_beat_cut_by_a_reboot_keeps_the_next_boot(self):
        d = pathlib.Path(tempfile.mkdtemp())
        (d / "results.timed").write_text(
            "   1.00 OOMTEST boot=1\n"
            "   2.00 OOMTEST hb 1 gap_ms=100\n"
            "   3.00 OOMTEST hb 2 gap_ms=12OOMTEST boot=2\n"
            "   9.00 OOMTEST hb 1 gap_ms=100\n")
        got = stall.beats(d / "results.timed")
        shutil.rmtree(d)
        self.assertEqual(got, [(2.0, 100, 1), (3.0, 12, 1), (9.0, 100, 2)])

    def test_unfinished_guest_fails(self):
        e = Expect(fake_run({}, outcome="hung", boots=0))
        BY_NAME["params"].check(e)
        self.assertTrue(e.failures)

    def test_params_check_names_the_wrong_value(self):
        e = Expect(fake_run({"done": "1", "sysctl.bufsize": "32"}))
        BY_NAME["params"].check(e)
        self.assertTrue(any("sysctl.bufsize: expected 48" in f for f in e.failures))

    def test_memcg_kill_check_passes_a_counted_kill_and_fails_the_bug(self):
        from oomvm.scenarios import check_memcg_kill
        status = {"state": "armed", "counters": {"oom_events": 0, "releases": 0, "kills": 0, "victims": 0,
                                                 "memcg_kills": 1}}
        good = {"memcg_hog_result": "oom-kill", "memcg_lines": "1", "memcg_vmstat_rise": "1",
                "memcg_status_json": json.dumps(status), "memcg_status_text": "cgroup OOMs:   memcg_kills=1 (...)",
                "memcg_prom": "oom_ext_oom_events_total 0|oom_ext_kills_total 0|oom_ext_memcg_kills_total 1",
                "memcg_guard_log": "cgroup OOM: the kernel killed pid 9 (stress-ng-vm), ...", "memcg_flag": "absent"}
        e = Expect(fake_run(good))
        check_memcg_kill(e)
        self.assertEqual(e.failures, [])
        # The old guard: the vmstat rise taken for a system OOM.
        bug = dict(good, memcg_status_json=json.dumps(
            {"state": "oom", "counters": dict(status["counters"], oom_events=1, releases=1, memcg_kills=0)}),
            memcg_guard_log="OOM state entered (source vmstat): released the 40 MiB buffer", memcg_flag="present")
        e = Expect(fake_run(bug))
        check_memcg_kill(e)
        self.assertTrue(any("counters.oom_events=1" in f for f in e.failures), e.failures)
        self.assertTrue(any("memcg_kills" in f for f in e.failures), e.failures)
        self.assertTrue(any("memcg_flag" in f for f in e.failures), e.failures)

    def test_a_control_that_hangs_in_its_workload_shows_the_freeze(self):
        check = BY_NAME["stall-storm-off"].check
        hung = fake_run({"psi_param": "0", "stall_start_ms": "1"}, outcome="hung")
        hung.boots[0].fact_times["stall_start_ms"] = 40.0
        e = Expect(hung)
        check(e)
        self.assertEqual(e.failures, [])
        # Protection on while hung: not the control's freeze.
        on = fake_run({"psi_param": "1", "stall_start_ms": "1"}, outcome="hung")
        on.boots[0].fact_times["stall_start_ms"] = 40.0
        e = Expect(on)
        check(e)
        self.assertTrue(any("psi_param" in f for f in e.failures), e.failures)
        # Hung before the workload began: a broken boot, not a freeze.
        early = fake_run({"psi_param": "0"}, outcome="hung")
        e = Expect(early)
        check(e)
        self.assertTrue(e.failures)

    def test_storm_control_passes_only_when_storm_check_fails(self):
        bare = fake_run({"done": "1", "oom_kills": "3", "module_loaded": "0"})
        e = Expect(bare)
        BY_NAME["storm-control"].check(e)
        self.assertEqual(e.failures, [])

    def test_gracetime_takes_the_backstop_reboot_only_after_an_interrupted_module_state(self):
        # gracetime@6.12, 2026-12-02, a loaded host: the module's OOM state
        # ended for a second and began again; the guard's backstop rebooted
        # (orderly) before the module's new timer was due.
        boot1 = {"mode": "kernel", "kernel": "6.12", "kernel_panic": "10", "boot_id": "B1", "done": "1"}
        boot2 = {"report_log": "hang B1", "history_count": "1", "flag_left": "absent", "done": "1",
                 "history_latest": '{"boot_id":"B1","gracetime_reboot":true}'}
        banner = "[0.0] Linux version 6.12\n"
        for first, ok in (("oom_ext: OOM state ended (MemAvailable 38940 KiB)\nreboot: Restarting system\n", True),
                          ("reboot: Restarting system\n", False)):
            with tempfile.TemporaryDirectory() as d:
                console = pathlib.Path(d) / "console.log"
                console.write_text(banner + first + banner + "oom_ext: OOM state ended\n" * (not ok))
                run = fake_run({}, boots=2)
                run.boots[0].facts, run.boots[1].facts = dict(boot1), dict(boot2)
                run.console = str(console)
                e = Expect(run)
                BY_NAME["gracetime"].check(e)
                self.assertEqual(e.failures == [], ok, e.failures)

    def test_pstore_efi_check(self):
        # pstore-efi@6.1 and @6.12, 2026-12-02 (cut): systemd-pstore moved the
        # parts and wrote dmesg.txt; the report found that one.
        def facts(kernel, name, sd_id):
            boot1 = {"efi": "1", "efivars": "26", "dump_vars": "0", "efi_pstore_loaded": "1",
                     "pstore_backend": name.split("-")[1], "kernel": kernel, "mode": "kernel", "done": "1"}
            rec = f"/var/lib/systemd/pstore/{sd_id}/dmesg.txt"
            line = (f"pstore record {rec}: oom_ext panicked after gracetime=7 s in the OOM state "
                    "(crash flag present at /oomflag)")
            boot2 = dict(boot1, efivars="40", records_with_oom_ext="2", history_count="2",
                         history_count_again="2", history_pstore_count="1", flag_left="absent", dump_vars_now="0",
                         report_log=f"Starting oom-ext-report.service|{line}|oom-ext: {line}",
                         history_pstore='{"status":"pstore","panic":"gracetime"}')
            boot2["record.0"] = f"/var/lib/systemd/pstore/{sd_id}/{name}{sd_id}203001: Panic#1 Part3|x"
            boot2["record.1"] = f"{rec}: {name}{sd_id}215001:|Panic#1 Part15|<6>[ 2.1] x|{name}{sd_id}203001:|y"
            return boot1, boot2

        def check(kernel, name, **change):
            run = fake_run({}, boots=2)
            run.boots[0].facts, run.boots[1].facts = facts(kernel, name, "179622928")
            run.boots[1].facts.update(change)
            run.panics = ["Kernel panic - not syncing: oom_ext: OOM state lasted gracetime=7 s"]
            e = Expect(run)
            BY_NAME["pstore-efi"].check(e)
            return e.failures

        self.assertEqual(check("6.1.0-57-amd64", "dmesg-efi-"), [])
        self.assertEqual(check("6.12.117+deb12-amd64", "dmesg-efi_pstore-"), [])
        # 6.12's records under 6.1's name, or no backend name at all: not proven.
        self.assertTrue(check("6.12.117+deb12-amd64", "dmesg-efi-"))
        self.assertTrue(check("6.1.0-57-amd64", "dmesg-ramoops-"))
        self.assertTrue(check("6.1.0-57-amd64", "dmesg-efi-", history_pstore_count="2"))
        self.assertTrue(check("6.1.0-57-amd64", "dmesg-efi-", history_count_again="3"))
        self.assertTrue(check("6.1.0-57-amd64", "dmesg-efi-", dump_vars_now="14"))
        self.assertTrue(check("6.1.0-57-amd64", "dmesg-efi-", dump_vars_now=None))

    def test_ovmf_firmware_and_a_fresh_variable_store(self):
        with tempfile.TemporaryDirectory() as d:
            fw, out = pathlib.Path(d, "fw"), pathlib.Path(d, "out")
            fw.mkdir()
            with self.assertRaises(RuntimeError):
                ovmf.qemu_args(out, fw)
            (fw / "OVMF_CODE_4M.fd").write_bytes(b"code")
            (fw / "OVMF_VARS_4M.fd").write_bytes(b"vars")
            args = ovmf.qemu_args(out, fw)
            self.assertEqual(args, ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={fw}/OVMF_CODE_4M.fd",
                                    "-drive", f"if=pflash,format=raw,unit=1,file={out}/efivars.fd"])
            (out / "efivars.fd").write_bytes(b"written by the last run")
            ovmf.qemu_args(out, fw)
            self.assertEqual((out / "efivars.fd").read_bytes(), b"vars")

    def test_near_miss_check(self):
        # The facts of stall-nearmiss@6.12 (2026-12-02): both jobs lived,
        # no PSI event at all.
        ok = {"done": "1", "finished": "1", "bystander_alive": "1", "heartbeat_alive": "1", "guard_alive": "1",
              "worst_gap_ms": "3144", "beats": "352", "sysrq_kills": "0", "job_rc": "0",
              "mem_total_kb": "475432", "job_kinds": "active:0:334 hold:0:331",
              "guard_state": "mode=kernel stall_events=0 kills=0"}
        e = Expect(fake_run(ok))
        BY_NAME["stall-nearmiss"].check(e)
        self.assertEqual(e.failures, [])
        for bad, want in (({"job_kinds": "active:137:334 hold:0:331", "job_rc": "137"}, "did not finish"),
                          ({"kernel_kills": "job:412"}, "kills in a near miss"),
                          ({"job_kinds": "active:0:20 hold:0:331"}, "nothing was measured"),
                          ({"job_kinds": "active:0:334"}, "nothing was measured"),
                          ({"worst_gap_ms": "12000"}, "worst freeze 12000")):
            e = Expect(fake_run({**ok, **bad}))
            BY_NAME["stall-nearmiss"].check(e)
            self.assertTrue(any(want in f for f in e.failures), (bad, e.failures))


def saved_run(outdir, workload, guard, beats, facts, outcome="finished", reboot_at=None):
    """A stall run's directory as stall.boot leaves it: run.json and results.timed."""
    outdir.mkdir(parents=True)
    lines = ["   1.00 OOMTEST boot=1", "   1.10 OOMTEST kernel=6.1.0-57-amd64", "  10.00 OOMTEST stall_start_ms=1"]
    t = 10.0
    for n, gap in enumerate(beats):
        t += gap / 1000
        lines.append(f"{t:7.2f} OOMTEST hb {n} gap_ms={gap}")
    if reboot_at is None:
        lines.append(f"{t + 0.1:7.2f} OOMTEST stall_end_ms=2")
        facts = {"finished": "1", **facts}
        lines += [f"{t + 3.2:7.2f} OOMTEST {k}={v}" for k, v in facts.items()]
        lines.append(f"{t + 4:7.2f} OOMTEST done=1")
    else:
        lines += [f"{reboot_at:7.2f} OOMTEST boot=2"] + [f"{reboot_at + 1:7.2f} OOMTEST {k}={v}"
                                                          for k, v in facts.items()]
        lines.append(f"{reboot_at + 2:7.2f} OOMTEST done=1")
    (outdir / "results.timed").write_text("\n".join(lines) + "\n")
    (outdir / "run.json").write_text(json.dumps(dict(workload=workload, guard=guard, series="6.1", outcome=outcome,
                                                     detail="", wall_s=100.0, hang_s=180)))
    meta, run = stall.load_run(outdir)
    return stall.outcome(run, workload, guard, "6.1")


class Bench(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = pathlib.Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_measures_from_the_saved_beats(self):
        o = saved_run(self.dir / "a", "storm", "none", [100] * 98 + [5000, 100, 100],
                      {"worst_gap_ms": "5000", "kernel_kills": "hog:12,journald:3", "bystander_alive": "1"})
        self.assertEqual(o.worst_gap_ms, 5000)
        self.assertEqual(o.p99_gap_ms, 100)          # 1 of 101 beats is above the 99th percentile
        self.assertAlmostEqual(o.answer_s, 14.8, places=1)
        self.assertEqual([(k.comm, k.hog, k.own) for k in o.kills], [("hog", True, True), ("journald", False, False)])
        self.assertEqual(len(o.innocent), 1)

    def test_near_miss_job_killed_is_a_miss_not_an_innocent(self):
        o = saved_run(self.dir / "a", "nearmiss-hold", "earlyoom", [100] * 50,
                      {"worst_gap_ms": "100", "earlyoom_kills": "job:40", "job_rc": "143"})
        self.assertIs(o.job_survived, False)
        self.assertEqual(len(o.missed), 1)
        self.assertEqual(o.innocent, [])
        self.assertEqual(o.answer_s, 0.0)

    def test_reboot_counts_until_the_next_boot_answers(self):
        o = saved_run(self.dir / "a", "gracetime", "oom_ext", [100] * 20, {"report_log": "boot abc hung"},
                      reboot_at=80.0)
        self.assertTrue(o.rebooted and o.finished)
        self.assertEqual(o.answer_s, 70.0)
        self.assertGreater(o.worst_gap_ms, 60000)    # the last beat to the next boot

    def test_outputs(self):
        pressure = "some avg10=1.00 avg60=0.50 avg300=0.10 total=5000000|full total=0"
        runs = [saved_run(self.dir / f"r{i}", w, g, [100] * 30 + [gap], {"worst_gap_ms": str(gap),
                                                                        "psi_memory": pressure})
                for i, (w, g, gap) in enumerate([("storm", "none", 9000), ("storm", "oom_ext", 700),
                                                 ("storm", "earlyoom", 300)])]
        idle = saved_run(self.dir / "idle", "idle", "earlyoom", [],
                         {"idle_seconds": "60", "idle_wakeups": "600", "idle_cpu_ms": "120", "idle_rss_kb": "2000"})
        out = self.dir / "docs"
        rows = benchreport.write_all(out, runs + [idle], ["storm", "idle"], ["none", "earlyoom", "oom_ext"],
                                     {"kind": "PARTIAL RUN"})
        md = (out / "results.md").read_text()
        self.assertIn("| storm | 9.0 | **0.3** | 0.7 |", md)
        # A run whose workload never pressed on memory measured nothing: said so, never the best.
        calm = saved_run(self.dir / "calm", "storm", "nohang", [100] * 30, {"worst_gap_ms": "100"})
        calm_md = benchreport.markdown(benchreport.summarize(runs + [calm], ["storm"], ["none", "nohang", "oom_ext"]),
                                       {}, ["storm"], ["none", "nohang", "oom_ext"])
        self.assertIn("| storm | 9.0 | 0.1 (1 without memory pressure: not measured) | **0.7** |", calm_md)
        self.assertIn("| 6.1.0-57-amd64 | earlyoom | 1 | 10.00 | 120 | 2000 |", md)
        self.assertEqual(len((out / "results.csv").read_text().splitlines()), 5)
        self.assertEqual(len(json.loads((out / "results.json").read_text())["runs"]), 4)
        self.assertEqual([r["guard"] for r in rows if r["workload"] == "storm"], ["none", "earlyoom", "oom_ext"])
        if benchreport.plot_python() is None:
            self.skipTest("no python3 with matplotlib: the PNGs were not checked")
        for png in ("freeze.png", "timeline-storm.png"):
            self.assertEqual((out / png).read_bytes()[:4], b"\x89PNG", png)


if __name__ == "__main__":
    unittest.main()
