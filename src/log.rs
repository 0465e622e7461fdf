//! Logging: `/dev/kmsg` as `<prio>oom-ext[pid]: msg` in the initramfs, the
//! local syslog socket `/dev/log` (RFC 3164, no NSS, no network) once it
//! exists, stderr as the last resort.

#![forbid(unsafe_code)]

use crate::root::Root;
use std::io::Write;
use std::os::unix::net::UnixDatagram;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

/// journald's native protocol socket (datagrams of `KEY=value` lines).
pub const JOURNAL_SOCKET: &str = "run/systemd/journal/socket";

/// syslog facility LOG_DAEMON.
const FACILITY: u8 = 3 << 3;

/// Where messages go, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// `/dev/kmsg`, then stderr. For the initramfs.
    Kmsg,
    /// `/dev/log`, then `/dev/kmsg`, then stderr.
    Syslog,
}

#[derive(Debug, Clone)]
pub struct Log {
    root: Root,
    pub sink: Sink,
    /// Also echo to stderr (interactive commands).
    pub echo: bool,
}

/// `msg` on one line: control characters (C0, DEL, C1) become spaces, so
/// nothing a message quotes can move a terminal's cursor or start a record.
pub fn one_line(msg: &str) -> String {
    msg.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `<prio>oom-ext[pid]: msg` (one line, control characters replaced).
pub fn kmsg_line(level: Level, pid: u32, msg: &str) -> String {
    format!(
        "<{}>oom-ext[{pid}]: {}\n",
        FACILITY + level as u8,
        one_line(msg)
    )
}

/// RFC 3164 timestamp `Mmm dd hh:mm:ss` in UTC (no time zone database in an
/// initramfs).
pub fn rfc3164_time(unix: u64) -> String {
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, m, d) = civil_from_days((unix / 86400) as i64);
    let s = unix % 86400;
    format!(
        "{} {:2} {:02}:{:02}:{:02}",
        MON[(m - 1) as usize],
        d,
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso8601(unix: u64) -> String {
    let (y, m, d) = civil_from_days((unix / 86400) as i64);
    let s = unix % 86400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `/dev/kmsg` under the root for appending: resolved inside it, not a
/// symlink, never blocking (a FIFO without reader), and only a character
/// device, a FIFO or (a fake root's stand-in) a regular file with one link:
/// log lines never land in a file a link points to.
pub fn open_kmsg(root: &Root) -> std::io::Result<std::fs::File> {
    use nix::fcntl::OFlag;
    let fd = crate::rootfs::open(
        root,
        "dev/kmsg",
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        nix::sys::stat::Mode::empty(),
    )?;
    let f = std::fs::File::from(fd);
    let st =
        nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&f)).map_err(crate::sys::errno)?;
    let ok = match st.st_mode & libc::S_IFMT {
        libc::S_IFCHR | libc::S_IFIFO => true,
        libc::S_IFREG => st.st_nlink == 1,
        _ => false,
    };
    if !ok {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "/dev/kmsg is not a device, FIFO or single-link file: not written",
        ));
    }
    Ok(f)
}

impl Log {
    pub fn new(root: Root, sink: Sink) -> Self {
        Log {
            root,
            sink,
            echo: false,
        }
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn set_root(&mut self, root: Root) {
        self.root = root;
    }

    pub fn log(&self, level: Level, msg: &str) {
        let pid = std::process::id();
        if self.echo {
            eprintln!("oom-ext: {}", one_line(msg));
        }
        if self.sink == Sink::Syslog && self.syslog(level, pid, msg).is_ok() {
            return;
        }
        if self.kmsg(level, pid, msg).is_ok() {
            return;
        }
        if !self.echo {
            eprintln!("oom-ext: {}", one_line(msg));
        }
    }

    fn kmsg(&self, level: Level, pid: u32, msg: &str) -> std::io::Result<()> {
        let mut f = open_kmsg(&self.root)?;
        // One write() is one record for /dev/kmsg.
        f.write_all(kmsg_line(level, pid, msg).as_bytes())
    }

    fn syslog(&self, level: Level, pid: u32, msg: &str) -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        let clean: String = msg
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let line = format!(
            "<{}>{} oom-ext[{pid}]: {clean}",
            FACILITY + level as u8,
            rfc3164_time(unix_now())
        );
        sock.send_to(line.as_bytes(), self.root.join("dev/log"))?;
        Ok(())
    }

