"""UEFI firmware for a guest: OVMF (Debian's `ovmf` package) as two pflash drives.

The code is shared read-only; the variable store is a fresh copy per run,
written by the guest (EFI variables survive the guest's reboot, not the
run). The kernel still comes by `-kernel`: OVMF starts it through its EFI
stub, so the guest has EFI runtime services and efivarfs.
"""

import pathlib
import shutil

# Debian 12 / Ubuntu: the 4 MiB build first, the older 2 MiB one after.
PAIRS = (("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"), ("OVMF_CODE.fd", "OVMF_VARS.fd"))
DIR = pathlib.Path("/usr/share/OVMF")


def firmware(directory=DIR):
    """(code, vars template) of the first pair present, or None."""
    for code, variables in PAIRS:
        if (directory / code).is_file() and (directory / variables).is_file():
            return directory / code, directory / variables
    return None


def qemu_args(outdir, directory=DIR):
    """QEMU arguments booting OVMF with a fresh variable store in `outdir`."""
    found = firmware(directory)
    if found is None:
        raise RuntimeError(f"no OVMF firmware in {directory} (install the host package `ovmf`: tools/setup)")
    code, template = found
    outdir.mkdir(parents=True, exist_ok=True)
    store = outdir / "efivars.fd"
    shutil.copyfile(template, store)
    return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={store}"]
