//! The crash flag: its `key=value` format (shared with the module), and
//! durable create / append / remove that never follow a symlink.

use crate::root::Root;
use crate::rootfs;
use std::fmt::Write as _;
use std::io;

/// Readers look at no more than this.
pub const READ_MAX: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Victim {
    pub pid: u32,
    pub comm: String,
    pub rss_kb: u64,
    /// Its cgroup v2 path when it was killed (`victim_cgroup=` line): the
    /// next boot's on_hang finds its unit there.
    pub cgroup: Option<String>,
}

/// A cgroup path longer than this is not recorded.
const CGROUP_MAX: usize = 512;

/// The `mem_available_kb=` line a guard appends when the OOM state begins.
pub fn mem_available_line(kb: u64) -> String {
    format!("mem_available_kb={kb}\n")
}

/// The line a guard appends before it reboots at gracetime.
pub const GRACETIME_REBOOT_LINE: &str = "gracetime_reboot=1\n";

impl Victim {
    /// `victim=PID COMM RSS_KB`; COMM may hold spaces, so PID is the first
    /// word and RSS_KB the last. Then `victim_cgroup=PID PATH` when the
    /// cgroup is known: a line of its own, so readers that know only
    /// `victim=` still read the victim.
    pub fn line(&self) -> String {
        let comm: String = self
            .comm
            .chars()
            .take(64)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        let mut s = format!(
            "victim={} {} {}\n",
            self.pid,
            if comm.is_empty() { "?" } else { &comm },
            self.rss_kb
        );
        if let Some(cg) = self.cgroup.as_deref().filter(|c| valid_cgroup(c)) {
            let _ = writeln!(s, "victim_cgroup={} {cg}", self.pid);
        }
        s
    }

    pub fn parse(v: &str) -> Option<Victim> {
        let (pid, rest) = v.split_once(' ')?;
        let (comm, rss) = rest.rsplit_once(' ')?;
        Some(Victim {
            pid: pid.parse().ok()?,
            comm: comm.to_string(),
            rss_kb: rss.parse().ok()?,
            cgroup: None,
        })
    }
}

/// An absolute cgroup path without control characters or spaces, short.
pub fn valid_cgroup(c: &str) -> bool {
    c.starts_with('/') && c.len() <= CGROUP_MAX && !c.chars().any(|ch| ch.is_control() || ch == ' ')
}

/// What a writer puts in a new flag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewFlag {
    pub source: String,
    pub started_unix: u64,
    pub started_boot_s: u64,
    pub kernel: String,
    pub boot_id: String,
    pub oom_events: u64,
    pub oom_calls: u64,
}

impl NewFlag {
    pub fn serialize(&self) -> String {
        let mut s = String::from("oom_ext_flag=1\n");
        let one = |v: &str| {
            v.chars()
                .filter(|c| !c.is_control())
                .take(128)
                .collect::<String>()
        };
        let _ = write!(
            s,
            "source={}\nstarted_unix={}\nstarted_boot_s={}\nkernel={}\nboot_id={}\noom_events={}\noom_calls={}\n",
            one(&self.source),
            self.started_unix,
            self.started_boot_s,
            one(&self.kernel),
            one(&self.boot_id),
            self.oom_events,
            self.oom_calls
        );
        s
    }
}

/// A flag's content as read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlagData {
    /// All `key=value` lines but victims, in order.
    pub fields: Vec<(String, String)>,
    pub victims: Vec<Victim>,
    /// Lines that are not `key=value` or bad victim lines.
    pub bad_lines: usize,
}

impl FlagData {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.parse().ok())
    }
}

/// Why a flag's content cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// No `oom_ext_flag=1` first line, and NUL bytes or not UTF-8.
    Binary,
    /// No `oom_ext_flag=1` first line.
    NotAFlag,
}

