//! Parser for the module's `/sys/kernel/oom_ext/status` (stable `key=value`
//! lines; unknown keys are ignored, missing ones stay `None`).

#![forbid(unsafe_code)]

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleStatus {
    pub state: Option<String>,
    pub reserved_bytes: Option<u64>,
    pub target_bytes: Option<u64>,
    pub oom_events: Option<u64>,
    pub oom_calls: Option<u64>,
    pub releases: Option<u64>,
    pub rearms: Option<u64>,
    pub state_ms: Option<u64>,
    pub last_source: Option<String>,
    pub flag: Option<String>,
    /// What the last OOM entry released (0: no buffer). `None` from a
    /// module older than the key.
    pub last_release_bytes: Option<u64>,
}

impl ModuleStatus {
    /// "the last OOM entry released N MiB" (KiB below 1 MiB), or `None`
    /// before the first OOM entry and from a module older than the key.
    pub fn last_release(&self) -> Option<String> {
        let b = self.last_release_bytes?;
        if self.oom_events == Some(0) {
            return None;
        }
        Some(match b {
            0 => "the last OOM entry found no buffer to release".into(),
            b if b < 1 << 20 => format!("the last OOM entry released {} KiB", b >> 10),
            b => format!("the last OOM entry released {} MiB", b >> 20),
        })
    }
}

/// A word value: short, plain ASCII; anything else is dropped.
fn word(v: &str) -> Option<String> {
    (!v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then(|| v.to_string())
}

/// Parses the status text line by line as bytes: a line that is not UTF-8
/// is skipped alone, never the whole file.
pub fn parse(text: impl AsRef<[u8]>) -> ModuleStatus {
    let mut s = ModuleStatus::default();
    let lines = text
        .as_ref()
        .split(|&b| b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok());
    for line in lines {
        // Comments are allowed after the value (as in the contract's example).
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        let n = || v.parse::<u64>().ok();
        match k {
            "state" => s.state = word(v),
            "reserved_bytes" => s.reserved_bytes = n(),
            "target_bytes" => s.target_bytes = n(),
            "oom_events" => s.oom_events = n(),
            "oom_calls" => s.oom_calls = n(),
            "releases" => s.releases = n(),
            "rearms" => s.rearms = n(),
            "state_ms" => s.state_ms = n(),
            "last_source" => s.last_source = word(v),
            "flag" => s.flag = word(v),
            "last_release_bytes" => s.last_release_bytes = n(),
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_example() {
        let s = parse("state=armed            # armed | oom\nreserved_bytes=33554432\ntarget_bytes=33554432\noom_events=0\noom_calls=0\nreleases=0\nrearms=0\nstate_ms=1234\nlast_source=none\nflag=absent\nnew_key=7\n");
        assert_eq!(s.state.as_deref(), Some("armed"));
        assert_eq!(s.reserved_bytes, Some(33554432));
        assert_eq!(s.state_ms, Some(1234));
        assert_eq!(s.flag.as_deref(), Some("absent"));
        // The contract's example predates last_release_bytes: an older
        // module's status parses, the key is just unknown.
        assert_eq!(s.last_release_bytes, None);
    }

    #[test]
    fn last_release_bytes_from_a_current_module() {
        // Verbatim from the smoke VM (6.12): a trigger during a held growth.
        let s = parse("state=oom\nreserved_bytes=0\ntarget_bytes=33554432\noom_events=1\noom_calls=0\nreleases=1\nrearms=0\nstate_ms=12\nlast_source=trigger\nflag=absent\nflag_path=\nrelease_ns=40123\nrearm_ns=0\nlast_release_bytes=6291456\n");
        assert_eq!(s.last_release_bytes, Some(6291456));
        assert_eq!(s.state.as_deref(), Some("oom"));
        assert_eq!(parse("last_release_bytes=0\n").last_release_bytes, Some(0));
        assert_eq!(parse("last_release_bytes=-1\n").last_release_bytes, None);
        assert_eq!(parse("last_release_bytes=6MiB\n").last_release_bytes, None);
    }

    #[test]
    fn last_release_wording() {
        let st = |t: &str| parse(t).last_release();
        assert_eq!(
            st("oom_events=2\nlast_release_bytes=6291456\n").as_deref(),
            Some("the last OOM entry released 6 MiB")
        );
        assert_eq!(
            st("oom_events=1\nlast_release_bytes=12288\n").as_deref(),
            Some("the last OOM entry released 12 KiB")
        );
        assert_eq!(
            st("oom_events=1\nlast_release_bytes=0\n").as_deref(),
            Some("the last OOM entry found no buffer to release")
        );
        // No OOM entry yet: nothing to say.
        assert_eq!(st("oom_events=0\nlast_release_bytes=0\n"), None);
        // An older module without the key.
        assert_eq!(st("state=oom\noom_events=3\nreleases=3\n"), None);
    }

    #[test]
    fn hostile_status_text() {
        assert_eq!(parse(""), ModuleStatus::default());
        let s = parse("state=\u{1b}[31mevil\nreserved_bytes=-1\noom_events=18446744073709551616\n\0\0=\nstate=oom");
        assert_eq!(s.state.as_deref(), Some("oom"));
        assert_eq!(s.reserved_bytes, None);
        assert_eq!(s.oom_events, None);
    }

    #[test]
    fn defect_14_one_bad_byte_loses_one_line_not_the_file() {
        let s = parse(b"state=oom\nlast_source=caf\xe9\noom_events=3\n");
        assert_eq!(s.state.as_deref(), Some("oom"));
        assert_eq!(s.oom_events, Some(3));
        assert_eq!(s.last_source, None);
    }
}
