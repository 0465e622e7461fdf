//! `oom-ext victims add|remove|list`: the run-time ordered list of seed
//! 004 (processes to kill first, in list order), kept in
//! `/run/oom-ext/victims` under the root. The guard reads the file at each
//! kill, so a change needs no signal.
//!
//! All words are checked before anything changes: one bad word is an error
//! and the list stays as it was. Writes are a locked read-modify-write
//! through [`crate::rootfs::replace`] (a temporary file renamed over the
//! list).
#![forbid(unsafe_code)]

use crate::policy::load::{load_list, parse_list, serialize_list, valid_unit, VICTIMS};
use crate::policy::proctable;
use crate::policy::rank::Listed;
use crate::root::Root;

const LOCK: &str = "run/oom-ext/victims.lock";

/// A command-line word as a list entry: a pid (of a running process: its
/// start time is recorded) or a unit name.
pub fn entry(root: &Root, word: &str) -> Result<Listed, String> {
    if let Ok(pid) = word.parse::<u32>() {
        let p = proctable::read_proc(root, pid, 4).ok_or(format!("no process {pid}"))?;
        return Ok(Listed::Pid {
            pid,
            start_time: Some(p.start_time),
        });
    }
    if valid_unit(word) {
        return Ok(Listed::Unit(word.to_string()));
    }
    Err(format!(
        "{word:?} is neither a pid nor a unit name (NAME.service or NAME.scope)"
    ))
}

fn same(a: &Listed, b: &Listed) -> bool {
    match (a, b) {
        (Listed::Pid { pid: x, .. }, Listed::Pid { pid: y, .. }) => x == y,
        (Listed::Unit(x), Listed::Unit(y)) => x == y,
        _ => false,
    }
}

/// Still a live entry: a unit, or the process recorded (not a later one
/// with its pid).
fn alive(root: &Root, l: &Listed) -> bool {
    match l {
        Listed::Unit(_) => true,
        Listed::Pid { pid, start_time } => proctable::read_proc(root, *pid, 4)
            .is_some_and(|p| start_time.map_or(true, |s| s == p.start_time)),
    }
}

/// `add`: appended in the order given; an entry already listed keeps its
/// place. Pids of processes gone meanwhile are dropped.
pub fn add(list: &[Listed], new: &[Listed]) -> Vec<Listed> {
    let mut out = list.to_vec();
    for n in new {
        if !out.iter().any(|l| same(l, n)) {
            out.push(n.clone());
        }
    }
    out
}

/// `remove`: every word must be in the list.
pub fn remove(list: &[Listed], gone: &[Listed]) -> Result<Vec<Listed>, String> {
    if let Some(g) = gone.iter().find(|g| !list.iter().any(|l| same(l, g))) {
        return Err(format!("{g} is not in the list"));
    }
    Ok(list
        .iter()
        .filter(|l| !gone.iter().any(|g| same(l, g)))
        .cloned()
        .collect())
}

fn write_list(root: &Root, list: &[Listed]) -> Result<(), crate::rootfs::Error> {
    crate::rootfs::replace(root, VICTIMS, serialize_list(list).as_bytes(), 0o644)
}

/// `oom-ext victims ACTION WORDS...`: (exit code, output). 0 done; 1 a
/// word was refused or the file could not be written (nothing changed);
/// 2 usage.
pub fn run(root: &Root, action: &str, words: &[String]) -> (i32, String) {
    match action {
        "list" if words.is_empty() => return (0, show(root)),
        "list" => return (2, "oom-ext victims list takes no words\n".into()),
        "add" | "remove" if !words.is_empty() => {}
        "add" | "remove" => {
            return (
                2,
                format!("oom-ext victims {action} needs PID or UNIT words\n"),
            )
        }
        _ => {
            return (
                2,
                format!("unknown action {action:?} (add, remove, list)\n"),
            )
        }
    }
    if let Err(e) = crate::rootfs::create_dir_all(root, crate::paths::RUN_DIR, 0o755) {
        return (
            1,
            format!("cannot create /{}: {e}\n", crate::paths::RUN_DIR),
        );
    }
    let lock = crate::rootfs::open_lock(root, LOCK, 0o600)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| e.to_string())
        });
    let _lock = match lock {
        Ok(l) => l,
        Err(e) => return (1, format!("cannot lock /{LOCK}: {e}\n")),
    };
    let (list, problem) = load_list(root);
    if let Some(p) = problem {
        return (1, format!("{p}: not changing it\n"));
    }
    let list: Vec<Listed> = list.into_iter().filter(|l| alive(root, l)).collect();
    let new = if action == "add" {
        let parsed: Result<Vec<Listed>, String> = words.iter().map(|w| entry(root, w)).collect();
        match parsed {
            Ok(n) => add(&list, &n),
            Err(e) => {
                return (
                    1,
                    format!("oom-ext victims add: {e}; the list is unchanged\n"),
                )
            }
        }
    } else {
        let parsed = words
            .iter()
            .map(|w| {
                parse_list(w)
                    .pop()
                    .filter(|_| !w.contains(char::is_whitespace))
                    .ok_or_else(|| format!("{w:?} is neither a pid nor a unit name"))
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|g| remove(&list, &g));
        match parsed {
            Ok(n) => n,
            Err(e) => {
                return (
                    1,
                    format!("oom-ext victims remove: {e}; the list is unchanged\n"),
                )
            }
        }
    };
    if new.len() > crate::policy::load::MAX_LISTED {
        return (
            1,
            format!(
                "the list holds at most {} entries; unchanged\n",
                crate::policy::load::MAX_LISTED
            ),
        );
    }
    match write_list(root, &new) {
        Ok(()) => (0, show(root)),
        Err(e) => (1, format!("cannot write /{VICTIMS}: {e}; unchanged\n")),
    }
}

