//! What `oom-ext status` shows of the victim policy: the settings of this
//! boot's parameters, the rules of the policy files (count per file) and
//! their problems, and the run-time victims list. The files are read as
//! they are now: the guard reads them at start and on SIGHUP.
#![forbid(unsafe_code)]

use super::load;
use crate::json::{self, Object};
use crate::params::Params;
use crate::root::Root;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub policy: &'static str,
    pub kill_scope: &'static str,
    /// `oom_ext.dry_run=` or `dry_run = yes` in the files.
    pub dry_run: bool,
    pub parent_max: u32,
    pub parent_expire: u32,
    /// The files that gave rules, in the order read, with their count.
    pub files: Vec<(String, usize)>,
    pub problems: Vec<String>,
    /// `oom-ext victims list`'s lines (first victim first).
    pub victims: Vec<String>,
}

/// Control characters (a process name may hold any) shown escaped.
fn shown(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let v: Vec<char> = if c.is_control() {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            v
        })
        .collect()
}

/// The view from the files and the parameters in effect (`params`: this
/// boot's recorded ones).
pub fn gather_with(root: &Root, params: &Params) -> View {
    let (policy, problems) = load::load_policy(root);
    let mut files: Vec<(String, usize)> = Vec::new();
    for r in &policy.rules {
        match files.last_mut() {
            Some((f, n)) if *f == r.origin.file => *n += 1,
            _ => files.push((r.origin.file.clone(), 1)),
        }
    }
    let list = crate::victims::show(root);
    View {
        policy: params.policy.as_str(),
        kill_scope: params.kill_scope.as_str(),
        dry_run: params.dry_run || policy.settings.dry_run == Some(true),
        parent_max: params.parent_max,
        parent_expire: params.parent_expire,
        files,
        problems,
        victims: list
            .lines()
            .filter(|l| !l.is_empty() && *l != "the victims list is empty")
            .map(str::to_string)
            .collect(),
    }
}

/// [`gather_with`] this boot's recorded parameters (the command line's
/// when there are none).
pub fn gather(root: &Root) -> View {
    let params = crate::runtime::recorded_params(root)
        .map(|(p, _)| p)
        .unwrap_or_else(|| crate::runtime::cmdline_params(root));
    gather_with(root, &params)
}

impl View {
    fn rules(&self) -> usize {
        self.files.iter().map(|(_, n)| n).sum()
    }

    pub fn human(&self) -> String {
        let mut s = format!(
            "policy:        {}, kill_scope={}, dry_run={}, parent_max={}, parent_expire={}\n",
            self.policy,
            self.kill_scope,
            u8::from(self.dry_run),
            self.parent_max,
            self.parent_expire
        );
        let per_file: Vec<String> = self
            .files
            .iter()
            .map(|(f, n)| format!("{} {n}", shown(f)))
            .collect();
        s.push_str(&format!(
            "policy rules:  {}{}\n",
            self.rules(),
            if per_file.is_empty() {
                String::new()
            } else {
                format!(" ({})", per_file.join(", "))
            }
        ));
        for p in &self.problems {
            s.push_str(&format!("policy error:  {}\n", shown(p)));
        }
        if self.victims.is_empty() {
            s.push_str("victims list:  empty\n");
        }
        for (i, v) in self.victims.iter().enumerate() {
            let head = if i == 0 { "victims list:" } else { "" };
            s.push_str(&format!("{head:<15}{}\n", shown(v)));
        }
        s
    }

    pub fn json(&self) -> String {
        let array = |items: Vec<String>| format!("[{}]", items.join(","));
        Object::new()
            .str("policy", self.policy)
            .str("kill_scope", self.kill_scope)
            .bool("dry_run", self.dry_run)
            .num("parent_max", u64::from(self.parent_max))
            .num("parent_expire", u64::from(self.parent_expire))
            .num("rules", self.rules() as u64)
            .raw(
                "files",
                array(
                    self.files
                        .iter()
                        .map(|(f, n)| {
                            Object::new()
                                .str("path", f)
                                .num("rules", *n as u64)
                                .finish()
                        })
                        .collect(),
                ),
            )
            .raw(
                "problems",
                array(self.problems.iter().map(|p| json::string(p)).collect()),
            )
            .raw(
                "victims",
                array(self.victims.iter().map(|v| json::string(v)).collect()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root(tag: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("oom-ext-view-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(load::POLICY_D)).unwrap();
        std::fs::create_dir_all(dir.join("run/oom-ext")).unwrap();
        Root::new(dir)
    }

    #[test]
    fn rules_per_file_problems_list_and_settings() {
        let root = fake_root("all");
        std::fs::write(
            root.join(load::POLICY_CONF),
            "prefer name=a\nprotect name=b\nnot a rule\n",
        )
        .unwrap();
        std::fs::write(
            root.join(load::POLICY_D).join("50-x.conf"),
            "avoid uid=1000\ndry_run = yes\n",
        )
        .unwrap();
        std::fs::write(root.join(load::VICTIMS), "leak.service\n999999 5\n").unwrap();
        let mut p = Params::default();
        p.set("kill_scope", "unit").unwrap();
        p.set("parent_max", "3").unwrap();
        let v = gather_with(&root, &p);
        assert_eq!(
            v.files,
            [
                ("/etc/oom-ext/policy.conf".to_string(), 2),
                ("/etc/oom-ext/policy.d/50-x.conf".to_string(), 1)
            ]
        );
        let h = v.human();
        assert!(
            h.starts_with("policy:        kill, kill_scope=unit, dry_run=1, parent_max=3, parent_expire=300\n"),
            "{h}"
        );
        assert!(
            h.contains("policy rules:  3 (/etc/oom-ext/policy.conf 2, /etc/oom-ext/policy.d/50-x.conf 1)\n"),
            "{h}"
        );
        assert!(
            h.contains("policy error:  /etc/oom-ext/policy.conf:3: "),
            "{h}"
        );
        assert!(
            h.contains("victims list:  1. leak.service (unit)\n               2. 999999 (gone)\n"),
            "{h}"
        );
        let j = v.json();
        assert!(
            j.starts_with(r#"{"policy":"kill","kill_scope":"unit","dry_run":true,"parent_max":3,"parent_expire":300,"rules":3,"files":[{"path":"/etc/oom-ext/policy.conf","rules":2},"#),
            "{j}"
        );
        assert!(
            j.contains(r#""victims":["1. leak.service (unit)","2. 999999 (gone)"]"#),
            "{j}"
        );
        let _ = std::fs::remove_dir_all(root.dir());
    }

    #[test]
    fn nothing_configured() {
        let root = fake_root("none");
        let v = gather_with(&root, &Params::default());
        assert_eq!(
            v.human(),
            "policy:        kill, kill_scope=process, dry_run=0, parent_max=0, parent_expire=300\n\
             policy rules:  0\nvictims list:  empty\n"
        );
        assert!(v
            .json()
            .ends_with(r#""rules":0,"files":[],"problems":[],"victims":[]}"#));
        let _ = std::fs::remove_dir_all(root.dir());
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(shown("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
    }
}
