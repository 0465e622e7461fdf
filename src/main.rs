//! oom-ext: argument parsing and dispatch only; the work is in the library.
//!
//! `no_main`: std's start-up (`lang_start`) is not linked. Its main-thread
//! stack-overflow handler asks glibc for the stack bounds
//! (`pthread_getattr_np`, which parses /proc/self/maps with `sscanf`) and
//! pulls scanf, strtod/strtold/strtof128 and the handler itself into the
//! static binary: 135 kB of 1.33 MB. [`start_up`] does the two parts of it
//! that matter here. What is lost: a stack overflow is a plain SIGSEGV
//! instead of std's message and SIGABRT, and a panic names the thread
//! `<unnamed>` instead of `main`.
#![cfg_attr(not(test), no_main)]

use argh::FromArgs;
use oom_ext::log::{Log, Sink};
use oom_ext::root::Root;
use oom_ext::{guard, init, report, status_cmd, victims};

/// oom_ext userspace: initramfs init, OOM guard, next-boot report, status.
#[derive(FromArgs)]
struct Cli {
    /// resolve every system path under DIR instead of / (tests, inspection)
    #[argh(option, default = "String::from(\"/\")")]
    root: String,
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Init(InitCmd),
    Guard(GuardCmd),
    Report(ReportCmd),
    Status(StatusCmd),
    Victims(VictimsCmd),
    OnHang(OnHangCmd),
}

/// Apply oom_ext.* from the kernel command line, load the module (or choose
/// the fallback), start the guard. Never fails boot: always exits 0.
#[derive(FromArgs)]
#[argh(subcommand, name = "init")]
struct InitCmd {
    /// print what would be done and do nothing
    #[argh(switch)]
    plan: bool,
    /// do not start the guard (when a unit of its own starts it)
    #[argh(switch)]
    no_guard: bool,
}

/// Run the guard: sleeps on the module's status, PSI triggers and signals;
/// holds the fallback buffer when there is no module.
#[derive(FromArgs)]
#[argh(subcommand, name = "guard")]
struct GuardCmd {
    /// re-executed after switch-root (internal)
    #[argh(switch)]
    resume: bool,
    /// for the real-root unit: take over a running guard (write its pid to
    /// the pidfile and exit 0), else daemonize and run
    #[argh(switch)]
    adopt: bool,
}

/// Report a crash flag left by an OOM hang of the previous boot. Exit 0: no
/// flag; 3: a flag was found and reported; 1: error; 2: usage.
#[derive(FromArgs)]
#[argh(subcommand, name = "report")]
struct ReportCmd {
    /// print JSON instead of text
    #[argh(switch)]
    json: bool,
    /// leave the flag in place
    #[argh(switch)]
    keep: bool,
    /// look at this flag path only (absolute, under --root)
    #[argh(option)]
    flag: Option<String>,
}

/// Show mode, buffer, sysctls, counters, guard and last report.
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
struct StatusCmd {
    /// print JSON instead of text
    #[argh(switch)]
    json: bool,
    /// write node_exporter metrics to DIR/oom_ext.prom (atomically)
    #[argh(option)]
    textfile: Option<String>,
}

/// The run-time ordered list of victims: listed processes (or every
/// process of a listed unit) die first, in list order.
#[derive(FromArgs)]
#[argh(subcommand, name = "victims")]
struct VictimsCmd {
    /// add, remove or list
    #[argh(positional)]
    action: String,
    /// PIDs or unit names (NAME.service, NAME.scope)
    #[argh(positional, greedy)]
    words: Vec<String>,
}

/// Act on OOM hangs of the boots before this one (on_hang= in
/// /etc/oom-ext/policy.conf): `apply` (run early in the boot by
/// oom-ext-on-hang.service) or `undo` (takes this boot's action back).
#[derive(FromArgs)]
#[argh(subcommand, name = "on-hang")]
struct OnHangCmd {
    /// apply or undo
    #[argh(positional)]
    action: String,
}

fn parse_args(args: &[String]) -> Cli {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    // argv[0] may be "@oom-ext-guard": show the program's real name.
    match Cli::from_args(&["oom-ext"], strs.get(1..).unwrap_or(&[])) {
        Ok(cli) => cli,
        Err(early) => match early.status {
            Ok(()) => {
                println!("{}", early.output);
                std::process::exit(0);
            }
            Err(()) => {
                eprintln!("{}", early.output);
                std::process::exit(2);
            }
        },
    }
}

