//! `oom-ext status`: mode, buffer, sysctls, counters, guard, last report;
//! as text, JSON, or node_exporter textfile metrics.

use crate::init::{write_atomic, Mode};
use crate::json::Object;
use crate::params::Params;
use crate::root::Root;
use crate::status::{self, ModuleStatus};
use crate::{paths, report, sysctl};
use std::collections::BTreeMap;
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
    pub guard_state: BTreeMap<String, String>,
    pub last_report: Option<(String, String)>,
    pub reports: usize,
}

fn kv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.len() <= 32 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .map(|(k, v)| (k.to_string(), v.chars().take(256).collect()))
        .collect()
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

pub fn gather(root: &Root) -> Status {
    let mut s = Status::default();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    s.module_loaded = crate::modload::is_loaded(root);
    s.module = read(paths::MODULE_STATUS).map(|t| status::parse(&t));
    s.mode = read(paths::MODE)
        .and_then(|m| Mode::parse(&m))
        .map(|m| m.as_str().to_string());
    for k in Params::MODULE_KEYS.iter().rev() {
        s.sysctls.push((
            k.to_string(),
            sysctl::read(root, &format!("vm.oom_ext.{k}")).ok(),
        ));
    }
    s.kernel_panic = sysctl::read(root, "kernel.panic").ok();
    s.guard_pid = read(paths::PIDFILE).and_then(|p| p.trim().parse().ok());
    // Liveness is a fact of this machine, not of the (maybe fake) root.
    s.guard_alive = s.guard_pid.is_some_and(|p| {
        let Ok(pid) = i32::try_from(p) else {
            return false;
        };
        pid > 0
            && !matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                Err(nix::Error::ESRCH)
            )
    });
    if s.guard_alive {
        s.guard_state = read(paths::GUARD_STATE).map(|t| kv(&t)).unwrap_or_default();
    }
    if s.mode.is_none() {
        s.mode = Some(
            if s.module.is_some() {
                "kernel"
            } else if s.guard_alive {
                "fallback"
            } else {
                "off"
            }
            .to_string(),
        );
    }
    let mut hist = report::history(root);
    s.reports = hist.len();
    if let Some(last) = hist.pop() {
        let text = std::fs::read_to_string(&last).unwrap_or_default();
        let shown = last
            .strip_prefix(root.dir())
            .map(|p| format!("/{}", p.display()))
            .unwrap_or_default();
        s.last_report = Some((shown, summary_of(&text)));
    }
    s
}

impl Status {
    fn buffer_bytes(&self) -> u64 {
        match (&self.module, self.mode.as_deref()) {
            (Some(m), Some("kernel")) => m.reserved_bytes.unwrap_or(0),
            _ => self
                .guard_state
                .get("buffer_bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }
    }

    fn state(&self) -> String {
        match (&self.module, self.mode.as_deref()) {
            (Some(m), Some("kernel")) => m.state.clone().unwrap_or_else(|| "unknown".into()),
            _ => self
                .guard_state
                .get("state")
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
        }
    }

    fn counter(&self, name: &str) -> u64 {
        let from_module = self.module.as_ref().and_then(|m| match name {
            "oom_events" => m.oom_events,
            "releases" => m.releases,
            "rearms" => m.rearms,
            _ => None,
        });
        from_module
            .or_else(|| self.guard_state.get(name).and_then(|v| v.parse().ok()))
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
            if self.module_loaded {
                "loaded"
            } else {
                "not loaded"
            }
        );
        for (k, v) in &self.sysctls {
            let _ = writeln!(s, "vm.oom_ext.{k:<15} {}", v.as_deref().unwrap_or("-"));
        }
        let _ = writeln!(
            s,
            "kernel.panic:  {}",
            self.kernel_panic.as_deref().unwrap_or("-")
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
        if let Some(psi) = self.guard_state.get("psi") {
            let _ = writeln!(s, "stall guard:   psi {psi}");
        }
        let _ = match &self.last_report {
            Some((p, sum)) => writeln!(s, "last report:   {p}\n               {sum}"),
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
        let counters = [
            "oom_events",
            "releases",
            "rearms",
            "stall_events",
            "kills",
            "victims",
        ]
        .iter()
        .fold(Object::new(), |o, k| o.num(k, self.counter(k)))
        .finish();
        Object::new()
            .opt_str("mode", self.mode.as_deref())
            .str("state", &self.state())
            .num("buffer_bytes", self.buffer_bytes())
            .bool("module_loaded", self.module_loaded)
            .raw("sysctls", sysctls)
            .opt_str("kernel_panic", self.kernel_panic.as_deref())
            .raw("counters", counters)
            .opt_num("guard_pid", self.guard_pid.map(u64::from))
            .bool("guard_running", self.guard_alive)
            .opt_str("psi", self.guard_state.get("psi").map(String::as_str))
            .raw(
                "last_report",
                self.last_report
                    .as_ref()
                    .map(|(p, s)| Object::new().str("path", p).str("summary", s).finish())
                    .unwrap_or_else(|| "null".into()),
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
        ] {
            let _ = writeln!(
                s,
                "# HELP oom_ext_{k}_total {help}\n# TYPE oom_ext_{k}_total counter"
            );
            let _ = writeln!(s, "oom_ext_{k}_total {}", self.counter(k));
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

/// Writes `DIR/oom_ext.prom` atomically (temp file in the same directory,
/// then rename) so node_exporter never reads half a file.
pub fn write_textfile(
    dir: &std::path::Path,
    status: &Status,
) -> std::io::Result<std::path::PathBuf> {
    let path = dir.join("oom_ext.prom");
    write_atomic(&path, &status.prometheus())?;
    Ok(path)
}
