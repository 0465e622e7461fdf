//! Acting on previous OOM hangs (issue 17, `on_hang=`): how many boots in
//! a row ended in a hang, whose unit to mask, what not to touch, and the
//! record of what was done. Pure: histories in, a decision out. The I/O
//! (the flag, the archive, systemctl) is in [`apply`]. docs/policy.md.

#![forbid(unsafe_code)]

pub mod apply;

use crate::flag::Victim;
use crate::params::OnHang;
use std::fmt::Write as _;

/// One boot that ended in an OOM hang.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hang {
    /// The boot that hung (the flag's `boot_id`).
    pub boot_id: String,
    /// The boot whose report found it (`reported_boot_id`); `None` for the
    /// flag being looked at now, or an archive from before it was recorded.
    pub reported_in: Option<String>,
    /// The system unit of its top victim (see [`top_unit`]).
    pub top_unit: Option<String>,
}

/// The unit in the system manager a cgroup belongs to: the first path
/// component that is not a slice (`/system.slice/leak.service` →
/// `leak.service`; a user's processes give `user@1000.service`).
pub fn system_unit(cgroup: &str) -> Option<&str> {
    let c = cgroup
        .trim_start_matches('/')
        .split('/')
        .find(|c| !c.ends_with(".slice"))?;
    (c.ends_with(".service") || c.ends_with(".scope")).then_some(c)
}

/// The unit of the victim with the most memory (the first of equals),
/// among the victims whose unit is known.
pub fn top_unit(victims: &[Victim]) -> Option<String> {
    let mut best: Option<(&Victim, &str)> = None;
    for v in victims {
        let Some(u) = v.cgroup.as_deref().and_then(system_unit) else {
            continue;
        };
        if best.map_or(true, |(b, _)| v.rss_kb > b.rss_kb) {
            best = Some((v, u));
        }
    }
    best.map(|(_, u)| u.to_string())
}

/// Archived hangs are looked at back to this many.
pub const CHAIN_MAX: usize = 20;

/// The boots in a row that ended in a hang, newest first, starting with
/// `current` (the previous boot's flag): each one before it is the
/// archived hang whose report was made in the boot after it.
pub fn chain<'a>(current: &'a Hang, history: &'a [Hang]) -> Vec<&'a Hang> {
    let mut out = vec![current];
    while out.len() < CHAIN_MAX {
        let want = &out[out.len() - 1].boot_id;
        match history
            .iter()
            .find(|h| h.reported_in.as_deref() == Some(want.as_str()) && h.boot_id != *want)
        {
            Some(h) if !out.iter().any(|o| o.boot_id == h.boot_id) => out.push(h),
            _ => break,
        }
    }
    out
}

/// Why `unit` must not be masked, if it must not: the boot needs it, or it
/// is not a service the boot starts. `boot_needs` are the units
/// sysinit.target, basic.target and local-fs.target pull in.
pub fn refuse(unit: &str, boot_needs: &[String]) -> Option<String> {
    let why = if !crate::policy::load::valid_unit(unit) || !unit.ends_with(".service") {
        "only a service is masked (a scope or slice is not started by the boot)"
    } else if unit.starts_with("oom-ext") {
        "it is oom_ext's own unit"
    } else if unit.starts_with("systemd-")
        || unit.starts_with("dbus")
        || unit.contains("getty")
        || unit.starts_with("user@")
        || unit.starts_with("user-runtime-dir@")
    {
        "the boot needs it (systemd-*, dbus*, *getty*, user@*, user-runtime-dir@*)"
    } else if boot_needs.iter().any(|n| n == unit) {
        "sysinit.target, basic.target or local-fs.target pulls it in"
    } else {
        return None;
    };
    Some(why.to_string())
}

/// What this boot does about the hangs before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Report only (`on_hang=report`, or fewer hangs in a row than needed).
    Report,
    Mask(String),
    Rescue,
    /// `mask-unit` was due but is not done, and why.
    Refuse {
        unit: Option<String>,
        why: String,
    },
}

/// The decision for `chain` (newest first, from [`chain`]) under
/// `on_hang` after `boots` hangs in a row. Masking needs the same unit as
/// the top victim of each of those hangs: a service that leaks every boot.
pub fn decide(on_hang: OnHang, boots: u32, chain: &[&Hang], boot_needs: &[String]) -> Decision {
    if on_hang == OnHang::Report || chain.len() < boots as usize {
        return Decision::Report;
    }
    if on_hang == OnHang::Rescue {
        return Decision::Rescue;
    }
    let last = &chain[..boots as usize];
    let Some(unit) = last[0].top_unit.clone() else {
        return Decision::Refuse {
            unit: None,
            why: "the top victim's unit of the last hang is not known".into(),
        };
    };
    if let Some(other) = last.iter().find(|h| h.top_unit.as_deref() != Some(&unit)) {
        return Decision::Refuse {
            why: format!(
                "the top victims were not all in {unit} (boot {}: {})",
                other.boot_id,
                other.top_unit.as_deref().unwrap_or("unit unknown")
            ),
            unit: Some(unit),
        };
    }
    match refuse(&unit, boot_needs) {
        Some(why) => Decision::Refuse {
            unit: Some(unit),
            why,
        },
        None => Decision::Mask(unit),
    }
}

