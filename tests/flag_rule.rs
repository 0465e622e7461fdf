//! The crash-flag path rule is one rule: the module's C copy
//! (kmod/flag_rule.h, compiled here on the host with `cc`) and the
//! binary's (rootfs::check_path) give the same answer for fixed edge cases
//! and random byte strings around the 255-byte limit.

use oom_ext::rootfs::check_path;
use std::io::Write;
use std::process::{Command, Stdio};

const MAIN: &str = r#"
#include <stdio.h>
#include <string.h>
#include "flag_rule.h"
int main(void)
{
	static char line[4096];
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		putchar(oom_ext_flag_rule(line, 255) ? '1' : '0');
	}
	return 0;
}
"#;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn the_module_and_the_binary_apply_the_same_path_rule() {
    let dir = std::env::temp_dir().join(format!("oom-ext-flag-rule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("rule.c");
    std::fs::write(&src, MAIN).unwrap();
    let exe = dir.join("rule");
    let kmod = concat!(env!("CARGO_MANIFEST_DIR"), "/kmod");
    let cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=gnu11", "-Wall", "-Werror", "-I", kmod, "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("no C compiler (cc): the module's rule cannot be compared");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );

    let mut inputs: Vec<Vec<u8>> = [
        "",
        "/",
        "//",
        "/a",
        "/a/",
        "/a//b",
        "/a/./b",
        "/a/.",
        "/.",
        "/..",
        "/a/..",
        "/a/../b",
        "/...",
        "/a/...b",
        "/.a",
        "/a/.b/..c",
        "relative",
        "./a",
        "/a b",
        "/a\"b",
        "/a\tb",
        "/run/oomflag",
        "/var/lib/oom-ext/flag",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    for n in [254, 255, 256] {
        let mut v = b"/".to_vec();
        v.resize(n, b'a');
        inputs.push(v);
    }
    let alphabet: &[u8] = b"//..ab-_~ \"\x01\x7f\x80\xe9\xff";
    let mut rng = Rng(0x2545F4914F6CDD1D);
    for _ in 0..20_000 {
        let len = match rng.next() % 4 {
            0 => 250 + (rng.next() % 10) as usize,
            _ => (rng.next() % 12) as usize,
        };
        let mut v: Vec<u8> = (0..len)
            .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
            .collect();
        if rng.next() % 2 == 0 {
            v.insert(0, b'/');
        }
        inputs.push(v);
    }

    let mut child = Command::new(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed: Vec<u8> = inputs
        .iter()
        .flat_map(|i| [&i[..], b"\n"].concat())
        .collect();
    let writer = std::thread::spawn(move || stdin.write_all(&feed).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.stdout.len(), inputs.len());
    for (i, verdict) in inputs.iter().zip(out.stdout) {
        let module = verdict == b'1';
        let binary = check_path(i).is_ok();
        assert_eq!(
            module,
            binary,
            "{:?}: module {module}, binary {binary}",
            String::from_utf8_lossy(i)
        );
    }
}
