//! `oom-ext init`: the first thing in the initramfs. Plans from what it reads
//! (pure [`plan`]), then acts; it never fails boot. The plan's paths are
//! relative to the one [`Root`] that `gather` and `execute` are given.

use crate::cmdline::{self, Diagnostic};
use crate::log::{Level, Log};
use crate::modload::{self, Compression, LoadResult};
use crate::params::Params;
use crate::paths;
use crate::root::Root;
use crate::rootfs;
use crate::runtime::{Config, Mode};
use crate::sysctl;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Everything `init` reads before deciding.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// `/proc/cmdline` as bytes (empty when it cannot be read).
    pub cmdline: Vec<u8>,
    /// Why `/proc/cmdline` could not be read, if it exists but could not.
    pub cmdline_error: Option<String>,
    pub release: Option<String>,
    pub module_loaded: bool,
    /// `modules.dep` text, or why it could not be read.
    pub modules_dep: Result<String, String>,
    pub kernel_panic: Option<String>,
    /// modprobe, relative to the root (real root only: it runs on this
    /// machine).
    pub modprobe: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModulePlan {
    /// `oom_ext=0`: leave it alone; if it is loaded already, these sysctl
    /// writes switch it off.
    Off {
        zero: Vec<(String, String)>,
    },
    AlreadyLoaded,
    Load {
        /// Relative to the root.
        path: String,
        compression: Compression,
        args: String,
        /// If the kernel refuses the file.
        refused: Refused,
    },
    /// `modules.dep` unreadable (mkinitcpio keeps only `modules.dep.bin`):
    /// modprobe, which reads the binary index, loads it; fallback mode if
    /// that fails.
    Modprobe {
        /// Relative to the root.
        modprobe: String,
        args: String,
        why: String,
    },
    Unavailable(String),
}

/// What `init` does when the kernel refuses the module file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Fallback mode.
    Fallback,
    /// A compressed file: load it through this modprobe (libkmod
    /// decompresses what the kernel cannot), fallback mode if that fails.
    Modprobe(String),
    /// A compressed file but no modprobe to decompress it: fallback mode.
    NoModprobe,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub params: Params,
    pub diagnostics: Vec<Diagnostic>,
    pub module: ModulePlan,
    /// Kernel mode: `vm.oom_ext.*` sysctls to write, in order.
    pub sysctls: Vec<(String, String)>,
    /// `kernel.panic` to set (because gracetime is on and panic would halt).
    pub set_panic: Option<u32>,
    pub start_guard: bool,
}

/// A gracetime, or `policy=panic`, means a deliberate panic that must
/// reboot the box, not halt it.
fn needs_reboot_after_panic(p: &Params) -> bool {
    p.gracetime > 0 || p.policy == crate::params::OomPolicy::Panic
}

/// The seconds `kernel.panic` is set to when gracetime needs a reboot.
pub const PANIC_REBOOT_S: u32 = 10;

