"""Assertions over what a guest reported; each failure is one readable line."""


class Expect:
    def __init__(self, run):
        self.run = run
        self.failures = []

    def fail(self, msg):
        self.failures.append(msg)

    def that(self, cond, msg):
        if not cond:
            self.fail(msg)
        return bool(cond)

    def fact(self, key, boot=-1):
        return self.run.fact(key, boot=boot)

    def equal(self, key, want, boot=-1):
        got = self.fact(key, boot)
        return self.that(got == str(want), f"{key}: expected {want!r}, got {got!r}")

    def number(self, key, boot=-1):
        value = self.fact(key, boot)
        try:
            return float(value)
        except (TypeError, ValueError):
            self.fail(f"{key}: expected a number, got {value!r}")
            return None

    def at_least(self, key, low, boot=-1):
        value = self.number(key, boot)
        return value is not None and self.that(value >= low, f"{key}: expected >= {low}, got {value:g}")

    def at_most(self, key, high, boot=-1):
        value = self.number(key, boot)
        return value is not None and self.that(value <= high, f"{key}: expected <= {high}, got {value:g}")

    def contains(self, key, needle, boot=-1):
        got = self.fact(key, boot) or ""
        return self.that(needle in got, f"{key}: expected to contain {needle!r}, got {got!r}")

    def finished(self, boots=1):
        """The guest ran the scenario to its end, the expected number of times."""
        run = self.run
        if run.outcome != "finished":
            self.fail(run.detail or run.outcome)
        if not run.boots:
            self.fail("the harness never started (no OOMTEST boot= line); see console.log")
            if run.warnings:
                self.fail(f"console: {run.warnings[0]}")
            return False
        if len(run.boots) != boots:
            self.fail(f"expected {boots} boot(s) reaching the harness, saw {len(run.boots)}")
        last = run.boots[-1].facts
        if "error" in last:
            self.fail(f"harness: {last['error']}")
        self.that("done" in last, "the harness did not finish the scenario (no OOMTEST done=1)")
        return not self.failures
