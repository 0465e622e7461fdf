"""Guest images: a cached Debian base tree, then the project installed into a copy.

Stage 1, base tree (key: apt candidate versions + this recipe): mmdebstrap of
bookworm with systemd, both kernel series with their headers, dkms, dracut-core
and initramfs-tools side by side (they do not conflict), stress-ng, and the
peers earlyoom, nohang and systemd-oomd (masked until a benchmark run unmasks one).

Stage 2, project image (key: base key + project files + guest harness):
copy the tree, install the guest harness, then install oom_ext the way a user
would — `make install DESTDIR=… PREFIX=/usr`, and inside a chroot
`dkms install`, `update-initramfs -u -k all` and `dracut --add oom-ext` — and
pack the tree into an ext4 image with `mke2fs -d` (no mounting). Every step
that fails is recorded in status.json; scenarios that need the project then
fail with that message, while the plain `boot` scenario still runs.
"""

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import time

from . import cache, chroot, versions

HERE = pathlib.Path(__file__).resolve().parent.parent      # tests/vm
REPO = HERE.parent.parent                                   # repository root

BASE_PACKAGES = [
    "systemd", "systemd-sysv", "udev", "dbus", "kmod", "procps", "util-linux",
    "initramfs-tools", "busybox", "zstd", "dracut-core", "e2fsprogs",
    "stress-ng", "earlyoom", "nohang", "systemd-oomd", "libarchive-tools",
    "linux-image-amd64", "linux-image-6.12-amd64",
    "linux-headers-amd64", "linux-headers-6.12-amd64",
    "dkms", "gcc", "make", "libc6-dev", "pahole",
]
MIRRORS = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
SERIES = list(versions.KERNEL_METAPACKAGES)
# Bump when the mmdebstrap call below changes in a way that changes the tree.
BASE_RECIPE_VERSION = 1
# Bump when the project-image steps below change what ends up in the image.
IMAGE_RECIPE_VERSION = 2

# The initrd flavours built for every kernel: name -> extra dracut arguments,
# or None for initramfs-tools.
INITRDS = {
    "dracut": ["--add", "oom-ext"],
    "dracut-shell": ["--add", "oom-ext", "--omit", "systemd"],
    "initramfs-tools": None,
}


def say(msg):
    print(f"[image] {msg}", flush=True)


class Step:
    """A timed build step whose output goes to the build log."""

    def __init__(self, log):
        self.log = log

    def run(self, argv, **kw):
        self.log.write(f"\n$ {' '.join(map(str, argv))}\n")
        self.log.flush()
        return subprocess.run(list(map(str, argv)), stdout=self.log, stderr=subprocess.STDOUT, **kw).returncode


# ---------------------------------------------------------------- base tree

def base_key():
    kernels = {s: versions.kernel_release(s) for s in SERIES}
    pkgs = BASE_PACKAGES + [f"linux-image-{k}" for k in kernels.values()] + \
        [f"linux-headers-{k}" for k in kernels.values()]
    found = versions.candidate_versions(pkgs)
    recipe = cache.hash_files(HERE, ["image/customize-base.sh"])
    return cache.key_of(sorted(found.items()), MIRRORS, BASE_RECIPE_VERSION, recipe), kernels


