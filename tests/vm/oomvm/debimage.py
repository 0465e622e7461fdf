"""The package image: the base tree with oom_ext installed as Debian packages.

`packaging/build-deb.sh` builds oom-ext and oom-ext-dkms; `apt-get install
./…deb` installs them in a copy of the base tree (chroot), with an oom-ext
"previous build" (same code, an older version, a distinct binary) so that a
booted guest can upgrade to the real build. The same tree gets Arch's real
mkinitcpio v41 (../shared/vendor), and initrds from every generator:
initramfs-tools through the package's own postinst, dracut, mkinitcpio with
HOOKS=(base udev oom-ext …) and (base systemd sd-oom-ext …). After packing
the ext4 image, the tree is purged (`apt-get purge`) and checked: no file of
the packages left, nothing else changed, no enabled unit, initramfs images
without oom-ext. Each step's verdict goes to status.json like the project
image's.
"""

import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
import time

from . import cache, chroot, image, initrd

HERE, REPO = image.HERE, image.REPO
# Bump when the steps below change what ends up in the image.
RECIPE_VERSION = 1
# Where the debs and their facts live in the guest (scenario deb-upgrade).
GUEST_DEBS = "var/lib/oomtest-debs"
# flavour -> mkinitcpio.conf HOOKS
MKINITCPIO = {
    "mkinitcpio": "base udev oom-ext modconf block filesystems",
    "mkinitcpio-systemd": "base systemd sd-oom-ext modconf block filesystems",
}
FLAVOURS = ["deb-initramfs-tools", "deb-dracut", *MKINITCPIO]
# Paths whose listing changes for reasons other than the packages.
VOLATILE = ("var/log/", "var/cache/", "var/lib/apt/", "var/lib/dpkg/",
            "etc/ld.so.cache", "etc/mkinitcpio-", GUEST_DEBS, "boot/")


def say(msg):
    print(f"[deb-image] {msg}", flush=True)


def vendor_tarball():
    """mkinitcpio-41.tar.gz: ../shared/vendor beside the checkout (CI), or $OOM_EXT_VENDOR."""
    candidates = [pathlib.Path(os.environ["OOM_EXT_VENDOR"])] if os.environ.get("OOM_EXT_VENDOR") else []
    candidates += [REPO.parent / "shared/vendor", REPO.parent.parent / "shared/vendor",
                   pathlib.Path("/work/shared/vendor")]
    for d in candidates:
        if (d / "mkinitcpio-41.tar.gz").is_file():
            return d / "mkinitcpio-41.tar.gz"
    return None


def _key(base):
    repo_files = cache.project_files(REPO)
    inputs = [f for f in repo_files if not f.startswith("tests/vm/") and not f.endswith(".md")]
    recipe = cache.hash_files(HERE, ["oomvm/debimage.py", "image/install-mkinitcpio.sh",
                                     *[str(p.relative_to(HERE)) for p in (HERE / "image/etc").rglob("*")]])
    tarball = vendor_tarball()
    return cache.key_of(base.name, cache.hash_files(REPO, inputs), RECIPE_VERSION, recipe,
                        str(tarball and os.path.getsize(tarball)))


def deb_image():
    base, kernels = image.base_tree()
    key = _key(base)
    root = cache.cache_root() / "suite-deb-images"
    final = root / key
    with cache.locked(f"suite-deb-image-{key}"):
        if (final / "status.json").exists():
            os.utime(final)
            return image.Image(final / "image.raw", kernels, json.loads((final / "status.json").read_text()))
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".tmp-{key}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        say(f"building package image {key}; log {tmp}/build.log")
        started = time.monotonic()
        with open(tmp / "build.log", "w") as log:
            tree = tmp / "tree"
            try:
                status = _build(tmp, tree, kernels, log)
            finally:
                shutil.rmtree(tree, ignore_errors=True)
        (tmp / "status.json").write_text(json.dumps(status, indent=1) + "\n")
        cache.publish(tmp, final)
        cache.remove_stale(root, key, count=2)
        for step, value in status.items():
            say(f"  {step}: {value}")
        say(f"package image ready in {time.monotonic() - started:.0f} s")
        return image.Image(final / "image.raw", kernels, status)


