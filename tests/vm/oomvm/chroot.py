"""Run commands inside a guest tree with /proc, /sys and /dev mounted.

The mounts are always undone, also when a command fails or the run is
interrupted: a forgotten bind mount of /dev inside a cache directory would make
the next `rm -rf` of that directory dangerous.
"""

import contextlib
import subprocess
import time

MOUNTS = [
    # (target inside the tree, mount arguments)
    ("proc", ["-t", "proc", "proc"]),
    ("sys", ["-t", "sysfs", "sysfs"]),
    ("dev", ["--bind", "/dev"]),
    ("dev/pts", ["--bind", "/dev/pts"]),
    ("run", ["-t", "tmpfs", "tmpfs"]),
    ("tmp", ["-t", "tmpfs", "tmpfs"]),
]


def _umount(path):
    for _ in range(5):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        if subprocess.run(["mountpoint", "-q", str(path)]).returncode != 0:
            return
        time.sleep(0.5)
    subprocess.run(["umount", "-l", str(path)], check=True)


@contextlib.contextmanager
def mounted(tree):
    done = []
    try:
        for rel, args in MOUNTS:
            target = tree / rel
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", *args, str(target)], check=True)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            _umount(target)


def run(tree, argv, log, env=None):
    """Run argv inside the (mounted) tree, output appended to log; returns the exit code."""
    log.write(f"\n$ chroot {tree} {' '.join(argv)}\n")
    log.flush()
    base_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    base_env.update(env or {})
    return subprocess.run(["chroot", str(tree), *argv], stdout=log, stderr=subprocess.STDOUT,
                          env=base_env).returncode
