"""Make SIGINT and SIGTERM unwind the program (finally blocks run).

Background jobs start with SIGINT ignored, and Python's default SIGTERM
kills without unwinding; either would leave chroot mounts and half-built
cache entries behind.
"""

import signal


def _raise(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def unwind_on_signals():
    signal.signal(signal.SIGINT, _raise)
    signal.signal(signal.SIGTERM, _raise)
