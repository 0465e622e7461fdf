//! The second record of a panic: pstore.
//!
//! `panic()` does not sync, so the crash flag can be lost with the page
//! cache; the kernel's panic message reaches pstore (`/sys/fs/pstore`,
//! EFI variables or ramoops) through the kmsg dumper instead. On systemd
//! systems `systemd-pstore` moves the records to `/var/lib/systemd/pstore`
//! early in the next boot. This module finds oom_ext's gracetime panic (and
//! the kernel's own `vm.panic_on_oom` panic) in those records. Parsing is
//! pure; [`scan`] does the reading. Each finding carries an id (a hash of
//! the record's content), so `report` archives it once in the history,
//! however often it is found again.
#![forbid(unsafe_code)]

use crate::json::Object;
use crate::root::Root;
use crate::rootfs;
use std::path::PathBuf;

/// Live records (read, and removed after a report unless `--keep`).
pub const LIVE: &str = "sys/fs/pstore";
/// systemd-pstore's archive (read only, records archived during this boot).
pub const ARCHIVE: &str = "var/lib/systemd/pstore";
/// The most read of one record: a dmesg dump is 10 KiB by default.
const RECORD_MAX: usize = 256 * 1024;
const UPTIME: &str = "proc/uptime";
/// The most records looked at per directory tree.
const RECORDS_MAX: usize = 64;

/// What a panic record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Panic {
    /// `oom_ext: OOM state lasted gracetime=N s (crash flag WORD)`.
    Gracetime {
        gracetime_s: u32,
        flag: String,
        flag_path: Option<String>,
    },
    /// The kernel's `vm.panic_on_oom` panic (oom_ext could not help).
    PanicOnOom,
}

impl Panic {
    pub fn describe(&self) -> String {
        match self {
            Panic::Gracetime {
                gracetime_s,
                flag,
                flag_path,
            } => {
                let at = flag_path
                    .as_deref()
                    .map(|p| format!(" at {p}"))
                    .unwrap_or_default();
                format!("oom_ext panicked after gracetime={gracetime_s} s in the OOM state (crash flag {flag}{at})")
            }
            Panic::PanicOnOom => "the kernel panicked on OOM (vm.panic_on_oom is set)".to_string(),
        }
    }
}

const GRACE_MARK: &str = "oom_ext: OOM state lasted gracetime=";
const FLAG_MARK: &str = "oom_ext: crash flag: ";
const PANIC_ON_OOM_MARK: &str = "Kernel panic - not syncing: Out of memory";

/// Finds the panic in the text of one record (a kmsg dump: one header
/// line such as `Panic#1 Part1`, then kernel log lines). `None` when the
/// record holds no OOM panic.
pub fn parse(text: &str) -> Option<Panic> {
    let mut flag_path = None;
    for line in text.lines() {
        if let Some(rest) = after(line, FLAG_MARK) {
            // "present (/path)" or "error (-)"
            flag_path = rest
                .split_once(" (")
                .and_then(|(_, p)| p.strip_suffix(')'))
                .filter(|p| p.starts_with('/'))
                .map(str::to_string);
        } else if let Some(rest) = after(line, GRACE_MARK) {
            let (n, rest) = rest.split_once(" s (crash flag ")?;
            let flag = rest.split_once(')')?.0;
            if flag.is_empty() || !flag.bytes().all(|b| b.is_ascii_lowercase()) {
                return None;
            }
            return Some(Panic::Gracetime {
                gracetime_s: n.parse().ok()?,
                flag: flag.to_string(),
                flag_path,
            });
        } else if line.contains(PANIC_ON_OOM_MARK) && line.contains("panic_on_oom") {
            return Some(Panic::PanicOnOom);
        }
    }
    None
}

fn after<'a>(line: &'a str, mark: &str) -> Option<&'a str> {
    line.find(mark).map(|i| &line[i + mark.len()..])
}

