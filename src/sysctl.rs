//! Reading and writing sysctls under `/proc/sys` (under a [`Root`]).

#![forbid(unsafe_code)]

use crate::root::Root;
use std::io;

/// `vm.oom_ext.bufsize` → `proc/sys/vm/oom_ext/bufsize`.
pub fn path(root: &Root, name: &str) -> std::path::PathBuf {
    root.join(format!("proc/sys/{}", name.replace('.', "/")))
}

/// Reads a sysctl inside the root (capped, never blocking on a FIFO).
pub fn read(root: &Root, name: &str) -> io::Result<String> {
    let b = crate::rootfs::read(root, &format!("proc/sys/{}", name.replace('.', "/")), 4096)?;
    let mut s = String::from_utf8(b)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))?;
    s.truncate(s.trim_end().len());
    Ok(s)
}

/// Writes without creating: a sysctl that does not exist is an error.
pub fn write(root: &Root, name: &str, value: &str) -> io::Result<()> {
    let p = format!("proc/sys/{}", name.replace('.', "/"));
    Ok(crate::rootfs::write_existing(
        root,
        &p,
        format!("{value}\n").as_bytes(),
    )?)
}

/// Parses an integer sysctl value (`kernel.panic` may be negative).
pub fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() || t.len() > 20 {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_values_from_hostile_text() {
        assert_eq!(parse_int("0\n"), Some(0));
        assert_eq!(parse_int(" -1 "), Some(-1));
        assert_eq!(parse_int("10"), Some(10));
        for bad in [
            "",
            "\n",
            "x",
            "1 2",
            "99999999999999999999999",
            "1\0",
            "0x1",
        ] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_map_to_proc_sys() {
        assert_eq!(
            path(&Root::new("/r"), "vm.oom_ext.bufsize"),
            std::path::PathBuf::from("/r/proc/sys/vm/oom_ext/bufsize")
        );
    }
}