/// Pure planning: cmdline → params → actions.
pub fn plan(root: &Root, inputs: &Inputs) -> Plan {
    let (params, diagnostics) = cmdline::parse(&inputs.cmdline);
    let module = if !params.enabled {
        ModulePlan::Off {
            zero: if inputs.module_loaded {
                [("bufsize", "0"), ("gracetime", "0"), ("crashflag", "0")]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            } else {
                Vec::new()
            },
        }
    } else if inputs.module_loaded {
        ModulePlan::AlreadyLoaded
    } else {
        match (&inputs.release, &inputs.modules_dep) {
            (None, _) => ModulePlan::Unavailable(
                "kernel release unknown (no /proc/sys/kernel/osrelease)".into(),
            ),
            (_, Err(why)) => match &inputs.modprobe {
                Some(m) => ModulePlan::Modprobe {
                    modprobe: m.clone(),
                    args: params.module_args(),
                    why: why.clone(),
                },
                None => ModulePlan::Unavailable(why.clone()),
            },
            (Some(rel), Ok(dep)) => match modload::find_in_modules_dep(dep, modload::MODULE) {
                None => ModulePlan::Unavailable(format!(
                    "{} is not in modules.dep of kernel {rel} (not installed?)",
                    modload::MODULE
                )),
                Some((p, _)) if p.split('/').any(|c| c == "..") => {
                    ModulePlan::Unavailable(format!(
                        "modules.dep of kernel {rel} names {} with a .. component: not loaded",
                        cmdline::escape_value(&p)
                    ))
                }
                Some((p, _)) => {
                    let path = modload::entry_path(rel, &p);
                    let compression = Compression::of(&p);
                    let refused = match (compression, &inputs.modprobe) {
                        (Compression::None, _) => Refused::Fallback,
                        (_, Some(m)) => Refused::Modprobe(m.clone()),
                        (_, None) if root.is_system() => Refused::NoModprobe,
                        (_, None) => Refused::Fallback,
                    };
                    ModulePlan::Load {
                        compression,
                        path,
                        args: params.module_args(),
                        refused,
                    }
                }
            },
        }
    };
    let panic_now = inputs.kernel_panic.as_deref().and_then(sysctl::parse_int);
    let set_panic = (params.enabled && needs_reboot_after_panic(&params) && panic_now == Some(0))
        .then_some(PANIC_REBOOT_S);
    let start_guard = params.enabled;
    // Reverse table order: the path before the flag switch that uses it,
    // bufsize (the reservation) last.
    let sysctls = crate::params::module_keys()
        .rev()
        .map(|k| (k.to_string(), params.get(k).unwrap_or_default()))
        .collect();
    Plan {
        params,
        diagnostics,
        module,
        sysctls,
        set_panic,
        start_guard,
    }
}

/// modules.dep of a distribution kernel is about 1 MiB.
const MODULES_DEP_MAX: usize = 16 << 20;

/// Reads the inputs under the root (capped, never blocking on a FIFO).
pub fn gather(root: &Root) -> Inputs {
    let release = modload::kernel_release(root);
    let modules_dep = match &release {
        Some(rel) => {
            let p = format!("{}/modules.dep", modload::modules_dir(rel));
            rootfs::read(root, &p, MODULES_DEP_MAX)
                .map_err(|e| format!("cannot read /{p}: {e}"))
                .and_then(|b| String::from_utf8(b).map_err(|_| format!("/{p} is not UTF-8")))
        }
        None => Err("kernel release unknown".into()),
    };
    let (cmdline, cmdline_error) = match rootfs::read(root, paths::CMDLINE, rootfs::SMALL) {
        Ok(b) => (b, None),
        Err(rootfs::Error::Missing) => (Vec::new(), None),
        Err(e) => (Vec::new(), Some(format!("/{} {e}", paths::CMDLINE))),
    };
    Inputs {
        cmdline,
        cmdline_error,
        module_loaded: modload::is_loaded(root),
        modules_dep,
        kernel_panic: sysctl::read(root, "kernel.panic").ok(),
        // Against a fake root, no modprobe: it would run on this machine.
        modprobe: root
            .is_system()
            .then(|| modload::find_modprobe(root))
            .flatten(),
        release,
    }
}