def _sha(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _previous_build(deb, out, step):
    """The deb as an older version whose binary differs (a trailing marker past the ELF image)."""
    work = pathlib.Path(tempfile.mkdtemp(dir=out))
    if step.run(["dpkg-deb", "-R", deb, work]) != 0:
        raise RuntimeError(f"dpkg-deb -R {deb} failed")
    control = work / "DEBIAN/control"
    text = control.read_text()
    version = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Version:"))
    control.write_text(text.replace(f"Version: {version}\n", f"Version: {version}~prev\n"))
    with open(work / "usr/sbin/oom-ext", "ab") as f:
        f.write(b"\n# oomtest: previous build\n")
    sums = [f"{hashlib.md5((work / rel).read_bytes()).hexdigest()}  {rel}" for rel in
            sorted(str(p.relative_to(work)) for p in work.rglob("*")
                   if p.is_file() and not p.is_symlink() and "DEBIAN" not in p.parts)]
    (work / "DEBIAN/md5sums").write_text("\n".join(sums) + "\n")
    prev = out / f"oom-ext_{version}~prev_amd64.deb"
    if step.run(["dpkg-deb", "--root-owner-group", "-b", work, prev]) != 0:
        raise RuntimeError("dpkg-deb -b of the previous build failed")
    shutil.rmtree(work)
    return prev


def _listing(tree):
    """Every path of the tree (no mounts), relative, minus VOLATILE."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(tree):
        rel = os.path.relpath(dirpath, tree)
        if rel in ("proc", "sys", "dev", "run", "tmp"):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = name if rel == "." else f"{rel}/{name}"
            if not any(path == v.rstrip("/") or path.startswith(v) for v in VOLATILE):
                out.add(path)
    return out


def _in_initrd(tree, log, initrd_name, path):
    """sha256 of `path` inside the tree's initrd (None when absent)."""
    body = initrd.initrd_file(initrd.initrd_entries((tree / initrd_name.lstrip("/")).read_bytes()), path) \
        if (tree / initrd_name.lstrip("/")).is_file() else None
    got = body and hashlib.sha256(body).hexdigest()
    log.write(f"\n# {initrd_name}: {path} sha256 {got}\n")
    return got


def _build(tmp, tree, kernels, log):
    step = image.Step(log)
    status = {f: "not run" for f in ["deb-build", "deb-install", *FLAVOURS, "deb-purge"]}
    debs = tmp / "debs"
    say("packaging/build-deb.sh")
    if step.run([REPO / "packaging/build-deb.sh", debs]) != 0:
        status["deb-build"] = "packaging/build-deb.sh failed (see build.log)"
        return status
    new = sorted(debs.glob("oom-ext_*_amd64.deb"))[-1]
    dkms = sorted(debs.glob("oom-ext-dkms_*_all.deb"))[-1]
    prev = _previous_build(new, debs, step)
    status["deb-build"] = "ok"

    say("copying base tree")
    subprocess.run(["cp", "-a", "--reflink=auto", str(image.base_tree()[0] / "tree"), str(tree)], check=True)
    image._install_vm_config(tree)
    gdebs = tree / GUEST_DEBS
    gdebs.mkdir(parents=True)
    for d in (new, dkms, prev):
        shutil.copy(d, gdebs / d.name)
    new_bin = subprocess.run(["dpkg-deb", "--fsys-tarfile", new], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(new_bin)) as t:
        new_sha = hashlib.sha256(t.extractfile("./usr/sbin/oom-ext").read()).hexdigest()
    (gdebs / "facts").write_text(f"new_deb={new.name}\nnew_sha={new_sha}\n")

    with chroot.mounted(tree):
        # mkinitcpio's tools first (gawk: mkinitcpio's awk scripts need NUL records), so
        # that the listing before the packages has them.
        tarball = vendor_tarball()
        mk_problem = _install_mkinitcpio(tree, tarball, log) if tarball else \
            "skipped: mkinitcpio-41.tar.gz not found in ../shared/vendor or $OOM_EXT_VENDOR"
        before = _listing(tree)

        say(f"apt-get install ./{dkms.name} ./{prev.name}")
        rc = chroot.run(tree, ["sh", "-c", f"cd /{GUEST_DEBS} && apt-get install -y ./{dkms.name} ./{prev.name}"],
                        log, env={"DEBIAN_FRONTEND": "noninteractive"})
        owned = subprocess.run(["chroot", str(tree), "dpkg", "-L", "oom-ext", "oom-ext-dkms"],
                               capture_output=True, text=True).stdout.split()
        problems = [] if rc == 0 else [f"apt-get install failed (rc {rc})"]
        for unit in ("oom-ext-guard.service", "oom-ext-report.service"):
            if chroot.run(tree, ["systemctl", "is-enabled", unit], log) != 0:
                problems.append(f"{unit} not enabled")
        for kver in kernels.values():
            if not list((tree / f"lib/modules/{kver}").rglob("oom_ext.ko*")):
                problems.append(f"no oom_ext.ko for {kver} (DKMS)")
            got = _in_initrd(tree, log, f"/boot/initrd.img-{kver}", "usr/sbin/oom-ext")
            if got != _sha(tree / "usr/sbin/oom-ext"):
                problems.append(f"initrd.img-{kver}: oom-ext {'missing' if got is None else 'is not the installed one'}")
        status["deb-install"] = "; ".join(problems) or "ok"
        status["deb-initramfs-tools"] = status["deb-install"]

        # dracut with only the package's dracut.conf.d snippet asking for the module.
        dracut = []
        for kver in kernels.values():
            say(f"dracut {kver} (package's dracut.conf.d)")
            out = f"/boot/initrd.img-{kver}-deb-dracut"
            if chroot.run(tree, ["dracut", "-f", "-q", "--no-hostonly", "--kver", kver, out], log) != 0:
                dracut.append(f"dracut failed for {kver}")
            elif _in_initrd(tree, log, out, "usr/sbin/oom-ext") is None:
                dracut.append(f"{out}: no oom-ext (dracut.conf.d snippet not effective)")
        status["deb-dracut"] = "; ".join(dracut) or "ok"

        for flavour, hooks in MKINITCPIO.items():
            status[flavour] = mk_problem or _mkinitcpio(tree, kernels, flavour, hooks, log)

    _pack(tree, tmp, kernels, step)

    with chroot.mounted(tree):
        status["deb-purge"] = _purge(tree, kernels, before, owned, log)
    return status


def _install_mkinitcpio(tree, tarball, log):
    """Install mkinitcpio v41 into the tree; returns None or what went wrong."""
    say("mkinitcpio v41: gawk (apt), meson (PyPI), meson install in the chroot")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if chroot.run(tree, ["sh", "-c", "apt-get update -q && apt-get install -y -q --no-install-recommends gawk; "
                         "rc=$?; rm -rf /var/lib/apt/lists/*; exit $rc"], log, env=env) != 0:
        return "apt-get install gawk failed (see build.log)"
    pylib = cache.cache_root() / "pip-meson-1"
    if not (pylib / "mesonbuild").is_dir():
        tmp = pylib.with_name(pylib.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        if image.Step(log).run(["python3", "-m", "pip", "install", "--quiet", "--target", tmp,
                                "meson>=1.4", "ninja", "pkgconf"]) != 0:
            return "pip install meson ninja pkgconf failed (see build.log)"
        tmp.rename(pylib)
    work = tree / "var/tmp/mkinitcpio-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(work), "-xzf", str(tarball)], check=True)
    shutil.copytree(pylib, work / "pylib", symlinks=True)
    shutil.copy(HERE / "image/install-mkinitcpio.sh", work / "install.sh")
    src = next(p for p in work.iterdir() if p.name.startswith("mkinitcpio"))
    rc = chroot.run(tree, ["bash", "/var/tmp/mkinitcpio-build/install.sh",
                           f"/var/tmp/mkinitcpio-build/{src.name}", "/var/tmp/mkinitcpio-build/pylib"], log)
    shutil.rmtree(work, ignore_errors=True)
    return None if rc == 0 else f"installing mkinitcpio failed (rc {rc}, see build.log)"


def _mkinitcpio(tree, kernels, flavour, hooks, log):
    conf = tree / f"etc/mkinitcpio-{flavour}.conf"
    # The drivers the QEMU guest needs (as tests/vm/image/etc does for the others).
    conf.write_text("MODULES=(virtio_pci virtio_blk virtio_console ext4 crc32c_generic)\n"
                    f"HOOKS=({hooks})\nCOMPRESSION=zstd\n")
    problems = []
    for kver in kernels.values():
        out = f"/boot/initrd.img-{kver}-{flavour}"
        say(f"mkinitcpio HOOKS=({hooks}) -k {kver}")
        rc = chroot.run(tree, ["mkinitcpio", "-c", f"/etc/mkinitcpio-{flavour}.conf", "-k", kver, "-g", out], log)
        if rc != 0:
            problems.append(f"mkinitcpio failed for {kver} (rc {rc}, see build.log)")
        elif _in_initrd(tree, log, out, "usr/sbin/oom-ext") != _sha(tree / "usr/sbin/oom-ext"):
            problems.append(f"{out}: no oom-ext, or not the installed one")
    return "; ".join(problems) or "ok"


def _pack(tree, out, kernels, step):
    boot = out / "boot"
    boot.mkdir()
    for kver in kernels.values():
        shutil.copy(tree / f"boot/vmlinuz-{kver}", boot / f"vmlinuz-{kver}")
        for flavour in FLAVOURS:
            name = f"initrd.img-{kver}" + ("" if flavour == "deb-initramfs-tools" else f"-{flavour}")
            if (tree / "boot" / name).exists():
                shutil.copy(tree / "boot" / name, boot / f"initrd-{kver}-{flavour}")
    used_kb = int(subprocess.run(["du", "-sk", str(tree)], check=True, capture_output=True,
                                 text=True).stdout.split()[0])
    if step.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "oomroot", "-d", tree,
                 out / "image.raw", f"{used_kb // 1024 + 1024}M"]) != 0:
        raise RuntimeError(f"mke2fs failed, see {out}/build.log")


