//! The fixed paths of the run-time interface (docs/ARCHITECTURE.md), all
//! relative to a [`crate::root::Root`].

#![forbid(unsafe_code)]

pub const CMDLINE: &str = "proc/cmdline";
pub const RUN_DIR: &str = "run/oom-ext";
pub const PIDFILE: &str = "run/oom-ext/guard.pid";
pub const LOCKFILE: &str = "run/oom-ext/guard.lock";
pub const MODE: &str = "run/oom-ext/mode";
pub const PARAMS: &str = "run/oom-ext/params";
/// Written by the guard: its own view (mode, buffer, counters).
pub const GUARD_STATE: &str = "run/oom-ext/guard.state";
pub const HISTORY: &str = "var/lib/oom-ext/history";
pub const REPORT_D: &str = "etc/oom-ext/report.d";
/// Run by the guard after each of its kills (docs/policy.md).
pub const KILL_D: &str = "etc/oom-ext/kill.d";
pub const MODULE_STATUS: &str = "sys/kernel/oom_ext/status";
pub const MODULE_TRIGGER: &str = "sys/kernel/oom_ext/trigger";
pub const PSI_MEMORY: &str = "proc/pressure/memory";
pub const VMSTAT: &str = "proc/vmstat";
pub const MEMINFO: &str = "proc/meminfo";
pub const SYSRQ: &str = "proc/sysrq-trigger";
pub const KMSG: &str = "dev/kmsg";
pub const BOOT_ID: &str = "proc/sys/kernel/random/boot_id";
pub const OSRELEASE: &str = "proc/sys/kernel/osrelease";
/// Where the real root keeps the binary (looked for after switch-root).
pub const BINARIES: &[&str] = &[
    "usr/sbin/oom-ext",
    "usr/bin/oom-ext",
    "sbin/oom-ext",
    "bin/oom-ext",
];
