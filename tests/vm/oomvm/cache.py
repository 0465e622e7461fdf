"""Cache layout, content keys and build locks.

Everything built is stored under one directory, named by a key that hashes all
of its inputs; a finished entry is never modified, only replaced by a new key.
Builds happen in a temporary sibling and are renamed into place when complete,
under a lock, so concurrent runs from several work trees share the cache safely.
"""

import contextlib
import fcntl
import hashlib
import os
import pathlib
import shutil
import subprocess


def cache_root():
    root = os.environ.get("OOM_EXT_VM_CACHE") or os.path.expanduser("~/.cache/oom-ext-vm")
    path = pathlib.Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def key_of(*parts):
    """A short stable key from strings/bytes."""
    h = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:16]


def hash_files(base, paths):
    """Hash file names and contents (symlinks by target), in sorted order."""
    h = hashlib.sha256()
    for rel in sorted(paths):
        path = pathlib.Path(base, rel)
        h.update(rel.encode() + b"\0")
        if path.is_symlink():
            h.update(b"L" + os.readlink(path).encode())
        elif path.is_file():
            h.update(b"F" + (b"x" if os.access(path, os.X_OK) else b"-"))
            h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def project_files(repo):
    """Files of the project as a user's checkout has them: tracked plus new, not ignored."""
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout
    return [p for p in out.decode().split("\0") if p and pathlib.Path(repo, p).exists()]


@contextlib.contextmanager
def locked(name):
    """Hold an exclusive lock named `name` in the cache (blocks until free)."""
    lock_dir = cache_root() / "locks"
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / name, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def publish(tmp, final):
    """Atomically move a finished build into place (replacing a stale one)."""
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)


def remove_stale(directory, keep, count):
    """Keep the `count` most recently used entries of a kind (always `keep`).

    Other work trees may be using older keys right now, so a few are kept.
    """
    if not directory.exists():
        return
    entries = [e for e in directory.iterdir() if not e.name.startswith(".") and e.name != keep]
    entries.sort(key=lambda e: e.stat().st_mtime, reverse=True)
    for entry in entries[max(count - 1, 0):]:
        shutil.rmtree(entry, ignore_errors=True)
