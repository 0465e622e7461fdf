//! The run-time configuration, read the same way by guard, report and
//! status: the mode and parameters `init` decided (`/run/oom-ext/mode`,
//! `/run/oom-ext/params`, else the command line), and the guard's state
//! file, written and parsed here.

#![forbid(unsafe_code)]

use crate::params::{Params, DEFAULT_FLAG};
use crate::root::Root;
use crate::{cmdline, paths, rootfs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Kernel,
    Fallback,
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Kernel => "kernel",
            Mode::Fallback => "fallback",
            Mode::Off => "off",
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim() {
            "kernel" => Some(Mode::Kernel),
            "fallback" => Some(Mode::Fallback),
            "off" => Some(Mode::Off),
            _ => None,
        }
    }
}

/// The configuration in effect.
#[derive(Debug, Clone)]
pub struct Config {
    /// The mode `init` recorded, if it did.
    pub recorded_mode: Option<Mode>,
    pub params: Params,
    /// Lines of a damaged params file that were skipped.
    pub problems: Vec<String>,
}

impl Config {
    /// `/run/oom-ext/{mode,params}`; without the params file, the command
    /// line as `init` would read it.
    pub fn load(root: &Root) -> Config {
        let (params, problems) = match recorded_params(root) {
            Some(r) => r,
            None => (cmdline_params(root), Vec::new()),
        };
        let recorded_mode = rootfs::read_small(root, paths::MODE)
            .and_then(|m| String::from_utf8(m).ok())
            .and_then(|m| Mode::parse(&m));
        Config {
            recorded_mode,
            params,
            problems,
        }
    }

    /// The recorded mode, else what the machine shows: off when disabled,
    /// kernel with the module's status file, fallback while a guard runs.
    pub fn mode(&self, module_present: bool, guard_running: bool) -> Mode {
        match self.recorded_mode {
            Some(m) => m,
            None if !self.params.enabled => Mode::Off,
            None if module_present => Mode::Kernel,
            None if guard_running => Mode::Fallback,
            None => Mode::Off,
        }
    }

    /// What `init` records for guard, report and status; inside the root,
    /// so a symlinked /run/oom-ext cannot lead out of it.
    pub fn record(root: &Root, mode: Mode, params: &Params) -> Result<(), rootfs::Error> {
        rootfs::create_dir_all(root, paths::RUN_DIR, 0o755)?;
        rootfs::replace(root, paths::PARAMS, params.to_file().as_bytes(), 0o644)?;
        rootfs::replace(
            root,
            paths::MODE,
            format!("{}\n", mode.as_str()).as_bytes(),
            0o644,
        )
    }
}

/// `/run/oom-ext/params` if it is there, with the lines it skipped.
pub fn recorded_params(root: &Root) -> Option<(Params, Vec<String>)> {
    let (p, problems) = recorded_params_over(root, &Params::default())?;
    Some((
        p,
        problems
            .into_iter()
            .map(|pr| format!("{}: {pr}", paths::PARAMS))
            .collect(),
    ))
}

/// `/run/oom-ext/params` read over `base` ([`cmdline::params_over`]: a bad
/// value keeps the value of `base`), read capped and without blocking.
pub fn recorded_params_over(root: &Root, base: &Params) -> Option<(Params, Vec<String>)> {
    let text = rootfs::read_small(root, paths::PARAMS)?;
    Some(cmdline::params_over(base, &text))
}

/// The parameters the command line asks for (its diagnostics are init's).
pub fn cmdline_params(root: &Root) -> Params {
    cmdline::parse(rootfs::read_small(root, paths::CMDLINE).unwrap_or_default()).0
}

/// Crash-flag paths to look at, in order: this boot's recorded
/// parameters, the command line, the default. Each was checked by the
/// parameter rules.
pub fn flag_candidates(root: &Root) -> Vec<String> {
    let mut v = Vec::new();
    if let Some((p, _)) = recorded_params(root) {
        v.push(p.crashflag_name);
    }
    if let Some(t) = rootfs::read_small(root, paths::CMDLINE) {
        v.push(cmdline::parse(&t).0.crashflag_name);
    }
    v.push(DEFAULT_FLAG.to_string());
    let mut out: Vec<String> = Vec::new();
    for c in v {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The guard's counters: the machine counts them (`guard::machine`),
/// `guard.state` holds them, status shows them, all under these names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub oom_events: u64,
    pub releases: u64,
    pub rearms: u64,
    pub stall_events: u64,
    pub kills: u64,
    pub victims: u64,
    /// Kills at a memory cgroup's limit (not system OOMs).
    pub memcg_kills: u64,
}

impl Counters {
    /// The names, in the order of the state file and of status output.
    pub const NAMES: [&'static str; 7] = [
        "oom_events",
        "releases",
        "rearms",
        "stall_events",
        "kills",
        "victims",
        "memcg_kills",
    ];

    fn slot(&mut self, name: &str) -> Option<&mut u64> {
        Some(match name {
            "oom_events" => &mut self.oom_events,
            "releases" => &mut self.releases,
            "rearms" => &mut self.rearms,
            "stall_events" => &mut self.stall_events,
            "kills" => &mut self.kills,
            "victims" => &mut self.victims,
            "memcg_kills" => &mut self.memcg_kills,
            _ => return None,
        })
    }

    /// A counter by its name in the file and in status output.
    pub fn get(&self, name: &str) -> Option<u64> {
        let mut c = *self;
        c.slot(name).map(|v| *v)
    }
}

/// `/run/oom-ext/guard.state`: the guard's own view, one `key=value` a line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardState {
    pub pid: u32,
    pub mode: String,
    /// armed | oom | recovering | off (the module's word in kernel mode).
    pub state: String,
    pub buffer_bytes: u64,
    pub counters: Counters,
    /// on | off | unavailable.
    pub psi: String,
    pub module_state: String,
}

