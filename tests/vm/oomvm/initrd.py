"""Read an initramfs image: concatenated newc cpio archives, the later ones compressed.

Host-side, so one reader serves initramfs-tools, dracut and mkinitcpio images
alike (unmkinitramfs does not take mkinitcpio's early archive).
"""

import posixpath
import subprocess

DECOMPRESS = {b"\x28\xb5\x2f\xfd": ["zstd", "-dcq"], b"\x1f\x8b": ["gzip", "-dc"], b"\xfd7zXZ": ["xz", "-dc"]}


def initrd_entries(data):
    """{path: (mode, bytes)} of an initramfs: newc archives, concatenated, later ones compressed."""
    entries, pos = {}, 0
    while pos < len(data):
        if data[pos:pos + 1] == b"\0":
            pos += 1
            continue
        if data[pos:pos + 6] == b"070701":
            while True:
                h = data[pos:pos + 110]
                fields = [int(h[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
                mode, size, namesize = fields[1], fields[6], fields[11]
                name = data[pos + 110:pos + 110 + namesize - 1].decode(errors="replace")
                start = pos + 110 + namesize
                start += -start % 4
                body = data[start:start + size]
                pos = start + size
                pos += -pos % 4
                if name == "TRAILER!!!":
                    break
                entries[name.lstrip("./") if name not in (".", "./") else "."] = (mode, body)
            continue
        for magic, argv in DECOMPRESS.items():
            if data.startswith(magic, pos):
                out = subprocess.run(argv, input=data[pos:], capture_output=True).stdout
                entries.update(initrd_entries(out))
                return entries
        break
    return entries


def initrd_file(entries, path, depth=0):
    """Content of `path` in the entries, following symlinks in any component; None when absent."""
    parts, cur = path.strip("/").split("/"), ""
    for i, part in enumerate(parts):
        cur = posixpath.join(cur, part) if cur else part
        mode, body = entries.get(cur, (None, None))
        if mode is None:
            if i == len(parts) - 1:
                return None
            continue                # archives need not list every directory
        if (mode & 0o170000) == 0o120000 and depth < 16:
            target = body.decode()
            base = "" if target.startswith("/") else posixpath.dirname(cur)
            rest = "/".join(parts[i + 1:])
            return initrd_file(entries, posixpath.normpath(posixpath.join(base, target.lstrip("/"), rest)), depth + 1)
    mode, body = entries[cur]
    return body if (mode & 0o170000) == 0o100000 else None