/// One record that holds an OOM panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Path under the root, e.g. `sys/fs/pstore/dmesg-ramoops-0`.
    pub record: PathBuf,
    /// In [`LIVE`] (may be removed once reported) or in the archive.
    pub live: bool,
    pub panic: Panic,
    /// [`record_id`] of the bytes read: the same record is the same
    /// finding wherever and whenever it is found (ramoops reuses names).
    pub id: String,
}

/// A record's identity: FNV-1a (64 bits) of its content as read, in hex.
pub fn record_id(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

impl Found {
    /// How its JSON begins: an archived report that starts so is this
    /// finding (a flag report begins with `{"flag":`, and nothing a flag
    /// holds can come first).
    pub fn archive_prefix(&self) -> String {
        format!(
            "{{{}:{},{}:{}",
            crate::json::string("status"),
            crate::json::string("pstore"),
            crate::json::string("id"),
            crate::json::string(&self.id)
        )
    }

    /// Its log line, also printed (after `oom-ext: `).
    pub fn line(&self) -> String {
        format!(
            "pstore record /{}: {}",
            self.record.display(),
            self.panic.describe()
        )
    }

    /// The record's line in `report --json`: `status` is `pstore`, so a
    /// reader that switches on a flag report's `status` sees it apart;
    /// `flag` is the flag path the panic named (as in a flag report).
    pub fn json(&self) -> String {
        let o = Object::new()
            .str("status", "pstore")
            .str("id", &self.id)
            .str("record", &format!("/{}", self.record.display()))
            .bool("live", self.live);
        match &self.panic {
            Panic::Gracetime {
                gracetime_s,
                flag,
                flag_path,
            } => o
                .str("panic", "gracetime")
                .num("gracetime_s", u64::from(*gracetime_s))
                .str("flag_state", flag)
                .opt_str("flag", flag_path.as_deref()),
            Panic::PanicOnOom => o
                .str("panic", "panic_on_oom")
                .raw("gracetime_s", "null".into())
                .raw("flag_state", "null".into())
                .raw("flag", "null".into()),
        }
        .str("summary", &self.panic.describe())
        .finish()
    }
}

/// Which archived records count: those archived during this boot (mtime
/// at or after `boot_unix`); older ones were reported by an earlier boot.
pub fn archived_this_boot(mtime_unix: u64, boot_unix: u64) -> bool {
    mtime_unix >= boot_unix
}

/// Reads the live records and this boot's archived ones. `boot_unix` is
/// when this boot started (`None`: archive not read). Unreadable records
/// are skipped: pstore is a second source, the flag is the first. Every
/// read goes through [`crate::rootfs`]: inside the root, no followed
/// symlink, regular files only (a FIFO cannot block), capped.
pub fn scan(root: &Root, boot_unix: Option<u64>) -> Vec<Found> {
    let mut found = Vec::new();
    for (dir, live) in [(LIVE, true), (ARCHIVE, false)] {
        if !live && boot_unix.is_none() {
            continue;
        }
        let mut files = Vec::new();
        collect(root, dir, 2, &mut files);
        files.sort();
        for (path, mtime) in files.into_iter().take(RECORDS_MAX) {
            if !live && !archived_this_boot(mtime, boot_unix.unwrap_or(u64::MAX)) {
                continue;
            }
            let Some(bytes) = read_capped(root, &path) else {
                continue;
            };
            let Some(panic) = parse(&String::from_utf8_lossy(&bytes)) else {
                continue;
            };
            found.push(Found {
                record: PathBuf::from(path),
                live,
                panic,
                id: record_id(&bytes),
            });
        }
    }
    found
}

/// Regular files (never through symlinks) down to `depth` levels, as
/// paths under the root; names that are not UTF-8 are skipped.
fn collect(root: &Root, dir: &str, depth: u32, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = rootfs::open_dir(root, dir).and_then(|d| d.entries()) else {
        return;
    };
    for (name, st) in entries {
        let Ok(name) = String::from_utf8(name) else {
            continue;
        };
        let path = format!("{dir}/{name}");
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR && depth > 1 {
            collect(root, &path, depth - 1, out);
        } else if rootfs::is_regular(&st) {
            out.push((path, st.st_mtime.max(0) as u64));
        }
    }
}

fn read_capped(root: &Root, path: &str) -> Option<Vec<u8>> {
    Some(rootfs::read_head(root, path, RECORD_MAX).ok()?.bytes)
}

/// Removes a live record once reported (pstore erases it from its backend).
pub fn remove(root: &Root, found: &Found) -> std::io::Result<()> {
    if !found.live {
        return Ok(());
    }
    rootfs::remove(root, &found.record.to_string_lossy()).map_err(std::io::Error::from)
}

/// When this boot started, from the root's `/proc/uptime` and `now`
/// (read capped, inside the root: a link to `/dev/zero` is not read).
pub fn boot_unix(root: &Root, now: u64) -> Option<u64> {
    let text = String::from_utf8(rootfs::read_small(root, UPTIME)?).ok()?;
    let up: f64 = text.split_whitespace().next()?.parse().ok()?;
    (up.is_finite() && up >= 0.0).then(|| now.saturating_sub(up as u64))
}

/// The records with an OOM panic `oom-ext report` looks at now: the live
/// ones and those archived during this boot.
pub fn findings(root: &Root, now: u64) -> Vec<Found> {
    scan(root, boot_unix(root, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A ramoops dmesg record as the 6.12 smoke VM leaves it.
    const RAMOOPS: &str = "Panic#1 Part1\n\
<6>[   20.1] oom_ext: crash flag /run/late/oomflag created\n\
<0>[   23.447148] oom_ext: crash flag: present (/run/late/oomflag)\n\
<0>[   23.448250] Kernel panic - not syncing: oom_ext: OOM state lasted gracetime=7 s (crash flag present), panicking to reboot\n\
<4>[   23.449165] CPU: 0 PID: 0 Comm: swapper/0\n";

    // efi_pstore's records of the gracetime panic in the pstore-efi VM
    // scenario (2026-12-02), cut to the lines around the panic. A 1 KiB EFI
    // variable holds a deflated part of the 10 KiB dump (14 or 15 parts);
    // pstore names the files after the backend: `efi` on 6.1, `efi_pstore`
    // (the module's name) from 6.2 on.
    const EFI_6_1_NAME: &str = "dmesg-efi-179622928203001";
    const EFI_6_1: &str = "Panic#1 Part3\n\
<6>[   98.149717] oom_ext: OOM (trigger): released 32768 KiB in 441250 ns\n\
<6>[   98.181633] oom_ext: crash flag /oomflag created\n\
<6>[  102.349420] powernow_k8: Power state transitions not supported\n\
<0>[  105.208803] oom_ext: crash flag: present (/oomflag)\n\
<0>[  105.211087] Kernel panic - not syncing: oom_ext: OOM state lasted gracetime=7 s (crash flag present), panicking to reboot\n\
<4>[  105.212131] CPU: 0 PID: 394 Comm: stress-ng-vm Tainted: G           OE      6.1.0-57-amd64 #1  Debian 6.1.192-3\n\
<4>[  105.212131] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 0.0.0 02/06/2015\n";
    const EFI_6_12_NAME: &str = "dmesg-efi_pstore-179622958202001";
    const EFI_6_12: &str = "Panic#1 Part2\n\
<6>[   98.687046] oom_ext: crash flag /oomflag created\n\
<0>[  105.674716] oom_ext: crash flag: present (/oomflag)\n\
<0>[  105.675252] Kernel panic - not syncing: oom_ext: OOM state lasted gracetime=7 s (crash flag present), panicking to reboot\n\
<4>[  105.689500] CPU: 0 UID: 0 PID: 33 Comm: kcompactd0 Tainted: G           OE      6.12.117+deb12-amd64 #1  Debian 6.12.117-1~deb12u1\n\
<4>[  105.690088] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE\n\
<4>[  105.690225] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 0.0.0 02/06/2015\n\
<4>[  105.690554] Call Trace:\n";
    // systemd-pstore's dmesg.txt of that 6.12 panic: the parts, oldest
    // first, each under its name (here the end of Part3, Part2 as above).
    // It moves the parts themselves into the same directory keeping their
    // mtime (the panic's), and writes dmesg.txt now.
    const EFI_6_12_PART3_END: &str = "dmesg-efi_pstore-179622958203001:\n\
Panic#1 Part3\n\
<6>[   92.920901] powernow_k8: Power state transitions not supported\n\
<6>[   98.449612] oom_ext: OOM (trigger): released 32768 KiB in 463936 ns\n";

    #[test]
    fn efi_records_of_both_kernels() {
        for text in [EFI_6_1, EFI_6_12] {
            assert_eq!(
                parse(text),
                Some(Panic::Gracetime {
                    gracetime_s: 7,
                    flag: "present".into(),
                    flag_path: Some("/oomflag".into()),
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn live_efi_records_of_both_kernels_are_found_by_their_names() {
        let dir = std::env::temp_dir().join(format!("oom-ext-pstore-efi-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = Root::new(&dir);
        std::fs::create_dir_all(root.join(LIVE)).unwrap();
        std::fs::write(root.join(LIVE).join(EFI_6_1_NAME), EFI_6_1).unwrap();
        std::fs::write(root.join(LIVE).join(EFI_6_12_NAME), EFI_6_12).unwrap();
        let f = scan(&root, None);
        assert_eq!(f.len(), 2, "{f:?}");
        for (found, name) in f.iter().zip([EFI_6_1_NAME, EFI_6_12_NAME]) {
            assert!(found.live);
            assert_eq!(
                found.line(),
                format!("pstore record /{LIVE}/{name}: oom_ext panicked after gracetime=7 s in the OOM state (crash flag present at /oomflag)")
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn systemd_pstore_reassembly_is_this_boots_its_moved_parts_are_not() {
        let dir = std::env::temp_dir().join(format!("oom-ext-pstore-sd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = Root::new(&dir);
        let group = root.join(ARCHIVE).join("179622958");
        std::fs::create_dir_all(&group).unwrap();
        let joined = format!("{EFI_6_12_PART3_END}{EFI_6_12_NAME}:\n{EFI_6_12}");
        // A panic line split from its flag line by a part boundary is
        // still read with it: the parts are one text here.
        let split = joined.replacen(
            "<0>[  105.675252] Kernel panic",
            "dmesg-efi_pstore-179622958201001:\nPanic#1 Part1\n<0>[  105.675252] Kernel panic",
            1,
        );
        for text in [&joined, &split] {
            let Some(Panic::Gracetime { flag_path, .. }) = parse(text) else {
                panic!("not found: {text}");
            };
            assert_eq!(flag_path.as_deref(), Some("/oomflag"));
        }
        std::fs::write(group.join("dmesg.txt"), &joined).unwrap();
        let part = group.join(EFI_6_12_NAME);
        std::fs::write(&part, EFI_6_12).unwrap();
        let panic_time = nix::sys::time::TimeSpec::new(1_796_229_582, 0);
        nix::sys::stat::utimensat(
            None,
            &part,
            &panic_time,
            &panic_time,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        let f = scan(&root, Some(1_796_229_600));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            f[0].record,
            std::path::Path::new("var/lib/systemd/pstore/179622958/dmesg.txt")
        );
        assert!(!f[0].live);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn finds_the_gracetime_panic_with_the_flag_path() {
        assert_eq!(
            parse(RAMOOPS),
            Some(Panic::Gracetime {
                gracetime_s: 7,
                flag: "present".into(),
                flag_path: Some("/run/late/oomflag".into()),
            })
        );
    }

    #[test]
    fn flag_error_has_no_path() {
        let t = "oom_ext: crash flag: error (-)\nKernel panic - not syncing: oom_ext: OOM state lasted gracetime=30 s (crash flag error), panicking to reboot\n";
        assert_eq!(
            parse(t),
            Some(Panic::Gracetime {
                gracetime_s: 30,
                flag: "error".into(),
                flag_path: None,
            })
        );
    }

    #[test]
    fn older_module_without_the_flag_line() {
        let t = "Kernel panic - not syncing: oom_ext: OOM state lasted gracetime=4 s (crash flag absent), panicking to reboot";
        let Some(Panic::Gracetime {
            flag, flag_path, ..
        }) = parse(t)
        else {
            panic!("not found");
        };
        assert_eq!((flag.as_str(), flag_path), ("absent", None));
    }

    #[test]
    fn panic_on_oom() {
        let t = "<0>[ 5.0] Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled\n";
        assert_eq!(parse(t), Some(Panic::PanicOnOom));
    }

    #[test]
    fn other_panics_and_garbage_are_not_ours() {
        for t in [
            "",
            "Oops#1 Part1\n<4>[1.0] BUG: kernel NULL pointer dereference\n",
            "Kernel panic - not syncing: VFS: Unable to mount root fs\n",
            "oom_ext: OOM state lasted gracetime=x s (crash flag present)\n",
            "oom_ext: OOM state lasted gracetime=7 s (crash flag \u{1b}[31m)\n",
            "oom_ext: OOM state lasted gracetime=7 s (crash flag present\n",
            "oom_ext: OOM state lasted gracetime=99999999999 s (crash flag present)\n",
        ] {
            assert_eq!(parse(t), None, "{t:?}");
        }
    }

    #[test]
    fn a_finding_has_its_line_its_id_and_the_start_of_its_json() {
        let dir = std::env::temp_dir().join(format!("oom-ext-pstore-r-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = Root::new(&dir);
        for d in [LIVE, "proc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join(UPTIME), "12.5 20.0\n").unwrap();
        std::fs::write(root.join(LIVE).join("dmesg-ramoops-0"), RAMOOPS).unwrap();
        let f = findings(&root, 1_700_000_000);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].line().starts_with("pstore record /sys/fs/pstore/dmesg-ramoops-0: oom_ext panicked after gracetime=7 s"),
            "{}",
            f[0].line()
        );
        assert!(f[0]
            .line()
            .contains("crash flag present at /run/late/oomflag"));
        assert!(
            f[0].json().starts_with(&f[0].archive_prefix()),
            "{}",
            f[0].json()
        );
        // The id is the content's: the same record copied elsewhere is the
        // same finding, another record is not.
        assert_eq!(f[0].id, record_id(RAMOOPS.as_bytes()));
        assert_eq!(f[0].id.len(), 16);
        assert_ne!(record_id(b"a"), record_id(b"b"));
        assert_eq!(boot_unix(&root, 1_700_000_000), Some(1_699_999_988));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn archive_counts_only_this_boot() {
        assert!(archived_this_boot(1000, 1000));
        assert!(!archived_this_boot(999, 1000));
    }

    #[test]
    fn scan_reads_live_and_this_boots_archive() {
        let dir = std::env::temp_dir().join(format!("oom-ext-pstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = Root::new(&dir);
        std::fs::create_dir_all(root.join(LIVE)).unwrap();
        std::fs::create_dir_all(root.join(ARCHIVE).join("1700000000")).unwrap();
        std::fs::write(root.join(LIVE).join("dmesg-ramoops-0"), RAMOOPS).unwrap();
        std::fs::write(root.join(LIVE).join("console-ramoops-0"), "nothing").unwrap();
        std::fs::write(root.join(ARCHIVE).join("1700000000/dmesg.txt"), RAMOOPS).unwrap();

        let live_only = scan(&root, None);
        assert_eq!(live_only.len(), 1);
        assert_eq!(
            live_only[0].record,
            std::path::Path::new("sys/fs/pstore/dmesg-ramoops-0")
        );
        assert!(live_only[0].live);
        // Archived "now": counts when the boot started before it.
        assert_eq!(scan(&root, Some(0)).len(), 2);
        assert_eq!(scan(&root, Some(u64::MAX)).len(), 1);

        remove(&root, &live_only[0]).unwrap();
        assert!(!root.join(LIVE).join("dmesg-ramoops-0").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
