//! The bounded archive of next-boot reports under /var/lib/oom-ext/history:
//! only files the project named itself (`TTTTTTTTTT[-N].json`, regular
//! files) count; they are ordered and pruned by their own modification
//! time, and the report just written is never the one pruned.

use crate::paths;
use crate::root::Root;
use crate::rootfs::{self, Dir};
use std::ffi::CString;

pub const KEEP: usize = 20;
/// An archived report is read back (by `status`) only up to this size.
pub const READ_MAX: usize = 1 << 20;

/// One archived report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub mtime: i64,
    pub mtime_ns: i64,
}

impl Entry {
    /// Its path under the root, as shown to users.
    pub fn path(&self) -> String {
        format!("/{}/{}", paths::HISTORY, self.name)
    }
}

/// `TTTTTTTTTT[-N].json`: ten digits, an optional decimal suffix.
pub fn is_ours(name: &[u8]) -> bool {
    let Some(stem) = name.strip_suffix(b".json") else {
        return false;
    };
    let (t, n) = match stem.iter().position(|&b| b == b'-') {
        Some(i) => (&stem[..i], Some(&stem[i + 1..])),
        None => (stem, None),
    };
    t.len() == 10
        && t.iter().all(u8::is_ascii_digit)
        && n.map_or(true, |n| {
            !n.is_empty() && n.len() <= 9 && n.iter().all(u8::is_ascii_digit)
        })
}

/// (time, suffix) of one of our names.
fn name_key(name: &str) -> (u64, u64) {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let (t, n) = stem.split_once('-').unwrap_or((stem, "0"));
    (t.parse().unwrap_or(0), n.parse().unwrap_or(0))
}

fn list(dir: &Dir) -> Vec<Entry> {
    let mut v: Vec<Entry> = dir
        .entries()
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, st)| is_ours(n) && rootfs::is_regular(st))
        .map(|(n, st)| Entry {
            name: String::from_utf8_lossy(&n).into_owned(),
            mtime: st.st_mtime,
            mtime_ns: st.st_mtime_nsec,
        })
        .collect();
    // Ties (a coarse clock) go by the name's time, then its suffix.
    v.sort_by_key(|e| (e.mtime, e.mtime_ns, name_key(&e.name)));
    v
}

/// Archived reports, oldest first by their own modification time.
pub fn entries(root: &Root) -> Vec<Entry> {
    match rootfs::open_dir(root, paths::HISTORY) {
        Ok(d) => list(&d),
        Err(_) => Vec::new(),
    }
}

/// The archived report whose content starts with `prefix`, if any (only
/// the first bytes of each are read).
pub fn find_prefix(root: &Root, prefix: &str) -> Option<Entry> {
    entries(root).into_iter().find(|e| {
        rootfs::read_head(root, &e.path(), prefix.len()).is_ok_and(|c| c.bytes == prefix.as_bytes())
    })
}

/// Stores `json` as a new archived report named after `unix` and keeps
/// the newest [`KEEP`] (never pruning the one written). Returns its path.
pub fn archive(root: &Root, unix: u64, json: &str) -> std::io::Result<String> {
    let dir = rootfs::create_dir_all(root, paths::HISTORY, 0o755)?;
    let base = format!("{unix:010}");
    // The first free name (whatever kind of file holds a taken one).
    let mut name = format!("{base}.json");
    let mut n = 0u32;
    loop {
        let c = CString::new(name.clone()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        match dir.lstat(&c) {
            Err(rootfs::Error::Missing) => break,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        n += 1;
        if n > 1000 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("no free name for {base}.json"),
            ));
        }
        name = format!("{base}-{n}.json");
    }
    let c = CString::new(name.clone()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    dir.replace(&c, format!("{json}\n").as_bytes(), 0o644)?;
    let others: Vec<Entry> = list(&dir).into_iter().filter(|e| e.name != name).collect();
    if others.len() + 1 > KEEP {
        for e in &others[..others.len() + 1 - KEEP] {
            let c = CString::new(e.name.clone()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
            dir.remove(&c)?;
        }
    }
    Ok(format!("/{}/{name}", paths::HISTORY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_project_names_count() {
        for ok in ["1700000000.json", "0000000001-3.json"] {
            assert!(is_ours(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "x.json",
            "170000000.json",
            "1700000000-.json",
            "1700000000-a.json",
            "1700000000.json.tmp",
            ".1700000000.json.0123.tmp",
            "17000000000.json",
        ] {
            assert!(!is_ours(bad.as_bytes()), "{bad}");
        }
    }
}