/// Longest value kept from a state file (it is ours, but may be damaged).
const VALUE_MAX: usize = 256;

impl GuardState {
    pub fn to_text(&self) -> String {
        let mut t = format!(
            "pid={}\nmode={}\nstate={}\nbuffer_bytes={}\n",
            self.pid, self.mode, self.state, self.buffer_bytes,
        );
        for name in Counters::NAMES {
            let v = self.counters.get(name).unwrap_or(0);
            t.push_str(&format!("{name}={v}\n"));
        }
        t.push_str(&format!(
            "psi={}\nmodule_state={}\n",
            self.psi, self.module_state
        ));
        t
    }

    /// Reads what [`GuardState::to_text`] wrote; unknown keys, bad numbers
    /// and lines that are not UTF-8 are skipped (they read as 0 / empty).
    pub fn parse(text: &[u8]) -> GuardState {
        let mut s = GuardState::default();
        let lines = text
            .split(|&b| b == b'\n')
            .filter_map(|l| std::str::from_utf8(l).ok());
        for (k, v) in lines.filter_map(|l| l.split_once('=')) {
            let v: String = v.chars().take(VALUE_MAX).collect();
            let n = || v.parse::<u64>().unwrap_or(0);
            match k {
                "pid" => s.pid = v.parse().unwrap_or(0),
                "mode" => s.mode = v,
                "state" => s.state = v,
                "buffer_bytes" => s.buffer_bytes = n(),
                "psi" => s.psi = v,
                "module_state" => s.module_state = v,
                _ => {
                    if let Some(c) = s.counters.slot(k) {
                        *c = n();
                    }
                }
            }
        }
        s
    }

    pub fn read(root: &Root) -> Option<GuardState> {
        rootfs::read_small(root, paths::GUARD_STATE).map(|t| GuardState::parse(&t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_state_round_trips_and_survives_damage() {
        let s = GuardState {
            pid: 42,
            mode: "fallback".into(),
            state: "oom".into(),
            buffer_bytes: 1 << 25,
            counters: Counters {
                oom_events: 1,
                releases: 2,
                rearms: 3,
                stall_events: 4,
                kills: 5,
                victims: 6,
                memcg_kills: 7,
            },
            psi: "on".into(),
            module_state: "none".into(),
        };
        // The format status and the tests read, byte for byte.
        assert_eq!(
            s.to_text(),
            "pid=42\nmode=fallback\nstate=oom\nbuffer_bytes=33554432\noom_events=1\nreleases=2\nrearms=3\nstall_events=4\nkills=5\nvictims=6\nmemcg_kills=7\npsi=on\nmodule_state=none\n"
        );
        assert_eq!(GuardState::parse(s.to_text().as_bytes()), s);
        let d =
            GuardState::parse(b"kills=abc\ngarbage\nfuture=1\nstate=x\0y\nmode=\xff\nvictims=7");
        assert_eq!(
            (d.counters.kills, d.counters.victims, d.state.as_str()),
            (0, 7, "x\0y")
        );
        assert_eq!(d.mode, "");
    }

    #[test]
    fn every_counter_name_has_its_own_field() {
        let mut c = Counters::default();
        for (i, name) in Counters::NAMES.iter().enumerate() {
            *c.slot(name).unwrap() = i as u64 + 1;
        }
        let got: Vec<u64> = Counters::NAMES.iter().map(|n| c.get(n).unwrap()).collect();
        assert_eq!(got, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(c.get("pid"), None);
    }

    #[test]
    fn mode_is_the_recorded_one_else_what_the_machine_shows() {
        let c = |recorded, enabled| Config {
            recorded_mode: recorded,
            params: Params {
                enabled,
                ..Params::default()
            },
            problems: Vec::new(),
        };
        assert_eq!(
            c(Some(Mode::Fallback), true).mode(true, true),
            Mode::Fallback
        );
        assert_eq!(c(None, false).mode(true, true), Mode::Off);
        assert_eq!(c(None, true).mode(true, false), Mode::Kernel);
        assert_eq!(c(None, true).mode(false, true), Mode::Fallback);
        assert_eq!(c(None, true).mode(false, false), Mode::Off);
    }
}