def _purge(tree, kernels, before, owned, log):
    say("apt-get purge oom-ext oom-ext-dkms")
    problems = []
    rc = chroot.run(tree, ["apt-get", "purge", "-y", "oom-ext", "oom-ext-dkms"], log,
                    env={"DEBIAN_FRONTEND": "noninteractive"})
    if rc != 0:
        problems.append(f"apt-get purge failed (rc {rc})")
    left = [p for p in owned if p.startswith("/") and (tree / p.lstrip("/")).exists()
            and not (tree / p.lstrip("/")).is_dir()]
    left += [p for p in owned if (tree / p.lstrip("/")).is_dir() and p.startswith(("/usr/src/oom_ext", "/etc/oom-ext",
                                                                                    "/usr/lib/oom-ext"))]
    if left:
        problems.append(f"left by purge: {' '.join(left[:8])}")
    after = _listing(tree)
    added, removed = sorted(after - before), sorted(before - after)
    if added:
        problems.append(f"new after purge: {' '.join(added[:8])}")
    if removed:
        problems.append(f"gone after purge: {' '.join(removed[:8])}")
    wants = [str(p.relative_to(tree)) for p in (tree / "etc/systemd/system").rglob("oom-ext*")]
    if wants:
        problems.append(f"units still enabled: {' '.join(wants)}")
    if list((tree / "lib/modules").rglob("oom_ext.ko*")):
        problems.append("oom_ext.ko left in /lib/modules")
    for kver in kernels.values():
        listing = subprocess.run(["chroot", str(tree), "lsinitramfs", f"/boot/initrd.img-{kver}"],
                                 capture_output=True, text=True).stdout
        if "oom-ext" in listing or "oom_ext" in listing:
            problems.append(f"initrd.img-{kver} still has oom-ext")
    return "; ".join(problems) or "ok"