    /// One event with journald fields (`MESSAGE_ID` and `OOM_EXT_*`, see
    /// systemd/oom-ext.catalog), sent with the journal's native protocol
    /// when its socket is there (Syslog sink only); otherwise the plain
    /// line of [`Log::log`], so nothing is lost.
    pub fn event(&self, level: Level, msg: &str, id: &str, fields: &[(&str, String)]) {
        if self.sink == Sink::Syslog && self.journal(level, msg, id, fields).is_ok() {
            if self.echo {
                eprintln!("oom-ext: {}", one_line(msg));
            }
            return;
        }
        self.log(level, msg)
    }

    fn journal(
        &self,
        level: Level,
        msg: &str,
        id: &str,
        fields: &[(&str, String)],
    ) -> std::io::Result<()> {
        let one_line = |v: &str| -> String {
            v.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        };
        let mut text = format!(
            "MESSAGE={}\nPRIORITY={}\nSYSLOG_FACILITY=3\nSYSLOG_IDENTIFIER=oom-ext\nSYSLOG_PID={}\nMESSAGE_ID={id}\n",
            one_line(msg),
            level as u8,
            std::process::id()
        );
        for (k, v) in fields {
            text.push_str(&format!("{k}={}\n", one_line(v)));
        }
        let sock = UnixDatagram::unbound()?;
        sock.send_to(text.as_bytes(), self.root.join(JOURNAL_SOCKET))?;
        Ok(())
    }

    pub fn err(&self, msg: &str) {
        self.log(Level::Err, msg)
    }
    pub fn warn(&self, msg: &str) {
        self.log(Level::Warning, msg)
    }
    pub fn notice(&self, msg: &str) {
        self.log(Level::Notice, msg)
    }
    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_lines_are_one_record_with_daemon_priority() {
        assert_eq!(
            kmsg_line(Level::Warning, 42, "a\nb"),
            "<28>oom-ext[42]: a b\n"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1700000000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3164_time(1700000000), "Nov 14 22:13:20");
        assert_eq!(rfc3164_time(1699000000), "Nov  3 08:26:40");
    }

    #[test]
    fn events_carry_journal_fields_and_fall_back_to_a_plain_line() {
        let dir = std::env::temp_dir().join(format!("oom-ext-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run/systemd/journal")).unwrap();
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        std::fs::write(dir.join("dev/kmsg"), "").unwrap();
        let log = Log::new(Root::new(&dir), Sink::Syslog);
        // No journal socket: the plain line (here /dev/kmsg under the root).
        log.event(
            Level::Notice,
            "killed 5 x",
            "0f9f",
            &[("OOM_EXT_VICTIM_PID", "5".into())],
        );
        let plain = std::fs::read_to_string(dir.join("dev/kmsg")).unwrap();
        assert!(plain.ends_with("]: killed 5 x\n"), "{plain}");
        let sock = UnixDatagram::bind(dir.join(JOURNAL_SOCKET)).unwrap();
        log.event(
            Level::Notice,
            "killed 5 x",
            "0f9f",
            &[
                ("OOM_EXT_VICTIM_PID", "5".into()),
                ("OOM_EXT_RULE", "a\nb".into()),
            ],
        );
        let mut buf = [0u8; 1024];
        let n = sock.recv(&mut buf).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        for want in [
            "MESSAGE=killed 5 x\n",
            "PRIORITY=5\n",
            "SYSLOG_IDENTIFIER=oom-ext\n",
            "MESSAGE_ID=0f9f\n",
            "OOM_EXT_VICTIM_PID=5\n",
            "OOM_EXT_RULE=a b\n",
        ] {
            assert!(got.contains(want), "{want:?} not in {got:?}");
        }
    }

    #[test]
    fn kmsg_goes_under_the_root() {
        let dir = std::env::temp_dir().join(format!("oom-ext-log-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        std::fs::write(dir.join("dev/kmsg"), "").unwrap();
        Log::new(Root::new(&dir), Sink::Syslog).warn("hello");
        let got = std::fs::read_to_string(dir.join("dev/kmsg")).unwrap();
        assert!(
            got.starts_with("<28>oom-ext[") && got.ends_with("]: hello\n"),
            "{got}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
