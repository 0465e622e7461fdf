//! `oom-ext on-hang apply|undo`: the I/O around [`super::decide`]. `apply`
//! runs early in the boot (oom-ext-on-hang.service, before sysinit.target,
//! so before any ordinary service starts): it reads the previous boot's
//! crash flag (the report, later in the boot, archives it) and the archived
//! reports, decides, masks or isolates, and records what it did in
//! `/run/oom-ext/on-hang`. `undo` takes it back.

use super::{chain, decide, top_unit, Decision, Hang, Record, CHAIN_MAX};
use crate::flag::Victim;
use crate::json_read::{self, Value};
use crate::log::{unix_now, Log};
use crate::params::{OnHang, Params};
use crate::root::Root;
use crate::{cmdline, history, paths, report, rootfs};
use std::ffi::CString;
use std::process::Command;

/// This boot's decision.
pub const RECORD: &str = "run/oom-ext/on-hang";
/// Where the mask goes: the runtime directory that wins over
/// /etc/systemd/system (a mask in /run/systemd/system, where `systemctl
/// mask --runtime` puts it, loses to a unit file in /etc).
pub const MASK_DIR: &str = "run/systemd/system.control";
/// The units whose dependencies are never masked.
const BOOT_TARGETS: &[&str] = &["sysinit.target", "basic.target", "local-fs.target"];

/// `on_hang` and `on_hang_boots` in effect: `/etc/oom-ext/policy.conf` (and
/// policy.d), then the command line when it names them (one boot's
/// override: `oom_ext.on_hang=report`).
pub fn settings(root: &Root) -> (OnHang, u32) {
    let (policy, _) = crate::policy::load::load_policy(root);
    let mut p = Params::default();
    if let Some(v) = policy.settings.on_hang {
        p.on_hang = v;
    }
    if let Some(v) = policy.settings.on_hang_boots {
        p.on_hang_boots = v;
    }
    if let Some(line) = rootfs::read_small(root, paths::CMDLINE) {
        let (cp, _) = cmdline::parse(&line);
        for (k, _) in cmdline::args(&line) {
            match k.as_slice() {
                b"oom_ext.on_hang" => p.on_hang = cp.on_hang,
                b"oom_ext.on_hang_boots" => p.on_hang_boots = cp.on_hang_boots,
                _ => {}
            }
        }
    }
    (p.on_hang, p.on_hang_boots)
}

/// This boot's decision, if `apply` recorded one.
pub fn record(root: &Root) -> Option<Record> {
    let b = rootfs::read_small(root, RECORD)?;
    Record::parse(std::str::from_utf8(&b).ok()?)
}

fn write_record(root: &Root, r: &Record) -> Result<(), String> {
    rootfs::create_dir_all(root, paths::RUN_DIR, 0o755).map_err(|e| e.to_string())?;
    rootfs::replace(root, RECORD, r.to_text().as_bytes(), 0o644).map_err(|e| e.to_string())
}

/// The previous boot's hang: the first crash flag that parses.
fn current(root: &Root) -> Option<Hang> {
    let now = unix_now();
    report::candidates(root).iter().find_map(|f| {
        let d = report::inspect(root, f, now).ok()??.data?;
        Some(Hang {
            boot_id: d.get("boot_id").unwrap_or("unknown").to_string(),
            reported_in: None,
            top_unit: top_unit(&d.victims),
        })
    })
}

/// An archived report as a hang (flag reports only: a pstore record
/// names no boot).
fn archived_hang(v: &Value) -> Option<Hang> {
    let victims: Vec<Victim> = v
        .get("victims")
        .map(Value::arr)
        .unwrap_or_default()
        .iter()
        .map(|x| Victim {
            pid: x.get("pid").and_then(Value::u64).unwrap_or(0) as u32,
            comm: x.get("comm").and_then(Value::str).unwrap_or("").into(),
            rss_kb: x.get("rss_kb").and_then(Value::u64).unwrap_or(0),
            cgroup: x.get("cgroup").and_then(Value::str).map(String::from),
        })
        .collect();
    Some(Hang {
        boot_id: v.get("boot_id")?.str()?.to_string(),
        reported_in: v
            .get("reported_boot_id")
            .and_then(Value::str)
            .map(String::from),
        top_unit: top_unit(&victims),
    })
}