/// The list, first victim first: `1. 1234 python3 (leak.service)`.
pub fn show(root: &Root) -> String {
    let (list, problem) = load_list(root);
    let mut out = String::new();
    if let Some(p) = problem {
        out.push_str(&format!("{p}\n"));
    }
    if list.is_empty() {
        out.push_str("the victims list is empty\n");
    }
    for (i, l) in list.iter().enumerate() {
        let what = match l {
            Listed::Unit(u) => format!("{} (unit)", crate::cmdline::escape_value(u)),
            Listed::Pid { pid, start_time } => match proctable::read_proc(root, *pid, 4) {
                Some(p) if start_time.map_or(true, |s| s == p.start_time) => {
                    // Any user can name a process: escaped for the terminal.
                    format!(
                        "{pid} {} ({})",
                        crate::cmdline::escape_value(&p.name),
                        crate::cmdline::escape_value(p.unit().unwrap_or("no unit"))
                    )
                }
                _ => format!("{pid} (gone)"),
            },
        };
        out.push_str(&format!("{}. {what}\n", i + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(p: u32) -> Listed {
        Listed::Pid {
            pid: p,
            start_time: Some(1),
        }
    }

    #[test]
    fn add_keeps_places_and_remove_needs_every_word() {
        let u = Listed::Unit("a.service".into());
        let l = add(&[pid(5)], &[u.clone(), pid(5), pid(7)]);
        assert_eq!(l, vec![pid(5), u.clone(), pid(7)]);
        assert_eq!(remove(&l, &[pid(5)]).unwrap(), vec![u.clone(), pid(7)]);
        assert!(remove(&l, &[pid(5), pid(9)])
            .unwrap_err()
            .contains("9 is not"));
    }

    fn scratch() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("oom-ext-victims-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("proc/42")).unwrap();
        std::fs::write(
            d.join("proc/42/stat"),
            "42 (leak) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 1 1 1",
        )
        .unwrap();
        std::fs::write(d.join("proc/42/cgroup"), "0::/system.slice/leak.service\n").unwrap();
        d
    }

    #[test]
    fn the_command_against_a_fake_root() {
        let d = scratch();
        let root = Root::new(&d);
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(run(&root, "list", &[]).1, "the victims list is empty\n");
        let (c, out) = run(&root, "add", &w(&["42", "x.service"]));
        assert_eq!(c, 0, "{out}");
        assert_eq!(out, "1. 42 leak (leak.service)\n2. x.service (unit)\n");
        assert_eq!(
            std::fs::read_to_string(d.join(VICTIMS)).unwrap(),
            "42 777\nx.service\n"
        );
        // One bad word: nothing changes.
        let (c, out) = run(&root, "add", &w(&["y.service", "43"]));
        assert_eq!(c, 1);
        assert!(out.contains("no process 43"), "{out}");
        let (c, _) = run(&root, "add", &w(&["bad/x.service"]));
        assert_eq!(c, 1);
        let (c, out) = run(&root, "remove", &w(&["42", "z.service"]));
        assert_eq!(c, 1, "{out}");
        let (c, out) = run(&root, "remove", &w(&["42"]));
        assert_eq!((c, out.as_str()), (0, "1. x.service (unit)\n"));
        assert_eq!(run(&root, "frob", &[]).0, 2);
        assert_eq!(run(&root, "add", &[]).0, 2);
        assert_eq!(run(&root, "list", &w(&["1"])).0, 2);
        // A listed process that is gone (its pid now someone else's) is
        // shown as gone and dropped at the next change.
        run(&root, "add", &w(&["42"]));
        std::fs::write(
            d.join("proc/42/stat"),
            "42 (other) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 1 1 1",
        )
        .unwrap();
        assert_eq!(
            run(&root, "list", &[]).1,
            "1. x.service (unit)\n2. 42 (gone)\n"
        );
        let (_, out) = run(&root, "add", &w(&["a.scope"]));
        assert_eq!(out, "1. x.service (unit)\n2. a.scope (unit)\n");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
