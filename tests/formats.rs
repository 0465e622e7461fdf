//! The machine-readable outputs checked with real parsers: `report --json`
//! and `status --json` with Python's `json` (strict: no control character in
//! strings, no duplicate key), the node_exporter textfile with
//! `prometheus_client`'s parser, over hostile and random file contents.
//! Python 3 with prometheus_client comes from tools/setup
//! (python3-prometheus-client); without it this test fails and says so.

use oom_ext::log::{Log, Sink};
use oom_ext::report::{self, Options};
use oom_ext::root::Root;
use oom_ext::status_cmd;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHECK: &str = r#"
import json, os, sys
from prometheus_client.parser import text_string_to_metric_families

def no_dup(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate keys: %r" % keys)
    return dict(pairs)

d = sys.argv[1]
n = 0
for f in sorted(os.listdir(d)):
    with open(os.path.join(d, f), encoding="utf-8") as fh:
        t = fh.read()
    try:
        if f.endswith(".json"):
            json.loads(t, object_pairs_hook=no_dup)
        else:
            fams = list(text_string_to_metric_families(t))
            names = {s.name for fam in fams for s in fam.samples}
            assert "oom_ext_guard_up" in names, names
            for fam in fams:
                for s in fam.samples:
                    assert s.value == s.value and s.value >= 0, s
    except Exception as e:
        print("%s: %s" % (f, e))
        sys.exit(1)
    n += 1
print(n)
"#;

/// The first Python 3 that has prometheus_client (a pyenv shim may hide
/// Debian's).
fn python() -> String {
    for p in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(p)
            .args(["-c", "import prometheus_client"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return p.to_string();
        }
    }
    panic!("no python3 with prometheus_client: install python3-prometheus-client (tools/setup)");
}

fn fake_root(tag: &str) -> PathBuf {
    let r = std::env::temp_dir().join(format!("oom-ext-formats-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&r);
    for d in [
        "dev",
        "run/oom-ext",
        "sys/kernel/oom_ext",
        "var/lib/oom-ext/history",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("dev/kmsg"), "").unwrap();
    r
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
}

const PIECES: &[&[u8]] = &[
    b"oom_ext_flag=1\n",
    b"source=",
    b"kernel=",
    b"victim=1 a b 2\n",
    b"victim=",
    b"started_unix=1700000000\n",
    b"\"",
    b"\\",
    b"\n",
    b"\r",
    b"\0",
    b"\x1b[2J",
    b"\xff",
    b"\xe2\x80\xae",
    b"\xed\xa0\x80",
    b"=",
    b"state=oom\n",
    b"reserved_bytes=",
    b"99999999999999999999",
    b"oom_events=3\n",
    b"\"summary\":\"",
    b"{",
    b"}",
    b"mode",
    b"\t",
    b"\x7f",
    b"\xc2\x85",
    b"\xe2\x80\xa8",
];

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let n = (rng.next() % 30) as usize;
    let mut v = Vec::new();
    for _ in 0..n {
        if rng.next() % 4 == 0 {
            v.push(rng.next() as u8);
        } else {
            v.extend_from_slice(PIECES[(rng.next() % PIECES.len() as u64) as usize]);
        }
    }
    v
}

/// Fills the root's files with `data`, writes every output of report and
/// status for it into `out` (NAME.json / NAME.prom).
fn outputs(r: &Path, data: &[u8], out: &Path, n: usize) {
    let header = [b"oom_ext_flag=1\n".as_slice(), data].concat();
    std::fs::write(r.join("oomflag"), if n % 2 == 0 { data } else { &header }).unwrap();
    std::fs::write(r.join("sys/kernel/oom_ext/status"), data).unwrap();
    std::fs::write(r.join("run/oom-ext/guard.state"), data).unwrap();
    std::fs::write(
        r.join("run/oom-ext/mode"),
        if n % 3 == 0 { &b"kernel\n"[..] } else { data },
    )
    .unwrap();
    let root = Root::new(r);
    let log = Log::new(root.clone(), Sink::Kmsg);
    let opts = Options {
        json: true,
        keep: n % 5 != 0,
        ..Options::default()
    };
    let (_, json) = report::run(&root, &log, &opts);
    std::fs::write(out.join(format!("{n:05}-report.json")), json).unwrap();
    let st = status_cmd::gather(&root);
    std::fs::write(out.join(format!("{n:05}-status.json")), st.json()).unwrap();
    std::fs::write(out.join(format!("{n:05}-status.prom")), st.prometheus()).unwrap();
    // The archived report is status's input too: make it hostile as well.
    let h = r.join("var/lib/oom-ext/history");
    if n % 7 == 0 {
        std::fs::write(h.join(format!("{:010}.json", 1_700_000_000 + n)), data).unwrap();
    }
}

#[test]
fn report_and_status_output_parse_with_real_parsers() {
    let py = python();
    let r = fake_root("parse");
    let out = r.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut rng = Rng(0xD1B54A32D192ED03);
    let fixed: &[&[u8]] = &[
        b"",
        b"oom_ext_flag=1\nsource=a\nsource=b\nkernel=\x1b[31m\"x\\\nvictim=7 a\x07b 9\n",
        b"\xff\xfe\0",
        b"state=\xe2\x80\xaeoom\nreserved_bytes=1\n",
    ];
    let mut n = 0;
    for d in fixed {
        outputs(&r, d, &out, n);
        n += 1;
    }
    while n < 150 {
        let d = random_bytes(&mut rng);
        outputs(&r, &d, &out, n);
        n += 1;
    }
    let o = Command::new(&py)
        .args(["-c", CHECK])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        stdout.trim(),
        (n * 3).to_string(),
        "every output was checked"
    );
    std::fs::remove_dir_all(r).unwrap();
}
