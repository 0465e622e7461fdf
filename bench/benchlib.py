"""What the host benchmarks share: the binary `make` builds, a fake root."""
import os, subprocess, tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(TOP, "target/oom-ext")


def build():
    """Build the binary the way a user does (`make`: Makefile STD) and return its path."""
    subprocess.run(["make", "-s", "all"], cwd=TOP, check=True)
    return BINARY


def fake_root(prefix, files, dirs=()):
    """A fresh temporary root holding FILES ({path: content}) and empty DIRS."""
    r = tempfile.mkdtemp(prefix=prefix)
    for d in dirs:
        os.makedirs(os.path.join(r, d), exist_ok=True)
    for p, c in files.items():
        os.makedirs(os.path.dirname(os.path.join(r, p)), exist_ok=True)
        with open(os.path.join(r, p), "w") as f:
            f.write(c)
    return r