/// ASCII whitespace cut from both ends (`trim_ascii` needs Rust 1.80).
fn trim(mut b: &[u8]) -> &[u8] {
    while let [f, rest @ ..] = b {
        if !f.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    while let [rest @ .., l] = b {
        if !l.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    b
}

/// Pure parser of flag content (at most [`READ_MAX`] bytes are passed in),
/// on bytes: after the `oom_ext_flag=1` line, a line with a NUL or a byte
/// sequence that is not UTF-8 (a torn write leaves zeros) is one bad line,
/// never a lost flag.
pub fn parse(bytes: &[u8]) -> Result<FlagData, Damage> {
    let mut lines = bytes.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    if trim(first) != b"oom_ext_flag=1" {
        let text = bytes.contains(&0) || std::str::from_utf8(bytes).is_err();
        return Err(if text {
            Damage::Binary
        } else {
            Damage::NotAFlag
        });
    }
    let mut data = FlagData::default();
    for line in lines {
        let line = trim(line);
        if line.is_empty() {
            continue;
        }
        let Some(line) = std::str::from_utf8(line).ok().filter(|l| !l.contains('\0')) else {
            data.bad_lines += 1;
            continue;
        };
        match line.split_once('=') {
            Some(("victim", v)) => match Victim::parse(v) {
                Some(victim) => data.victims.push(victim),
                None => data.bad_lines += 1,
            },
            // Belongs to the last victim line of that pid before it.
            Some(("victim_cgroup", v)) => {
                let owner = v.split_once(' ').and_then(|(pid, cg)| {
                    let pid: u32 = pid.parse().ok()?;
                    let v = data.victims.iter_mut().rev().find(|v| v.pid == pid)?;
                    valid_cgroup(cg).then(|| v.cgroup = Some(cg.to_string()))
                });
                if owner.is_none() {
                    data.bad_lines += 1;
                }
            }
            Some((k, v))
                if !k.is_empty()
                    && k.len() <= 64
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                data.fields.push((k.to_string(), v.to_string()))
            }
            _ => data.bad_lines += 1,
        }
    }
    Ok(data)
}

/// Creates the flag inside the root with `O_CREAT|O_EXCL|O_NOFOLLOW`,
/// writes it and fsyncs the file and its directory. An existing file (or
/// symlink) is an error (`AlreadyExists`): it is never overwritten or
/// followed.
pub fn create(root: &Root, flag: &str, content: &str) -> io::Result<()> {
    let (dir, name) = rootfs::parent(root, flag)?;
    Ok(dir.create_new(&name, content.as_bytes(), 0o644)?)
}

/// Appends lines to an existing flag: no create, no symlink, only a regular
/// file with one link (so a hard link to another file is not written).
pub fn append(root: &Root, flag: &str, lines: &str) -> io::Result<()> {
    let (dir, name) = rootfs::parent(root, flag)?;
    Ok(dir.append(&name, lines.as_bytes())?)
}

/// Removes the flag (the name itself, never a symlink target) and fsyncs
/// the directory. A missing flag is fine.
pub fn remove(root: &Root, flag: &str) -> io::Result<()> {
    match rootfs::parent(root, flag) {
        Ok((dir, name)) => Ok(dir.remove(&name)?),
        Err(rootfs::Error::Missing) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("oom-ext-flag-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn serialize_then_parse() {
        let f = NewFlag {
            source: "psi".into(),
            started_unix: 1700000000,
            started_boot_s: 12,
            kernel: "6.1.0-56-amd64".into(),
            boot_id: "ab\ncd".into(),
            oom_events: 1,
            oom_calls: 3,
        };
        let mut text = f.serialize();
        text.push_str(
            &Victim {
                pid: 42,
                comm: "stress ng\n)x".into(),
                rss_kb: 1000,
                cgroup: Some("/system.slice/leak.service".into()),
            }
            .line(),
        );
        // A cgroup line of no victim, or a bad path: bad lines.
        text.push_str("victim_cgroup=43 /x\nvictim_cgroup=42 rel\n");
        let d = parse(text.as_bytes()).unwrap();
        assert_eq!(d.get("source"), Some("psi"));
        assert_eq!(d.get("boot_id"), Some("abcd"));
        assert_eq!(d.get_u64("started_unix"), Some(1700000000));
        assert_eq!(
            d.victims,
            vec![Victim {
                pid: 42,
                comm: "stress ng?)x".into(),
                rss_kb: 1000,
                cgroup: Some("/system.slice/leak.service".into()),
            }]
        );
        assert_eq!(d.bad_lines, 2);
    }

    #[test]
    fn hostile_content() {
        assert_eq!(parse(b""), Err(Damage::NotAFlag));
        assert_eq!(parse(b"hello\n"), Err(Damage::NotAFlag));
        assert_eq!(parse(b"oom_ext_flag=1\0"), Err(Damage::Binary));
        assert_eq!(parse(&[0xff, 0xfe, b'\n']), Err(Damage::Binary));
        // A torn write (zeros) or a non-UTF-8 value after the header: one
        // bad line each, the flag is still ours.
        let d = parse(b"oom_ext_flag=1\nsource=psi\nkernel=caf\xe9\n\0\0\0\0").unwrap();
        assert_eq!(
            (d.get("source"), d.get("kernel"), d.bad_lines),
            (Some("psi"), None, 2)
        );
        let d = parse(
            "oom_ext_flag=1\nvictim=x y z\nvictim=1\n=3\nno equals\nkernel=\u{1b}[2J\n".as_bytes(),
        )
        .unwrap();
        assert_eq!(d.bad_lines, 4);
        assert_eq!(d.get("kernel"), Some("\u{1b}[2J"));
    }

    #[test]
    fn create_is_exclusive_and_never_follows_symlinks() {
        let d = tmp("create");
        let root = Root::new(&d);
        create(&root, "/oomflag", "oom_ext_flag=1\n").unwrap();
        assert_eq!(
            create(&root, "/oomflag", "x").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        append(&root, "/oomflag", "victim=1 a 2\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("oomflag")).unwrap(),
            "oom_ext_flag=1\nvictim=1 a 2\n"
        );
        remove(&root, "/oomflag").unwrap();
        remove(&root, "/oomflag").unwrap();

        std::fs::write(d.join("target"), "precious").unwrap();
        std::os::unix::fs::symlink(d.join("target"), d.join("oomflag")).unwrap();
        assert!(create(&root, "/oomflag", "x").is_err());
        assert!(append(&root, "/oomflag", "x").is_err());
        assert_eq!(
            std::fs::read_to_string(d.join("target")).unwrap(),
            "precious"
        );
        remove(&root, "/oomflag").unwrap();
        assert!(
            d.join("target").exists(),
            "removing the symlink leaves its target"
        );

        std::fs::hard_link(d.join("target"), d.join("oomflag")).unwrap();
        assert!(append(&root, "/oomflag", "x").is_err());
        assert_eq!(
            std::fs::read_to_string(d.join("target")).unwrap(),
            "precious"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_flag_is_written_inside_the_root_even_through_a_symlinked_dir() {
        let base = tmp("inroot");
        let r = base.join("root");
        std::fs::create_dir_all(r.join("var")).unwrap();
        std::fs::create_dir_all(base.join("out")).unwrap();
        // /var/flags -> /out: inside the root that is ROOT/out, not BASE/out.
        std::os::unix::fs::symlink("/out", r.join("var/flags")).unwrap();
        std::fs::create_dir_all(r.join("out")).unwrap();
        let root = Root::new(&r);
        create(&root, "/var/flags/oomflag", "oom_ext_flag=1\n").unwrap();
        assert!(r.join("out/oomflag").exists());
        assert!(!base.join("out/oomflag").exists());
        remove(&root, "/var/flags/oomflag").unwrap();
        assert!(!r.join("out/oomflag").exists());
        std::fs::remove_dir_all(base).unwrap();
    }
}
