"""Unit tests of the suite's own pure logic: python3 -m unittest tests/vm/test_oomvm.py"""

import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from oomvm import qemu, versions                     # noqa: E402
from oomvm.expect import Expect                      # noqa: E402
from oomvm.scenarios import BY_NAME                  # noqa: E402


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

    def test_unfinished_guest_fails(self):
        e = Expect(fake_run({}, outcome="hung", boots=0))
        BY_NAME["params"].check(e)
        self.assertTrue(e.failures)

    def test_params_check_names_the_wrong_value(self):
        e = Expect(fake_run({"done": "1", "sysctl.bufsize": "32"}))
        BY_NAME["params"].check(e)
        self.assertTrue(any("sysctl.bufsize: expected 48" in f for f in e.failures))

    def test_storm_control_passes_only_when_storm_check_fails(self):
        bare = fake_run({"done": "1", "oom_kills": "3", "module_loaded": "0"})
        e = Expect(bare)
        BY_NAME["storm-control"].check(e)
        self.assertEqual(e.failures, [])


if __name__ == "__main__":
    unittest.main()