impl Plan {
    /// Human-readable plan (`init --plan`, golden tests).
    pub fn render(&self) -> String {
        let mut s = String::new();
        for d in &self.diagnostics {
            let _ = writeln!(s, "diagnostic: {d}");
        }
        let _ = write!(
            s,
            "{}",
            self.params
                .to_file()
                .lines()
                .map(|l| format!("param: {l}\n"))
                .collect::<String>()
        );
        let _ = match &self.module {
            ModulePlan::Off { .. } => writeln!(s, "module: off"),
            ModulePlan::AlreadyLoaded => writeln!(s, "module: already loaded, write sysctls"),
            ModulePlan::Load {
                path,
                compression,
                args,
                refused,
            } => {
                let _ = writeln!(s, "module: load /{path} ({compression:?}) with \"{args}\"");
                match refused {
                    Refused::Fallback => Ok(()),
                    Refused::Modprobe(m) => writeln!(s, "module: if refused, /{m}"),
                    Refused::NoModprobe => writeln!(s, "module: if refused, no modprobe"),
                }
            }
            ModulePlan::Modprobe {
                modprobe,
                args,
                why,
            } => writeln!(
                s,
                "module: load through /{modprobe} with \"{args}\" ({why})"
            ),
            ModulePlan::Unavailable(why) => writeln!(s, "module: unavailable: {why}"),
        };
        if let Some(p) = self.set_panic {
            let _ = writeln!(s, "kernel.panic: set to {p}");
        }
        let _ = writeln!(
            s,
            "guard: {}",
            if self.start_guard { "start" } else { "no" }
        );
        s
    }
}

/// How every log line that gives up on the module ends.
const FALLBACK: &str = "using the userspace fallback guard";

/// Loads the module through modprobe: kernel mode, logged as `loaded`
/// (at `level`); else fallback mode, logged as `failed` with modprobe's
/// reason.
fn via_modprobe(
    root: &Root,
    modprobe: &str,
    args: &str,
    log: &Log,
    (level, loaded): (Level, String),
    failed: &str,
) -> Mode {
    match modload::load_with_modprobe(root, modprobe, args) {
        LoadResult::Loaded | LoadResult::AlreadyLoaded => {
            log.log(level, &loaded);
            Mode::Kernel
        }
        LoadResult::Failed(why) => {
            log.warn(&format!("{failed}; {why}; {FALLBACK}"));
            Mode::Fallback
        }
    }
}

/// The plan's step for a module file the kernel refused.
fn when_refused(
    root: &Root,
    path: &str,
    args: &str,
    refused: &Refused,
    why: &str,
    log: &Log,
) -> Mode {
    match refused {
        Refused::Fallback => {
            log.warn(&format!("cannot load module /{path}: {why}; {FALLBACK}"));
            Mode::Fallback
        }
        Refused::Modprobe(m) => via_modprobe(
            root,
            m,
            args,
            log,
            (
                Level::Notice,
                format!("kernel refused /{path} ({why}); loaded it through /{m} instead"),
            ),
            &format!("cannot load module /{path}: {why}"),
        ),
        Refused::NoModprobe => {
            log.warn(&format!(
                "cannot load module /{path}: {why}; no modprobe to decompress it; {FALLBACK}"
            ));
            Mode::Fallback
        }
    }
}

