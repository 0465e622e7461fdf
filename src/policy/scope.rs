//! Units and cgroups: which unit a process belongs to, and which cgroup a
//! `kill_scope=unit` kill (or a `memory.oom.group=1` cgroup) may take
//! whole. Never a slice, never the root, never the guard's own unit.
#![forbid(unsafe_code)]

/// The deepest `*.service` or `*.scope` component of a cgroup path: for
/// `/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope`
/// that is `x.scope`, the unit the user's manager runs it in.
pub fn unit_of(cgroup: &str) -> Option<&str> {
    cgroup
        .split('/')
        .rev()
        .find(|c| is_unit_name(c) && !c.ends_with(".slice"))
}

fn is_unit_name(c: &str) -> bool {
    c.ends_with(".service") || c.ends_with(".scope") || c.ends_with(".slice")
}

/// The cgroup path up to and including the unit of [`unit_of`].
pub fn unit_cgroup(cgroup: &str) -> Option<&str> {
    let parts: Vec<&str> = cgroup.split('/').collect();
    let i = parts
        .iter()
        .rposition(|c| is_unit_name(c) && !c.ends_with(".slice"))?;
    let len = parts[..=i].iter().map(|c| c.len()).sum::<usize>() + i;
    Some(&cgroup[..len])
}

fn inside(path: &str, dir: &str) -> bool {
    path == dir || path.starts_with(dir) && path[dir.len()..].starts_with('/')
}

/// Why a cgroup may not be killed whole (completes "not killing cgroup X
/// whole: ...").
pub fn refuse_group(group: &str, guard_cgroup: Option<&str>) -> Option<&'static str> {
    let last = group.rsplit('/').next().unwrap_or("");
    if group == "/" || group.is_empty() {
        return Some("it is the root cgroup");
    }
    if last.ends_with(".slice") {
        return Some("it is a slice");
    }
    if last == "init.scope" {
        return Some("it holds PID 1");
    }
    if let Some(g) = guard_cgroup {
        if inside(g, group) {
            return Some("the guard runs in it");
        }
    }
    None
}

/// The cgroup to kill whole for `kill_scope=unit`: the victim's unit, if
/// [`refuse_group`] allows it.
pub fn unit_group<'a>(
    cgroup: &'a str,
    guard_cgroup: Option<&str>,
) -> Result<&'a str, &'static str> {
    let g = unit_cgroup(cgroup).ok_or("it is in no service or scope")?;
    refuse_group(g, guard_cgroup).map_or(Ok(g), Err)
}

/// The kernel's own rule for `memory.oom.group`: the highest ancestor of
/// the victim's cgroup (itself included) with `memory.oom.group=1` is
/// killed whole, walking up from the victim's leaf;
/// `oom_group(path)` says whether it has the flag set.
pub fn oom_group(cgroup: &str, oom_group: impl Fn(&str) -> bool) -> Option<&str> {
    let mut best = None;
    let mut path = cgroup;
    while !path.is_empty() && path != "/" {
        if oom_group(path) {
            best = Some(path);
        }
        path = &path[..path.rfind('/').unwrap_or(0)];
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_of_cgroups() {
        assert_eq!(
            unit_of("/system.slice/nginx.service"),
            Some("nginx.service")
        );
        assert_eq!(
            unit_of("/user.slice/user-1000.slice/user@1000.service/app.slice/firefox.scope"),
            Some("firefox.scope")
        );
        assert_eq!(
            unit_of("/system.slice/docker.service/payload"),
            Some("docker.service")
        );
        assert_eq!(unit_of("/user.slice"), None);
        assert_eq!(unit_of("/"), None);
        assert_eq!(
            unit_cgroup("/system.slice/docker.service/payload"),
            Some("/system.slice/docker.service")
        );
        assert_eq!(
            unit_cgroup("/system.slice/leak.service"),
            Some("/system.slice/leak.service")
        );
    }

    #[test]
    fn never_a_slice_the_root_pid1_or_the_guard() {
        let guard = Some("/system.slice/oom-ext-guard.service");
        assert_eq!(
            unit_group("/system.slice/leak.service", guard),
            Ok("/system.slice/leak.service")
        );
        assert!(unit_group("/system.slice/oom-ext-guard.service", guard).is_err());
        assert!(unit_group("/init.scope", None).is_err());
        assert!(unit_group("/user.slice/user-1000.slice", None).is_err());
        assert!(refuse_group("/", None).is_some());
        assert!(refuse_group("/system.slice", None).is_some());
        // The guard inside the group (a guard adopted in init.scope, or a
        // delegated subtree) protects the whole group.
        assert!(refuse_group("/a.service", Some("/a.service/sub")).is_some());
        assert!(refuse_group("/a.service", Some("/a.servicex")).is_none());
    }

    #[test]
    fn oom_group_takes_the_highest_flagged_ancestor() {
        let flagged = ["/system.slice/a.service", "/system.slice/a.service/x"];
        let f = |p: &str| flagged.contains(&p);
        assert_eq!(
            oom_group("/system.slice/a.service/x/y", f),
            Some("/system.slice/a.service")
        );
        assert_eq!(oom_group("/system.slice/b.service", f), None);
    }
}
