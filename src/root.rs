//! Every system path of oom-ext goes through a [`Root`], so the whole program
//! can run against a fake root directory in tests (never a global override).

use std::path::{Path, PathBuf};

/// The directory that stands for `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root(dir.into())
    }

    /// The real root `/`.
    pub fn system() -> Self {
        Root(PathBuf::from("/"))
    }

    pub fn is_system(&self) -> bool {
        self.0 == Path::new("/")
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// `path` (absolute or relative) resolved under this root.
    pub fn join(&self, path: impl AsRef<Path>) -> PathBuf {
        let p = path.as_ref();
        let rel = p.strip_prefix("/").unwrap_or(p);
        self.0.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_absolute_and_relative_paths_under_the_root() {
        let r = Root::new("/tmp/fake");
        assert_eq!(
            r.join("/proc/cmdline"),
            PathBuf::from("/tmp/fake/proc/cmdline")
        );
        assert_eq!(
            r.join("proc/cmdline"),
            PathBuf::from("/tmp/fake/proc/cmdline")
        );
        assert_eq!(
            Root::system().join("/run/oom-ext"),
            PathBuf::from("/run/oom-ext")
        );
        assert!(Root::system().is_system());
        assert!(!r.is_system());
    }
}