/// Carries out the plan. Every failure is logged, none is returned: boot goes on.
pub fn execute(root: &Root, plan: &Plan, log: &Log, spawn_guard: bool) -> Mode {
    for d in &plan.diagnostics {
        log.warn(&d.to_string());
    }
    let p = &plan.params;
    let mode = match &plan.module {
        ModulePlan::Off { zero } => {
            for (k, v) in zero {
                if let Err(e) = sysctl::write(root, &format!("vm.oom_ext.{k}"), v) {
                    log.warn(&format!(
                        "oom_ext=0 but the module is loaded; cannot set vm.oom_ext.{k}={v}: {e}"
                    ));
                }
            }
            log.notice("oom_ext=0 on the kernel command line: oom-ext is off");
            Mode::Off
        }
        ModulePlan::AlreadyLoaded => {
            log.info("module oom_ext already loaded; applying parameters through sysctls");
            Mode::Kernel
        }
        ModulePlan::Load {
            path,
            compression,
            args,
            refused,
        } => match modload::load(root, path, *compression, args) {
            LoadResult::Loaded => {
                log.info(&format!("loaded /{path} with {args}"));
                Mode::Kernel
            }
            LoadResult::AlreadyLoaded => Mode::Kernel,
            LoadResult::Failed(why) => when_refused(root, path, args, refused, &why, log),
        },
        ModulePlan::Modprobe {
            modprobe,
            args,
            why,
        } => via_modprobe(
            root,
            modprobe,
            args,
            log,
            (
                Level::Info,
                format!("{why}; loaded oom_ext through /{modprobe} with {args}"),
            ),
            why,
        ),
        ModulePlan::Unavailable(why) => {
            log.warn(&format!("module oom_ext unavailable: {why}; {FALLBACK}"));
            Mode::Fallback
        }
    };
    if mode == Mode::Kernel {
        for (k, v) in &plan.sysctls {
            if let Err(e) = sysctl::write(root, &format!("vm.oom_ext.{k}"), v) {
                log.warn(&format!("cannot write vm.oom_ext.{k}={v}: {e}"));
            }
        }
    }
    if let Some(v) = plan.set_panic {
        let why = if p.gracetime > 0 {
            format!("oom_ext.gracetime={}", p.gracetime)
        } else {
            "oom_ext.policy=panic".to_string()
        };
        match sysctl::write(root, "kernel.panic", &v.to_string()) {
            Ok(()) => log.notice(&format!(
                "{why} needs a reboot after panic: set kernel.panic={v} (was 0)"
            )),
            Err(e) => log.warn(&format!(
                "{why} but kernel.panic=0 and it cannot be set ({e}): its panic will halt, not reboot"
            )),
        }
    }
    if let Err(e) = Config::record(root, mode, p) {
        log.warn(&format!(
            "cannot write /{}: {e}; the guard will read the command line itself",
            paths::RUN_DIR
        ));
    }
    let mut summary = format!("mode={} {}", mode.as_str(), p.summary());
    if plan.start_guard && spawn_guard {
        match spawn(root) {
            Ok(pid) => {
                let _ = write!(summary, ", guard started (pid {pid})");
            }
            Err(e) => {
                let _ = write!(summary, ", guard NOT started: {e}");
            }
        }
    }
    log.info(&summary);
    mode
}

/// Starts `oom-ext guard` detached: its own session, stdio on /dev/null,
/// argv[0] `@oom-ext-guard` so a systemd initrd spares it at switch-root.
pub fn spawn(root: &Root) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let mut cmd = Command::new(exe);
    cmd.arg0("@oom-ext-guard");
    if !root.is_system() {
        cmd.arg("--root").arg(root.dir());
    }
    cmd.arg("guard")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
        });
    }
    let child = cmd.spawn()?;
    Ok(child.id())
}

