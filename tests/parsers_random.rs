//! Randomized hostile input for every parser (a stable-toolchain companion
//! of fuzz/): no panic, and what comes out stays inside the documented
//! bounds. Deterministic seed so a failure reproduces.

use oom_ext::params::{Kind, Params, TABLE};
use oom_ext::{cmdline, flag, module_status};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "oom_ext.",
    "oom_ext",
    "oom-ext.",
    "=",
    "\"",
    " ",
    "\t",
    "\n",
    "\0",
    "--",
    "0",
    "1",
    "-1",
    "4096",
    "4097",
    "99999999999999999999999",
    "/oomflag",
    "/..",
    "/a b",
    "é",
    "\u{202e}",
    "\u{1b}[2J",
    "off",
    "yes",
    "victim=",
    "oom_ext_flag=1\n",
    "state=",
    "oom",
    "armed",
    "#",
    "\u{ffff}",
    "kB",
    "Out of memory: Killed process ",
    "Memory cgroup out of memory: Killed process ",
    "oom-kill:constraint=CONSTRAINT_MEMCG",
    ",oom_memcg=",
    ",task_memcg=",
    ",task=",
    ",pid=",
    ",uid=",
    " (",
    ") total-vm:",
    "anon-rss:",
];

/// A piece of hostile text: one of PIECES or a parameter name (every key
/// the parser knows, so a new one is exercised without editing this file).
fn piece(rng: &mut Rng) -> &'static str {
    let i = rng.below(PIECES.len() + TABLE.len());
    PIECES
        .get(i)
        .copied()
        .unwrap_or_else(|| TABLE[i - PIECES.len()].key)
}

fn text(rng: &mut Rng) -> String {
    let n = rng.below(40);
    (0..n).map(|_| piece(rng)).collect()
}

fn bytes(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(300);
    (0..n).map(|_| rng.next() as u8).collect()
}

fn params_in_bounds(p: &Params) {
    for row in TABLE {
        if let Kind::Number { min, max, off, .. } = row.kind {
            let v: u32 = p.get(row.key).unwrap().parse().unwrap();
            assert!(off && v == 0 || v >= min && v <= max, "{}={v}", row.key);
        }
    }
    assert!(
        oom_ext::params::check_flag_path(&p.crashflag_name).is_ok(),
        "{:?}",
        p.crashflag_name
    );
}

#[test]
fn cmdline_and_params_file_never_escape_their_bounds() {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    for _ in 0..20_000 {
        let line = text(&mut rng);
        let (p, diags) = cmdline::parse(&line);
        params_in_bounds(&p);
        assert!(diags.len() <= cmdline::words(&line).len());
        for d in diags {
            let s = d.to_string();
            assert!(
                !s.contains('\n') && !s.contains('\0') && s.len() < 512,
                "{s:?}"
            );
        }
        // The same, raw bytes (not UTF-8 at all) straight in.
        let raw = bytes(&mut rng);
        let (p2, diags) = cmdline::parse(&raw);
        params_in_bounds(&p2);
        for d in diags {
            let s = d.to_string();
            assert!(
                s.bytes().all(|c| (0x20..0x7f).contains(&c) || c >= 0x80),
                "{s:?}"
            );
            assert!(!s.contains('\u{1b}') && s.len() < 512, "{s:?}");
        }
        let (q, _) = Params::from_file(&line);
        params_in_bounds(&q);
        // The params file as the guard reads it (SIGHUP): raw bytes over
        // the values in effect; each problem one escaped line.
        let (q, problems) = cmdline::params_over(&p2, &raw);
        params_in_bounds(&q);
        for pr in problems {
            assert!(!pr.contains('\n') && !pr.contains('\u{1b}'), "{pr:?}");
        }
        // What we write, we read back unchanged.
        assert_eq!(Params::from_file(&p.to_file()).0, p);
    }
}

#[test]
fn flag_status_and_kill_parsers_take_anything() {
    let mut rng = Rng(42);
    for i in 0..20_000 {
        let b = if i % 2 == 0 {
            bytes(&mut rng)
        } else {
            text(&mut rng).into_bytes()
        };
        if let Ok(d) = flag::parse(&b) {
            for v in &d.victims {
                let line = v.line();
                assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            }
        }
        // Raw bytes, as read from the file.
        let st = module_status::parse(&b);
        let s = String::from_utf8_lossy(&b);
        if let Some(w) = st.state {
            assert!(
                w.len() <= 32
                    && w.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            );
        }
        let _ = oom_ext::guard::kernel_text::parse_kill(&s);
        let _ = oom_ext::guard::kernel_text::parse_context(&s);
        let _ = oom_ext::guard::kernel_text::mem_available_kb(&s);
        let _ = oom_ext::modload::find_in_modules_dep(&s, "oom_ext");
        let _ = oom_ext::sysctl::parse_int(&s);
    }
}