/// What `/run/oom-ext/on-hang` holds: this boot's decision, for the
/// report, `status` and `on-hang undo`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// `report`, `mask-unit`, `rescue` or `refused`.
    pub action: String,
    pub unit: Option<String>,
    /// Boots in a row that ended in a hang (this one's predecessors).
    pub hang_boots: u32,
    /// `on_hang` and `on_hang_boots` in effect.
    pub on_hang: String,
    pub on_hang_boots: u32,
    /// The hung boots, newest first.
    pub boots: Vec<String>,
    pub reason: Option<String>,
    /// The mask's path (absolute, without the root).
    pub path: Option<String>,
    pub time: u64,
    /// When `on-hang undo` undid it.
    pub undone: Option<u64>,
}

/// One value on one line.
fn one_line(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl Record {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "action={}", one_line(&self.action));
        if let Some(u) = &self.unit {
            let _ = writeln!(s, "unit={}", one_line(u));
        }
        let _ = writeln!(s, "hang_boots={}", self.hang_boots);
        let _ = writeln!(s, "on_hang={}", one_line(&self.on_hang));
        let _ = writeln!(s, "on_hang_boots={}", self.on_hang_boots);
        let _ = writeln!(s, "boots={}", one_line(&self.boots.join(" ")));
        if let Some(r) = &self.reason {
            let _ = writeln!(s, "reason={}", one_line(r));
        }
        if let Some(p) = &self.path {
            let _ = writeln!(s, "path={}", one_line(p));
        }
        let _ = writeln!(s, "time={}", self.time);
        if let Some(t) = self.undone {
            let _ = writeln!(s, "undone={t}");
        }
        s
    }

    /// `None` when there is no `action=` line.
    pub fn parse(text: &str) -> Option<Record> {
        let mut r = Record::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "action" => r.action = v.to_string(),
                "unit" => r.unit = Some(v.to_string()),
                "hang_boots" => r.hang_boots = v.parse().unwrap_or(0),
                "on_hang" => r.on_hang = v.to_string(),
                "on_hang_boots" => r.on_hang_boots = v.parse().unwrap_or(0),
                "boots" => r.boots = v.split_whitespace().map(String::from).collect(),
                "reason" => r.reason = Some(v.to_string()),
                "path" => r.path = Some(v.to_string()),
                "time" => r.time = v.parse().unwrap_or(0),
                "undone" => r.undone = v.parse().ok(),
                _ => {}
            }
        }
        (!r.action.is_empty()).then_some(r)
    }

    /// One line for logs, the report and `status`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "on_hang={} after {} boot(s): {} hang boot(s) in a row",
            self.on_hang, self.on_hang_boots, self.hang_boots
        );
        let unit = self.unit.as_deref().unwrap_or("?");
        match self.action.as_str() {
            "mask-unit" => {
                let _ = write!(s, "; masked {unit} for this boot");
            }
            "rescue" => s.push_str("; booted into rescue.target"),
            "refused" => {
                let _ = write!(
                    s,
                    "; not masking {unit}: {}",
                    self.reason.as_deref().unwrap_or("?")
                );
            }
            _ => s.push_str("; reported only"),
        }
        if let Some(t) = self.undone {
            let _ = write!(s, " (undone at {})", crate::log::iso8601(t));
        } else if matches!(self.action.as_str(), "mask-unit" | "rescue") {
            s.push_str(" (undo: oom-ext on-hang undo)");
        }
        s
    }

    pub fn json(&self) -> String {
        crate::json::Object::new()
            .str("action", &self.action)
            .opt_str("unit", self.unit.as_deref())
            .num("hang_boots", u64::from(self.hang_boots))
            .str("on_hang", &self.on_hang)
            .num("on_hang_boots", u64::from(self.on_hang_boots))
            .raw(
                "boots",
                crate::json::array(self.boots.iter().map(|b| crate::json::string(b))),
            )
            .opt_str("reason", self.reason.as_deref())
            .opt_str("path", self.path.as_deref())
            .num("time", self.time)
            .opt_num("undone", self.undone)
            .str("summary", &self.summary())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hang(boot: &str, seen_in: Option<&str>, unit: Option<&str>) -> Hang {
        Hang {
            boot_id: boot.into(),
            reported_in: seen_in.map(String::from),
            top_unit: unit.map(String::from),
        }
    }

    #[test]
    fn units_of_cgroups() {
        assert_eq!(
            system_unit("/system.slice/leak.service"),
            Some("leak.service")
        );
        assert_eq!(
            system_unit("/system.slice/system-getty.slice/getty@tty1.service"),
            Some("getty@tty1.service")
        );
        assert_eq!(
            system_unit("/user.slice/user-1000.slice/user@1000.service/app.slice/x.service"),
            Some("user@1000.service")
        );
        assert_eq!(system_unit("/init.scope"), Some("init.scope"));
        assert_eq!(system_unit("/"), None);
        assert_eq!(system_unit("/system.slice"), None);
        assert_eq!(system_unit("/machine/qemu"), None);
    }

    #[test]
    fn the_top_victim_is_the_biggest_with_a_unit() {
        let v = |pid, rss, cg: Option<&str>| Victim {
            pid,
            comm: "x".into(),
            rss_kb: rss,
            cgroup: cg.map(String::from),
        };
        let vs = [
            v(1, 900, None),
            v(2, 100, Some("/system.slice/small.service")),
            v(3, 500, Some("/system.slice/leak.service")),
            v(4, 500, Some("/system.slice/other.service")),
        ];
        assert_eq!(top_unit(&vs).as_deref(), Some("leak.service"));
        assert_eq!(top_unit(&vs[..1]), None);
        assert_eq!(top_unit(&[]), None);
    }

    #[test]
    fn consecutive_hangs_are_chained_by_the_reporting_boot() {
        // b1 hung, reported in b2; b2 hung, reported in b3; b3 hung (now).
        // b0 hung too but was reported in x (a boot without a hang between).
        let hist = [
            hang("b0", Some("x"), Some("leak.service")),
            hang("b1", Some("b2"), Some("leak.service")),
            hang("b2", Some("b3"), Some("leak.service")),
            hang("xx", None, None),
        ];
        let now = hang("b3", None, Some("leak.service"));
        let c = chain(&now, &hist);
        let ids: Vec<&str> = c.iter().map(|h| h.boot_id.as_str()).collect();
        assert_eq!(ids, ["b3", "b2", "b1"]);
        // Alone: one boot.
        assert_eq!(chain(&now, &[]).len(), 1);
        // A loop in a damaged archive ends.
        let looped = [hang("b3", Some("b2"), None), hang("b2", Some("b3"), None)];
        assert_eq!(chain(&hang("b3", None, None), &looped).len(), 2);
    }

    #[test]
    fn decisions() {
        let a = hang("b2", None, Some("leak.service"));
        let b = hang("b1", Some("b2"), Some("leak.service"));
        let other = hang("b1", Some("b2"), Some("other.service"));
        let unknown = hang("b2", None, None);
        let none: &[String] = &[];
        use Decision::*;
        assert_eq!(
            decide(OnHang::MaskUnit, 2, &[&a, &b], none),
            Mask("leak.service".into())
        );
        assert_eq!(decide(OnHang::MaskUnit, 2, &[&a], none), Report);
        assert_eq!(
            decide(OnHang::MaskUnit, 1, &[&a], none),
            Mask("leak.service".into())
        );
        assert_eq!(decide(OnHang::Report, 1, &[&a, &b], none), Report);
        assert_eq!(decide(OnHang::Rescue, 2, &[&a, &b], none), Rescue);
        assert_eq!(decide(OnHang::Rescue, 3, &[&a, &b], none), Report);
        assert!(matches!(
            decide(OnHang::MaskUnit, 2, &[&a, &other], none),
            Refuse { unit: Some(u), why } if u == "leak.service" && why.contains("other.service")
        ));
        assert!(matches!(
            decide(OnHang::MaskUnit, 1, &[&unknown], none),
            Refuse { unit: None, .. }
        ));
        let needs = ["leak.service".to_string()];
        assert!(matches!(
            decide(OnHang::MaskUnit, 2, &[&a, &b], &needs),
            Refuse { why, .. } if why.contains("sysinit.target")
        ));
    }

    #[test]
    fn what_is_never_masked() {
        for u in [
            "systemd-journald.service",
            "dbus.service",
            "dbus-broker.service",
            "getty@tty1.service",
            "serial-getty@ttyS0.service",
            "oom-ext-guard.service",
            "user@1000.service",
            "user-runtime-dir@1000.service",
            "session-1.scope",
            "init.scope",
            "system.slice",
            "../x.service",
            "",
        ] {
            assert!(refuse(u, &[]).is_some(), "{u}");
        }
        assert_eq!(refuse("leak.service", &[]), None);
        assert!(refuse("leak.service", &["leak.service".into()]).is_some());
    }

    #[test]
    fn the_record_round_trips() {
        let r = Record {
            action: "mask-unit".into(),
            unit: Some("leak.service".into()),
            hang_boots: 2,
            on_hang: "mask-unit".into(),
            on_hang_boots: 2,
            boots: vec!["b2".into(), "b1".into()],
            reason: None,
            path: Some("/run/systemd/system.control/leak.service".into()),
            time: 1700000000,
            undone: None,
        };
        assert_eq!(Record::parse(&r.to_text()), Some(r.clone()));
        assert_eq!(
            r.summary(),
            "on_hang=mask-unit after 2 boot(s): 2 hang boot(s) in a row; masked leak.service for this boot (undo: oom-ext on-hang undo)"
        );
        assert!(r
            .json()
            .starts_with(r#"{"action":"mask-unit","unit":"leak.service","hang_boots":2,"#));
        assert_eq!(Record::parse("unit=x\n"), None);
        let mut bad = r.clone();
        bad.reason = Some("a\nb".into());
        assert_eq!(
            Record::parse(&bad.to_text()).unwrap().reason.as_deref(),
            Some("a?b")
        );
    }
}
