"""Which Debian kernels and packages the guest gets, resolved by apt at run time.

Nothing is hard-coded: the metapackages name the current kernel ABI, and
`apt-cache policy` gives the candidate version of every package that goes into
the base tree, so a new Debian point release gives a new cache key.
"""

import re
import subprocess

# Kernel series -> the metapackage that depends on its current image package.
KERNEL_METAPACKAGES = {
    "6.1": ("linux-image-amd64", "linux-headers-amd64"),
    "6.12": ("linux-image-6.12-amd64", "linux-headers-6.12-amd64"),
}


def _run(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def parse_image_dependency(depends_output):
    """`apt-cache depends linux-image-amd64` -> '6.1.0-56-amd64'."""
    for line in depends_output.splitlines():
        m = re.match(r"\s*Depends:\s*linux-image-(\S+-amd64)\s*$", line)
        if m:
            return m.group(1)
    return None


def parse_candidates(policy_output):
    """`apt-cache policy A B …` -> {'A': '1.2-3', …}; packages without a candidate are left out."""
    versions, current = {}, None
    for line in policy_output.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
        elif current and line.strip().startswith("Candidate:"):
            value = line.split(":", 1)[1].strip()
            if value != "(none)":
                versions[current] = value
    return versions


def kernel_release(series):
    """The kernel release (uname -r) that Debian currently ships for a series."""
    meta = KERNEL_METAPACKAGES[series][0]
    kver = parse_image_dependency(_run("apt-cache", "depends", meta))
    if kver is None:
        raise RuntimeError(f"apt-cache depends {meta}: no linux-image dependency (did apt-get update run?)")
    return kver


def candidate_versions(packages):
    found = parse_candidates(_run("apt-cache", "policy", *packages))
    missing = [p for p in packages if p not in found]
    if missing:
        raise RuntimeError(f"apt-cache policy: no candidate for {' '.join(missing)} (did apt-get update run?)")
    return found