def base_tree():
    """Path of the cached base tree, building it if needed."""
    key, kernels = base_key()
    root = cache.cache_root() / "suite-base"
    final = root / key
    with cache.locked("suite-base"):
        if (final / "done").exists():
            os.utime(final)
            return final, kernels
        root.mkdir(exist_ok=True)
        tmp = root / f".tmp-{key}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        say(f"building base tree {key} with mmdebstrap (cold: about 5 min); log {tmp}/build.log")
        started = time.monotonic()
        with open(tmp / "build.log", "w") as log:
            argv = [
                "mmdebstrap", "--variant=apt", "--mode=root", "--format=directory",
                "--include=" + ",".join(BASE_PACKAGES),
                "--aptopt=Acquire::Languages \"none\"",
                "--dpkgopt=force-unsafe-io",
                *[f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")],
                "--customize-hook=" + str(HERE / "image/customize-base.sh") + ' "$1"',
                "bookworm", str(tmp / "tree"), *MIRRORS,
            ]
            if Step(log).run(argv) != 0:
                raise RuntimeError(f"mmdebstrap failed, see {tmp}/build.log")
        (tmp / "kernels.json").write_text(json.dumps(kernels))
        (tmp / "done").write_text(f"{time.monotonic() - started:.0f}\n")
        cache.publish(tmp, final)
        cache.remove_stale(root, key, count=1)
        say(f"base tree ready in {time.monotonic() - started:.0f} s")
        return final, kernels


# ---------------------------------------------------------------- project image

@dataclasses.dataclass
class Image:
    path: pathlib.Path             # raw ext4 image (read-only; boots use overlays)
    kernels: dict                  # series -> kernel release
    status: dict                   # install step -> "ok" or what went wrong

    def kernel(self, series):
        return self.path.parent / "boot" / f"vmlinuz-{self.kernels[series]}"

    def initrd(self, series, flavour):
        return self.path.parent / "boot" / f"initrd-{self.kernels[series]}-{flavour}"

    def problem(self, needs):
        """Why this image cannot run a scenario needing `needs` steps, or None."""
        bad = [f"{step}: {self.status.get(step, 'not run')}" for step in needs
               if self.status.get(step) != "ok"]
        return "; ".join(bad) or None


def _project_key(base):
    repo_files = cache.project_files(REPO)
    # The suite itself is not in the image (the harness comes on its own disk),
    # nor are docs/ (the benchmark writes its plots there).
    inputs = [f for f in repo_files if not f.startswith(("tests/vm/", "docs/")) and not f.endswith(".md")]
    recipe = cache.hash_files(HERE, [str(p.relative_to(HERE)) for p in (HERE / "image/etc").rglob("*")])
    return cache.key_of(base.name, cache.hash_files(REPO, inputs), IMAGE_RECIPE_VERSION, recipe)


def project_image():
    base, kernels = base_tree()
    key = _project_key(base)
    root = cache.cache_root() / "suite-images"
    final = root / key
    with cache.locked(f"suite-image-{key}"):
        if (final / "status.json").exists():
            os.utime(final)
            return Image(final / "image.raw", kernels, json.loads((final / "status.json").read_text()))
        root.mkdir(exist_ok=True)
        tmp = root / f".tmp-{key}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        say(f"building project image {key}; log {tmp}/build.log")
        started = time.monotonic()
        with open(tmp / "build.log", "w") as log:
            tree = tmp / "tree"
            say("copying base tree")
            subprocess.run(["cp", "-a", "--reflink=auto", str(base / "tree"), str(tree)], check=True)
            try:
                status = _install_everything(tree, kernels, Step(log), log)
                say("packing ext4 image")
                _pack(tree, tmp, kernels, Step(log))
            finally:
                shutil.rmtree(tree, ignore_errors=True)
        (tmp / "status.json").write_text(json.dumps(status, indent=1) + "\n")
        cache.publish(tmp, final)
        cache.remove_stale(root, key, count=12)
        for step, value in status.items():
            say(f"  {step}: {value}")
        say(f"project image ready in {time.monotonic() - started:.0f} s")
        return Image(final / "image.raw", kernels, status)


def _install_vm_config(tree):
    """initrd generator settings for a QEMU guest (see the files for why)."""
    shutil.copytree(HERE / "image/etc", tree / "etc", dirs_exist_ok=True, symlinks=True)


def _install_everything(tree, kernels, step, log):
    """Install harness and project; returns {step: "ok" | reason}."""
    status = {}
    _install_vm_config(tree)

    say("make install DESTDIR=<guest> PREFIX=/usr")
    if not (REPO / "Makefile").exists():
        status["make-install"] = "no top-level Makefile in the repository yet"
    # `make install` builds only a missing binary (it must not run cargo as
    # root for a user): build first, or a stale binary goes into the image.
    elif step.run(["make", "-C", REPO, "all"]) != 0:
        status["make-install"] = "make all (cargo build) failed (see build.log)"
    elif step.run(["make", "-C", REPO, "install", f"DESTDIR={tree}", "PREFIX=/usr"]) != 0:
        status["make-install"] = "make install failed (see build.log)"
    else:
        status["make-install"] = "ok"

    with chroot.mounted(tree):
        # DKMS, as a user runs it after installing the source.
        sources = sorted((tree / "usr/src").glob("oom_ext-*"))
        if not sources:
            status["dkms"] = "no /usr/src/oom_ext-* in the guest (make install did not provide it)"
        else:
            version = sources[-1].name.split("-", 1)[1]
            results = []
            for series, kver in kernels.items():
                say(f"dkms install oom_ext/{version} -k {kver}")
                rc = chroot.run(tree, ["dkms", "install", f"oom_ext/{version}", "-k", kver], log)
                ko = list((tree / f"lib/modules/{kver}").rglob("oom_ext.ko*"))
                if rc != 0 or not ko:
                    results.append(f"dkms install failed for {kver} (rc {rc}, see build.log)")
            status["dkms"] = "; ".join(results) or "ok"

        # Units as the README tells a user to enable them (present ones only).
        units = [u.name for u in (tree / "usr/lib/systemd/system").glob("oom-ext-*.service")
                 if "initrd" not in u.name]
        if units and chroot.run(tree, ["systemctl", "enable", *units], log) == 0:
            status["units"] = "ok"
        else:
            status["units"] = f"could not enable {units or 'oom-ext units (none installed)'}"

        status.update(_build_initrds(tree, kernels, log))
    return status


def _build_initrds(tree, kernels, log):
    """update-initramfs for all kernels and the dracut flavours, two at a time."""
    has_module = (tree / "usr/lib/dracut/modules.d/90oom-ext").is_dir()
    jobs = {("initramfs-tools", "all"): ["update-initramfs", "-u", "-k", "all"]}
    for flavour, extra in INITRDS.items():
        if extra is None:
            continue
        args = extra if has_module else [a for a in extra if a not in ("--add", "oom-ext")]
        for kver in kernels.values():
            # --no-hostonly: we are in a chroot on the build host, not on the guest.
            jobs[(flavour, kver)] = ["dracut", "-f", "-q", "--no-hostonly", *args, "--kver", kver,
                                     f"/boot/initrd.img-{kver}-{flavour}"]

    def build(item):
        (flavour, kver), argv = item
        say(" ".join(argv))
        job_log = log.name + f".{flavour}-{kver}"
        with open(job_log, "w") as f:
            rc = chroot.run(tree, argv, f)
        return flavour, kver, rc, job_log

    problems = {flavour: [] for flavour, _ in jobs}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for flavour, kver, rc, job_log in pool.map(build, jobs.items()):
            log.write(pathlib.Path(job_log).read_text())
            os.unlink(job_log)
            if rc != 0:
                problems[flavour].append(f"{jobs[(flavour, kver)][0]} failed for {kver} (rc {rc})")
    hook = any((tree / d / "hooks/oom-ext").exists()
               for d in ("usr/share/initramfs-tools", "etc/initramfs-tools"))
    if not hook:
        problems["initramfs-tools"].append("built without oom-ext: no initramfs-tools hook installed")
    if not has_module:
        for flavour in ("dracut", "dracut-shell"):
            problems[flavour].append("built without oom-ext: no dracut module 90oom-ext installed")
    return {flavour: "; ".join(p) or "ok" for flavour, p in problems.items()}


def harness_disk(out):
    """A small read-only ext4 disk with tests/vm/guest/, mounted at /opt/oomtest by oomtest.service."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-L", "oomtest",
                    "-d", str(HERE / "guest"), str(out), "8M"], check=True, capture_output=True)
    return out


def _pack(tree, out, kernels, step):
    boot = out / "boot"
    boot.mkdir()
    for kver in kernels.values():
        shutil.copy(tree / f"boot/vmlinuz-{kver}", boot / f"vmlinuz-{kver}")
        for flavour in INITRDS:
            name = f"initrd.img-{kver}" + ("" if INITRDS[flavour] is None else f"-{flavour}")
            src = tree / "boot" / name
            if src.exists():
                shutil.copy(src, boot / f"initrd-{kver}-{flavour}")
    used_kb = int(subprocess.run(["du", "-sk", str(tree)], check=True, capture_output=True,
                                 text=True).stdout.split()[0])
    size_mb = used_kb // 1024 + 1024          # 1 GiB free for logs and test files
    if step.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "oomroot", "-d", tree,
                 out / "image.raw", f"{size_mb}M"]) != 0:
        raise RuntimeError(f"mke2fs failed, see {out}/build.log")