/// `oom-ext init`.
pub fn run(root: &Root, log: &Log, plan_only: bool, spawn_guard: bool) -> String {
    let inputs = gather(root);
    if let Some(e) = &inputs.cmdline_error {
        log.warn(&format!("{e}; using the defaults"));
    }
    let plan = plan(root, &inputs);
    if plan_only {
        return plan.render();
    }
    execute(root, &plan, log, spawn_guard);
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(cmdline: &str) -> Inputs {
        Inputs {
            cmdline: cmdline.into(),
            cmdline_error: None,
            release: Some("6.1.0-56-amd64".into()),
            module_loaded: false,
            modules_dep: Ok("updates/dkms/oom_ext.ko: \n".into()),
            kernel_panic: Some("0\n".into()),
            modprobe: None,
        }
    }

    #[test]
    fn plans_a_load_with_the_command_line_parameters() {
        let root = Root::new("/r");
        let p = plan(&root, &inputs("oom_ext.bufsize=64 oom_ext.gracetime=30"));
        assert_eq!(
            p.module,
            ModulePlan::Load {
                path: "lib/modules/6.1.0-56-amd64/updates/dkms/oom_ext.ko".into(),
                compression: Compression::None,
                args: "bufsize=64 gracetime=30 resettime=300 crashflag=1 crashflag_name=/oomflag"
                    .into(),
                refused: Refused::Fallback,
            }
        );
        assert_eq!(
            p.sysctls
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            [
                "crashflag_name",
                "crashflag",
                "resettime",
                "gracetime",
                "bufsize"
            ]
        );
        assert_eq!(p.set_panic, Some(10));
        assert!(p.start_guard);
    }

    #[test]
    fn panic_is_left_alone_unless_it_would_halt() {
        let root = Root::new("/r");
        let mut i = inputs("oom_ext.gracetime=30");
        i.kernel_panic = Some("-1".into());
        assert_eq!(plan(&root, &i).set_panic, None);
        i.kernel_panic = Some("garbage".into());
        assert_eq!(plan(&root, &i).set_panic, None);
        assert_eq!(plan(&root, &inputs("")).set_panic, None);
        // policy=panic panics at the first OOM: it must reboot too.
        assert_eq!(
            plan(&root, &inputs("oom_ext.policy=panic")).set_panic,
            Some(10)
        );
    }

    #[test]
    fn off_and_unavailable() {
        let root = Root::new("/r");
        let p = plan(&root, &inputs("oom_ext=off oom_ext.gracetime=30"));
        assert_eq!(
            (p.module, p.set_panic, p.start_guard),
            (ModulePlan::Off { zero: Vec::new() }, None, false)
        );
        let mut i = inputs("oom_ext=0");
        i.module_loaded = true;
        let ModulePlan::Off { zero } = plan(&root, &i).module else {
            panic!("not off");
        };
        assert_eq!(zero.len(), 3, "a loaded module is switched off: {zero:?}");
        let mut i = inputs("");
        i.modules_dep = Ok("kernel/a.ko:\n".into());
        assert!(matches!(plan(&root, &i).module, ModulePlan::Unavailable(_)));
        i.release = None;
        assert!(matches!(plan(&root, &i).module, ModulePlan::Unavailable(_)));
        i.module_loaded = true;
        assert_eq!(plan(&root, &i).module, ModulePlan::AlreadyLoaded);
    }

    #[test]
    fn without_modules_dep_modprobe_loads_it() {
        // mkinitcpio's images keep only modules.dep.bin.
        let root = Root::new("/r");
        let mut i = inputs("oom_ext.bufsize=8");
        i.modules_dep = Err("cannot read /lib/modules/6.1.0/modules.dep: missing".into());
        assert!(matches!(plan(&root, &i).module, ModulePlan::Unavailable(_)));
        i.modprobe = Some("usr/bin/modprobe".into());
        let p = plan(&root, &i);
        let ModulePlan::Modprobe {
            modprobe,
            args,
            why,
        } = &p.module
        else {
            panic!("not through modprobe: {:?}", p.module);
        };
        assert_eq!(modprobe, "usr/bin/modprobe");
        assert!(args.contains("bufsize=8"), "{args}");
        assert!(why.contains("modules.dep"), "{why}");
        assert!(
            p.render()
                .contains("module: load through /usr/bin/modprobe with"),
            "{}",
            p.render()
        );
    }

    #[test]
    fn a_refused_compressed_module_has_its_fallback_in_the_plan() {
        let mut i = inputs("");
        i.modules_dep = Ok("updates/dkms/oom_ext.ko.xz:\n".into());
        let refused = |root: &Root, i: &Inputs| match plan(root, i).module {
            ModulePlan::Load { refused, .. } => refused,
            m => panic!("{m:?}"),
        };
        assert_eq!(refused(&Root::new("/r"), &i), Refused::Fallback);
        assert_eq!(refused(&Root::system(), &i), Refused::NoModprobe);
        i.modprobe = Some("sbin/modprobe".into());
        assert_eq!(
            refused(&Root::system(), &i),
            Refused::Modprobe("sbin/modprobe".into())
        );
    }
}
