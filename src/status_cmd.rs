//! `oom-ext status`: mode, buffer, sysctls, counters, guard, last report;
//! as text, JSON, or node_exporter textfile metrics.

use crate::json::Object;
use crate::module_status::{self, ModuleStatus};
use crate::root::Root;
use crate::runtime::{Config, Counters, GuardState};
use crate::{cmdline, history, paths, pidtrust, rootfs, sysctl};
use std::fmt::Write as _;

#[derive(Debug, Clone, Default)]
pub struct Status {
    pub mode: Option<String>,
    pub module_loaded: bool,
    pub module: Option<ModuleStatus>,
    pub sysctls: Vec<(String, Option<String>)>,
    pub kernel_panic: Option<String>,
    pub guard_pid: Option<u32>,
    pub guard_alive: bool,
    pub guard_state: Option<GuardState>,
    pub last_report: Option<(String, String)>,
    pub reports: usize,
    /// The victim policy: settings, rules per file, problems, victims list.
    pub policy: Option<crate::policy::view::View>,
    /// `on_hang` and `on_hang_boots` in effect, and this boot's decision.
    pub on_hang: Option<(crate::params::OnHang, u32)>,
    pub on_hang_record: Option<crate::onhang::Record>,
}

/// The `"summary":"..."` of an archived report (our own JSON writer's form).
fn summary_of(json_text: &str) -> String {
    let Some(i) = json_text.find("\"summary\":\"") else {
        return String::new();
    };
    let rest = &json_text[i + 11..];
    let mut out = String::new();
    let mut esc = false;
    for c in rest.chars() {
        match (esc, c) {
            (false, '\\') => esc = true,
            (false, '"') => break,
            (true, 'n') => {
                out.push(' ');
                esc = false
            }
            (_, c) => {
                out.push(c);
                esc = false
            }
        }
    }
    out
}

/// Control characters (ESC, CR, bidi overrides...) escaped, the rest as is:
/// a summary is shown whole, but never drives the terminal.
fn controls_escaped(s: &str) -> String {
    s.chars()
        .take(2048)
        .flat_map(|c| {
            let plain = !c.is_control() && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            let mut v: Vec<char> = Vec::new();
            if plain {
                v.push(c);
            } else {
                v.extend(c.escape_unicode());
            }
            v
        })
        .collect()
}

/// The newest archived report: its path and summary (or why it is not
/// shown), read capped.
fn last_report(root: &Root) -> Option<(String, String)> {
    let last = history::entries(root).pop()?;
    let summary = match rootfs::read(root, &last.path(), history::READ_MAX) {
        Ok(b) => match std::str::from_utf8(&b) {
            Ok(t) => summary_of(t),
            Err(_) => "(not UTF-8: not shown)".into(),
        },
        Err(e) => format!("(cannot read: {e})"),
    };
    Some((last.path(), summary))
}

pub fn gather(root: &Root) -> Status {
    let mut s = Status::default();
    let read = |p: &str| rootfs::read_small(root, p);
    s.module_loaded = crate::modload::is_loaded(root);
    s.module = read(paths::MODULE_STATUS).map(module_status::parse);
    for k in crate::params::module_keys() {
        s.sysctls.push((
            k.to_string(),
            sysctl::read(root, &format!("vm.oom_ext.{k}")).ok(),
        ));
    }
    s.kernel_panic = sysctl::read(root, "kernel.panic").ok();
    s.guard_pid = read(paths::PIDFILE)
        .and_then(|p| String::from_utf8(p).ok())
        .and_then(|p| p.trim().parse().ok());
    // A pid from a file is believed only when the kernel says it holds the
    // guard's lock and it runs an oom-ext.
    s.guard_alive = pidtrust::verified_guard(root, s.guard_pid).is_some();
    if s.guard_alive {
        s.guard_state = GuardState::read(root);
    }
    let mode = Config::load(root).mode(s.module.is_some(), s.guard_alive);
    s.mode = Some(mode.as_str().to_string());
    s.reports = history::entries(root).len();
    s.last_report = last_report(root);
    s.policy = Some(crate::policy::view::gather(root));
    s.on_hang = Some(crate::onhang::apply::settings(root));
    s.on_hang_record = crate::onhang::apply::record(root);
    s
}

