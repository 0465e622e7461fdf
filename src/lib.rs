//! oom-ext: the userspace half of oom_ext. See docs/ARCHITECTURE.md.

pub mod cmdline;
pub mod flag;
pub mod guard;
pub mod history;
pub mod hooks;
pub mod init;
pub mod json;
pub mod json_read;
pub mod log;
pub mod modload;
pub mod module_status;
pub mod onhang;
pub mod params;
pub mod paths;
pub mod pidtrust;
pub mod policy;
pub mod pstore;
pub mod report;
pub mod root;
pub mod rootfs;
pub mod runtime;
pub mod status_cmd;
pub mod sys;
pub mod sysctl;
pub mod victims;