/// What oom-ext needs of std's start-up: fds 0-2 open (on /dev/null if
/// not), so that no file we open becomes stdout or stderr, and SIGPIPE
/// ignored, so that writing to a closed pipe (a report hook that exits
/// without reading) is EPIPE instead of death. Like std, aborts if
/// /dev/null cannot be opened. Children get SIGPIPE back at its default:
/// std's `Command` resets it.
fn start_up() {
    use nix::errno::Errno;
    use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
    for fd in 0..3 {
        if fcntl(fd, FcntlArg::F_GETFD) == Err(Errno::EBADF) {
            // The lower fds are open: open() returns `fd`.
            match open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty()) {
                Ok(n) if n == fd => {}
                _ => std::process::abort(),
            }
        }
    }
    // SAFETY: SIG_IGN installs no handler code; nothing else in the
    // process has touched SIGPIPE yet (single-threaded start-up).
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
}

/// The C entry point (see the crate comment). The arguments come from
/// here: without `lang_start`, `std::env::args` is empty under musl (glibc
/// passes them to std separately).
#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    start_up();
    let args = (0..usize::try_from(argc).unwrap_or(0))
        .map(|i| {
            // SAFETY: the C runtime passes argc pointers in argv, each
            // either null or a NUL-terminated string that lives as long as
            // the process.
            unsafe {
                let p = *argv.add(i);
                if p.is_null() {
                    String::new()
                } else {
                    std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            }
        })
        .collect::<Vec<_>>();
    run(&args)
}

/// Under `cargo test` the harness brings its own entry point; this keeps
/// the code above reachable (the harness allows an unused `main`).
#[cfg(test)]
fn main() {
    start_up();
    run(&std::env::args().collect::<Vec<_>>())
}

fn run(args: &[String]) -> ! {
    let cli = parse_args(args);
    let root = Root::new(&cli.root);
    let code = match cli.cmd {
        Cmd::Init(c) => {
            let log = Log::new(root.clone(), Sink::Kmsg);
            let out = init::run(&root, &log, c.plan, !c.no_guard);
            print!("{out}");
            0
        }
        Cmd::Guard(c) => {
            let mut log = Log::new(root.clone(), Sink::Syslog);
            guard::run(
                &root,
                &mut log,
                guard::Options {
                    resume: c.resume,
                    adopt: c.adopt,
                },
            )
        }
        Cmd::Report(c) => {
            let log = Log::new(root.clone(), Sink::Syslog);
            if let Some(f) = &c.flag {
                if let Err(why) = oom_ext::rootfs::check_path(f.as_bytes()) {
                    eprintln!("oom-ext report: --flag {f:?} is not a valid flag path: {why}");
                    std::process::exit(report::EXIT_USAGE);
                }
            }
            let opts = report::Options {
                json: c.json,
                keep: c.keep,
                flag: c.flag,
                hook_timeout: None,
            };
            let (code, out) = report::run(&root, &log, &opts);
            print!("{out}");
            code
        }
        Cmd::Status(c) => {
            let st = status_cmd::gather(&root);
            if c.json {
                println!("{}", st.json());
            } else {
                print!("{}", st.human());
            }
            match c.textfile {
                Some(dir) => match status_cmd::write_textfile(std::path::Path::new(&dir), &st) {
                    Ok(_) => 0,
                    Err(e) => {
                        eprintln!("oom-ext status: cannot write {dir}/oom_ext.prom: {e}");
                        1
                    }
                },
                None => 0,
            }
        }
        Cmd::Victims(c) => {
            let (code, out) = victims::run(&root, &c.action, &c.words);
            match code {
                0 => print!("{out}"),
                _ => eprint!("{out}"),
            }
            code
        }
        Cmd::OnHang(c) => {
            let log = Log::new(root.clone(), Sink::Syslog);
            let (code, out) = match c.action.as_str() {
                "apply" => oom_ext::onhang::apply::apply(&root, &log),
                "undo" => oom_ext::onhang::apply::undo(&root, &log),
                other => (
                    2,
                    format!("oom-ext on-hang: unknown action {other:?} (apply or undo)\n"),
                ),
            };
            match code {
                2 => eprint!("{out}"),
                _ => print!("{out}"),
            }
            code
        }
    };
    std::process::exit(code);
}