impl Status {
    fn buffer_bytes(&self) -> u64 {
        match (&self.module, self.mode.as_deref()) {
            (Some(m), Some("kernel")) => m.reserved_bytes.unwrap_or(0),
            _ => self.guard_state.as_ref().map_or(0, |g| g.buffer_bytes),
        }
    }

    fn state(&self) -> String {
        match (&self.module, self.mode.as_deref()) {
            (Some(m), Some("kernel")) => m.state.clone().unwrap_or_else(|| "unknown".into()),
            _ => self
                .guard_state
                .as_ref()
                .map(|g| &g.state)
                .filter(|v| {
                    !v.is_empty()
                        && v.len() <= 32
                        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
        }
    }

    /// The guard's PSI word, if its state file names one.
    fn psi(&self) -> Option<&str> {
        self.guard_state
            .as_ref()
            .map(|g| g.psi.as_str())
            .filter(|p| !p.is_empty())
    }

    fn counter(&self, name: &str) -> u64 {
        let from_module = self.module.as_ref().and_then(|m| match name {
            "oom_events" => m.oom_events,
            "releases" => m.releases,
            "rearms" => m.rearms,
            _ => None,
        });
        from_module
            .or_else(|| self.guard_state.as_ref().and_then(|g| g.counters.get(name)))
            .unwrap_or(0)
    }

    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "mode:          {}",
            self.mode.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(s, "state:         {}", self.state());
        let _ = writeln!(
            s,
            "buffer:        {} MiB reserved",
            self.buffer_bytes() >> 20
        );
        let _ = writeln!(
            s,
            "module:        {}",
            match (
                self.module_loaded,
                self.module.as_ref().and_then(|m| m.last_release())
            ) {
                (true, Some(r)) => format!("loaded ({r})"),
                (true, None) => "loaded".into(),
                (false, _) => "not loaded".into(),
            }
        );
        for (k, v) in &self.sysctls {
            let v = v.as_deref().map(cmdline::escape_value);
            let _ = writeln!(s, "vm.oom_ext.{k:<15} {}", v.as_deref().unwrap_or("-"));
        }
        let _ = writeln!(
            s,
            "kernel.panic:  {}",
            self.kernel_panic
                .as_deref()
                .map(cmdline::escape_value)
                .unwrap_or_else(|| "-".into())
        );
        let _ = writeln!(
            s,
            "counters:      oom_events={} releases={} rearms={} stall_events={} kills={}",
            self.counter("oom_events"),
            self.counter("releases"),
            self.counter("rearms"),
            self.counter("stall_events"),
            self.counter("kills")
        );
        let _ = writeln!(
            s,
            "cgroup OOMs:   memcg_kills={} (kills at a cgroup's memory limit, not system OOMs)",
            self.counter("memcg_kills")
        );
        let _ = match self.guard_pid {
            Some(p) => writeln!(
                s,
                "guard:         pid {p} ({})",
                if self.guard_alive {
                    "running"
                } else {
                    "not running"
                }
            ),
            None => writeln!(s, "guard:         not running"),
        };
        if let Some(psi) = self.psi() {
            let _ = writeln!(s, "stall guard:   psi {}", cmdline::escape_value(psi));
        }
        if let Some(p) = &self.policy {
            s.push_str(&p.human());
        }
        if let Some((on_hang, boots)) = self.on_hang {
            let now = match &self.on_hang_record {
                Some(r) => controls_escaped(&r.summary()),
                None => "no OOM hang before this boot".into(),
            };
            let _ = writeln!(
                s,
                "on hang:       {} after {boots} hang boot(s) in a row\n               this boot: {now}",
                on_hang.as_str()
            );
        }
        let _ = match &self.last_report {
            Some((p, sum)) => writeln!(
                s,
                "last report:   {p}\n               {}",
                controls_escaped(sum)
            ),
            None => writeln!(s, "last report:   none"),
        };
        s
    }

    pub fn json(&self) -> String {
        let sysctls = self
            .sysctls
            .iter()
            .fold(Object::new(), |o, (k, v)| o.opt_str(k, v.as_deref()))
            .finish();
        let counters = Counters::NAMES
            .iter()
            .fold(Object::new(), |o, k| o.num(k, self.counter(k)))
            .finish();
        Object::new()
            .opt_str("mode", self.mode.as_deref())
            .str("state", &self.state())
            .num("buffer_bytes", self.buffer_bytes())
            .bool("module_loaded", self.module_loaded)
            .opt_num(
                "last_release_bytes",
                self.module.as_ref().and_then(|m| m.last_release_bytes),
            )
            .raw("sysctls", sysctls)
            .opt_str("kernel_panic", self.kernel_panic.as_deref())
            .raw("counters", counters)
            .opt_num("guard_pid", self.guard_pid.map(u64::from))
            .bool("guard_running", self.guard_alive)
            .opt_str("psi", self.psi())
            .raw(
                "policy",
                self.policy
                    .as_ref()
                    .map_or_else(|| "null".into(), |p| p.json()),
            )
            .raw(
                "last_report",
                self.last_report
                    .as_ref()
                    .map(|(p, s)| Object::new().str("path", p).str("summary", s).finish())
                    .unwrap_or_else(|| "null".into()),
            )
            .raw(
                "on_hang",
                self.on_hang.map_or_else(
                    || "null".into(),
                    |(a, n)| {
                        Object::new()
                            .str("on_hang", a.as_str())
                            .num("on_hang_boots", u64::from(n))
                            .raw(
                                "this_boot",
                                self.on_hang_record
                                    .as_ref()
                                    .map_or_else(|| "null".into(), |r| r.json()),
                            )
                            .finish()
                    },
                ),
            )
            .finish()
    }

    /// node_exporter textfile collector format.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let mode = self.mode.as_deref().unwrap_or("unknown");
        let _ = writeln!(s, "# HELP oom_ext_mode Mode of oom_ext (1 for the active one).\n# TYPE oom_ext_mode gauge");
        for m in ["kernel", "fallback", "off"] {
            let _ = writeln!(s, "oom_ext_mode{{mode=\"{m}\"}} {}", u8::from(m == mode));
        }
        let _ = writeln!(s, "# HELP oom_ext_buffer_bytes Emergency buffer currently reserved.\n# TYPE oom_ext_buffer_bytes gauge");
        let _ = writeln!(s, "oom_ext_buffer_bytes {}", self.buffer_bytes());
        let _ = writeln!(
            s,
            "# HELP oom_ext_in_oom 1 while in the OOM state.\n# TYPE oom_ext_in_oom gauge"
        );
        let _ = writeln!(s, "oom_ext_in_oom {}", u8::from(self.state() == "oom"));
        for (k, help) in [
            ("oom_events", "Entries into the OOM state."),
            ("releases", "Buffer releases."),
            ("rearms", "Buffer re-creations after resettime."),
            ("stall_events", "PSI memory stall events seen by the guard."),
            ("kills", "OOM kills requested by the guard (sysrq f)."),
            (
                "memcg_kills",
                "Processes the kernel killed at a memory cgroup's limit (memory.max, MemoryMax=), seen by the guard; not system OOMs.",
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP oom_ext_{k}_total {help}\n# TYPE oom_ext_{k}_total counter"
            );
            let _ = writeln!(s, "oom_ext_{k}_total {}", self.counter(k));
        }
        if let Some(b) = self.module.as_ref().and_then(|m| m.last_release_bytes) {
            let _ = writeln!(s, "# HELP oom_ext_last_release_bytes What the module's last OOM entry released (0: no buffer).\n# TYPE oom_ext_last_release_bytes gauge");
            let _ = writeln!(s, "oom_ext_last_release_bytes {b}");
        }
        let _ = writeln!(
            s,
            "# HELP oom_ext_guard_up 1 if the guard runs.\n# TYPE oom_ext_guard_up gauge"
        );
        let _ = writeln!(s, "oom_ext_guard_up {}", u8::from(self.guard_alive));
        let _ = writeln!(s, "# HELP oom_ext_reports Archived next-boot reports (bounded history).\n# TYPE oom_ext_reports gauge");
        let _ = writeln!(s, "oom_ext_reports {}", self.reports);
        s
    }
}

/// Writes `DIR/oom_ext.prom` atomically (an unpredictable `O_EXCL` temp
/// file in the same directory, then rename) so node_exporter never reads
/// half a file and a planted symlink is never followed.
pub fn write_textfile(
    dir: &std::path::Path,
    status: &Status,
) -> std::io::Result<std::path::PathBuf> {
    let path = dir.join("oom_ext.prom");
    rootfs::replace_at(&path, status.prometheus().as_bytes(), 0o644)?;
    Ok(path)
}
