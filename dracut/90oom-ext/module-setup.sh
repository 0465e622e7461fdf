#!/bin/bash
# dracut module for oom_ext: the oom-ext binary and the oom_ext kernel module,
# started as early as possible in the initrd (systemd or shell initrd).
# Sourced by dracut: the functions below are its interface.
# dracut provides dracutsysrootdir, kernel, srcmods, moddir, initdir,
# systemdsystemunitdir; $srcmods already includes $dracutsysrootdir.
# shellcheck disable=SC2154

# Where `make install` put the binary (substituted at install time); the
# other candidates cover an uninstalled tree and other prefixes.
oom_ext_find_binary() {
    local _candidate
    for _candidate in "@SBINDIR@/oom-ext" /usr/sbin/oom-ext /usr/local/sbin/oom-ext \
        /usr/bin/oom-ext "$(command -v oom-ext 2> /dev/null)"; do
        if [[ $_candidate == /* && -x $dracutsysrootdir$_candidate ]]; then
            printf '%s\n' "$_candidate"
            return 0
        fi
    done
    return 1
}

# called by dracut
check() {
    if ! oom_ext_find_binary > /dev/null; then
        dinfo "oom-ext: binary not found (install it with 'make install'), module not included"
        return 1
    fi
    # In hostonly mode, include it by default when this host already runs
    # oom_ext; otherwise only on request (--add oom-ext, add_dracutmodules).
    if [[ $hostonly ]] && [[ -d /sys/module/oom_ext || -e /run/oom-ext/mode ]]; then
        return 0
    fi
    return 255
}

# called by dracut
depends() {
    return 0
}

# called by dracut
installkernel() {
    local _ko
    # hostonly='': the module is rarely loaded on the host when the initrd is
    # built (first install), and must still be included.
    if hostonly='' instmods -c -s oom_ext; then
        return 0
    fi
    # DKMS runs its POST_INSTALL (which rebuilds the initrd) before depmod:
    # the module may be on disk but not in modules.dep yet. It has no
    # dependencies, so install the file; dracut runs depmod on the image.
    _ko=$(find "$srcmods" -name 'oom_ext.ko*' 2> /dev/null | sort | head -n 1)
    if [[ -n $_ko ]]; then
        dinfo "oom-ext: ${_ko#"$dracutsysrootdir"} is not in modules.dep yet; adding the file itself"
        inst_simple "${_ko#"$dracutsysrootdir"}"
        return 0
    fi
    # Not fatal: the binary falls back to its userspace buffer.
    dwarn "oom-ext: kernel module oom_ext not found for kernel $kernel (not built by DKMS?); the initrd will run in fallback mode"
    return 0
}

# called by dracut
install() {
    local _bin
    _bin=$(oom_ext_find_binary) || return 1
    # Always at /usr/sbin/oom-ext inside the initrd: the unit and hook use
    # that path whatever the host's prefix is. The binary is static.
    inst_simple "$_bin" /usr/sbin/oom-ext

    if dracut_module_included "systemd"; then
        # Same unit name as the real root's guard: see the unit's comments.
        inst_simple "$moddir/oom-ext-initrd.service" "$systemdsystemunitdir/oom-ext-guard.service"
        $SYSTEMCTL -q --root "$initdir" add-wants sysinit.target oom-ext-guard.service
    else
        # Shell initrd: cmdline hooks run first, before udev.
        inst_hook cmdline 00 "$moddir/oom-ext-init.sh"
    fi
}