/// The archived hangs, newest first.
fn archived(root: &Root) -> Vec<Hang> {
    history::entries(root)
        .iter()
        .rev()
        .take(2 * CHAIN_MAX)
        .filter_map(|e| {
            let b = rootfs::read(root, &e.path(), history::READ_MAX).ok()?;
            archived_hang(&json_read::parse(std::str::from_utf8(&b).ok()?)?)
        })
        .collect()
}

/// Runs systemctl (the real root only); its stdout, or why not.
fn systemctl(root: &Root, args: &[&str]) -> Result<String, String> {
    if !root.is_system() {
        return Err("--root is not /: systemctl not run".into());
    }
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| format!("systemctl {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "systemctl {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Unit names in `systemctl list-dependencies --plain` output.
pub fn unit_names(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| {
            crate::policy::load::valid_unit(w)
                || [
                    ".target", ".socket", ".mount", ".path", ".timer", ".swap", ".device", ".slice",
                ]
                .iter()
                .any(|s| w.ends_with(s))
        })
        .map(String::from)
        .collect()
}

/// What the boot's base targets pull in; under a fake root, nothing.
fn boot_needs(root: &Root) -> Result<Vec<String>, String> {
    if !root.is_system() {
        return Ok(Vec::new());
    }
    let mut args = vec!["list-dependencies", "--all", "--plain", "--no-pager"];
    args.extend(BOOT_TARGETS);
    systemctl(root, &args).map(|t| unit_names(&t))
}

/// Masks `unit` for this boot: `MASK_DIR/UNIT -> /dev/null`, then a
/// daemon-reload (real root). The mask's path.
fn mask(root: &Root, unit: &str) -> Result<String, String> {
    let dir = rootfs::create_dir_all(root, MASK_DIR, 0o755).map_err(|e| e.to_string())?;
    let name = CString::new(unit).map_err(|_| "bad unit name".to_string())?;
    let path = format!("/{MASK_DIR}/{unit}");
    match dir.lstat(&name) {
        Err(rootfs::Error::Missing) => {
            dir.symlink("/dev/null", &name)
                .map_err(|e| format!("cannot create {path}: {e}"))?;
        }
        Ok(_) if dir.read_link(&name).is_ok_and(|t| t == b"/dev/null") => {}
        Ok(_) => return Err(format!("{path} exists and is not a mask: left alone")),
        Err(e) => return Err(format!("{path}: {e}")),
    }
    if root.is_system() {
        systemctl(root, &["daemon-reload"])?;
    }
    Ok(path)
}

/// Removes a mask `mask` made (a symlink to /dev/null, nothing else).
fn unmask(root: &Root, path: &str) -> Result<(), String> {
    let (dir, name) = rootfs::parent(root, path).map_err(|e| format!("{path}: {e}"))?;
    match dir.read_link(&name) {
        Ok(t) if t == b"/dev/null" => dir.remove(&name).map_err(|e| format!("{path}: {e}"))?,
        Ok(_) => return Err(format!("{path} is no longer oom_ext's mask: left alone")),
        Err(rootfs::Error::Missing) => {}
        Err(e) => return Err(format!("{path}: {e}, left alone")),
    }
    if root.is_system() {
        systemctl(root, &["daemon-reload"])?;
    }
    Ok(())
}

/// `oom-ext on-hang apply`: (exit code, text for stdout).
pub fn apply(root: &Root, log: &Log) -> (i32, String) {
    let Some(now) = current(root) else {
        return (0, "oom-ext: no crash flag: no OOM hang to act on\n".into());
    };
    let (on_hang, boots) = settings(root);
    let hist = archived(root);
    let hangs = chain(&now, &hist);
    let due = on_hang == OnHang::MaskUnit && hangs.len() >= boots as usize;
    let decision = match if due {
        boot_needs(root)
    } else {
        Ok(Vec::new())
    } {
        Ok(needs) => decide(on_hang, boots, &hangs, &needs),
        Err(e) => Decision::Refuse {
            unit: hangs[0].top_unit.clone(),
            why: format!("cannot tell what the boot needs: {e}"),
        },
    };
    let mut rec = Record {
        action: "report".into(),
        unit: hangs[0].top_unit.clone(),
        hang_boots: hangs.len() as u32,
        on_hang: on_hang.as_str().into(),
        on_hang_boots: boots,
        boots: hangs.iter().map(|h| h.boot_id.clone()).collect(),
        time: unix_now(),
        ..Record::default()
    };
    let mut code = 0;
    match decision {
        Decision::Report => {}
        Decision::Mask(unit) => {
            rec.unit = Some(unit.clone());
            match mask(root, &unit) {
                Ok(path) => {
                    rec.action = "mask-unit".into();
                    rec.path = Some(path);
                }
                Err(e) => {
                    rec.action = "refused".into();
                    rec.reason = Some(e);
                    code = 1;
                }
            }
        }
        Decision::Rescue => match systemctl(root, &["--no-block", "isolate", "rescue.target"]) {
            Ok(_) => rec.action = "rescue".into(),
            Err(e) if !root.is_system() => {
                rec.action = "rescue".into();
                rec.reason = Some(e);
            }
            Err(e) => {
                rec.action = "refused".into();
                rec.reason = Some(e);
                code = 1;
            }
        },
        Decision::Refuse { unit, why } => {
            rec.action = "refused".into();
            rec.unit = unit;
            rec.reason = Some(why);
        }
    }
    let line = rec.summary();
    match rec.action.as_str() {
        "report" => log.info(&line),
        "refused" => log.err(&line),
        _ => log.warn(&line),
    }
    if let Err(e) = write_record(root, &rec) {
        log.err(&format!("cannot write /{RECORD}: {e}"));
        code = 1;
    }
    (code, format!("oom-ext: {line}\n"))
}

/// `oom-ext on-hang undo`: (exit code, text).
pub fn undo(root: &Root, log: &Log) -> (i32, String) {
    let Some(mut rec) = record(root) else {
        return (
            0,
            "oom-ext: on_hang did nothing this boot: nothing to undo\n".into(),
        );
    };
    if rec.undone.is_some() {
        return (0, format!("oom-ext: already undone: {}\n", rec.summary()));
    }
    let done = match rec.action.as_str() {
        "mask-unit" => {
            // The mask's place follows from the unit; a record naming
            // another path (a permanent mask in /etc) is not obeyed.
            let unit = rec.unit.clone().unwrap_or_default();
            let path = format!("/{MASK_DIR}/{unit}");
            if !crate::policy::load::valid_unit(&unit)
                || rec.path.as_deref().is_some_and(|p| p != path)
            {
                Err(format!(
                    "the record names unit '{}' at '{}', not a mask of oom_ext's: left alone",
                    cmdline::escape_value(&unit),
                    cmdline::escape_value(rec.path.as_deref().unwrap_or(""))
                ))
            } else {
                unmask(root, &path).map(|()| {
                    format!(
                        "unmasked {unit} (removed {path}); start it with: systemctl start {unit}"
                    )
                })
            }
        }
        "rescue" => systemctl(root, &["--no-block", "default"])
            .or_else(|e| if root.is_system() { Err(e) } else { Ok(e) })
            .map(|_| "left rescue.target: default.target is being started".into()),
        _ => return (0, format!("oom-ext: nothing to undo: {}\n", rec.summary())),
    };
    match done {
        Ok(what) => {
            rec.undone = Some(unix_now());
            let line = format!("on_hang undone: {what}");
            log.warn(&line);
            if let Err(e) = write_record(root, &rec) {
                log.err(&format!("cannot write /{RECORD}: {e}"));
            }
            (0, format!("oom-ext: {line}\n"))
        }
        Err(e) => {
            let line = format!("on_hang undo failed: {e}");
            log.err(&line);
            (1, format!("oom-ext: {line}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_list_dependencies() {
        let t = "sysinit.target\n  dev-hugepages.mount\n  systemd-journald.service\n  ○ kmod-static-nodes.service\nbasic.target\n  -.slice\n";
        assert_eq!(
            unit_names(t),
            [
                "sysinit.target",
                "dev-hugepages.mount",
                "systemd-journald.service",
                "kmod-static-nodes.service",
                "basic.target",
                "-.slice"
            ]
        );
    }

    #[test]
    fn an_archived_report_is_a_hang() {
        let v = json_read::parse(
            r#"{"boot_id":"b1","reported_boot_id":"b2","victims":[{"pid":5,"comm":"x","rss_kb":10,"cgroup":"/system.slice/leak.service"}]}"#,
        )
        .unwrap();
        assert_eq!(
            archived_hang(&v),
            Some(Hang {
                boot_id: "b1".into(),
                reported_in: Some("b2".into()),
                top_unit: Some("leak.service".into())
            })
        );
        assert_eq!(
            archived_hang(&json_read::parse(r#"{"status":"ok"}"#).unwrap()),
            None
        );
    }
}
