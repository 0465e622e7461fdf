use super::*;

/// These tests are of the PSI-some rules, the trigger that `harm=0` keeps
/// (the harm model's are in harm_trigger.rs).
fn old_rules() -> Params {
    Params {
        harm: false,
        ..Params::default()
    }
}

fn at(ms: u64, mem_mb: u64) -> Facts {
    Facts {
        now_ms: ms,
        mem_available_kb: Some(mem_mb * 1024),
        mem_total_kb: Some(1024 * 1024),
        net_freed_kb: None,
        psi_full_us: None,
        swap_free_kb: None,
        swap_out_kb: None,
    }
}

/// Facts with the vmstat counter: `freed_kb` net freed since boot.
fn counted(ms: u64, mem_mb: u64, freed_kb: i64) -> Facts {
    Facts {
        net_freed_kb: Some(freed_kb),
        ..at(ms, mem_mb)
    }
}

#[test]
fn no_kill_while_memory_comes_back_by_itself() {
    // Regression (CI, 6.12, storm): at the workload's end its hogs were
    // exiting on their own, MemAvailable still low, and sysrq f killed
    // the bystander. A kill is made KILL_CONFIRM_MS after it is
    // decided, and not if memory came free meanwhile.
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    m.handle(Event::Psi, counted(0, 20, 1000));
    let a = m.handle(Event::Psi, counted(2000, 20, 1000));
    assert!(!a.contains(&Action::Kill), "{a:?}");
    assert_eq!(m.next_deadline(), Some(2000 + KILL_CONFIRM_MS));
    // An event meanwhile decides nothing more.
    assert!(!m
        .handle(Event::Psi, counted(2100, 20, 1500))
        .contains(&Action::Kill));
    // 40 MB came free in 200 ms: called off.
    let a = m.handle(Event::Timer, counted(2200, 30, 41_000));
    assert!(!a.contains(&Action::Kill), "{a:?}");
    assert!(
        logged(
            &a,
            "memory is coming back without a kill (40000 kB freed in 200 ms"
        ),
        "{a:?}"
    );
    assert_eq!(m.counters.kills, 0);
    // Still stuck a second later, nothing freed: decided again, and made.
    assert!(!m
        .handle(Event::Psi, counted(3000, 20, 41_000))
        .contains(&Action::Kill));
    let a = m.handle(Event::Timer, counted(3200, 20, 42_000));
    assert!(a.contains(&Action::Kill), "{a:?}");
    assert!(
        logged(&a, "memory stall for 3000 ms: killing a victim"),
        "{a:?}"
    );
    assert_eq!(m.counters.kills, 1);
    assert_eq!(m.stall.unwrap().last_kill_ms, Some(3200));
    // A pending kill dies with its stall.
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    m.handle(Event::Psi, counted(0, 20, 0));
    m.handle(Event::Psi, counted(2000, 20, 0));
    m.handle(Event::Timer, counted(2200, 500, 0));
    assert_eq!(m.counters.kills, 0, "memory no longer short: no kill");
    m.handle(Event::Psi, counted(2500, 20, 0));
    m.handle(Event::Timer, counted(12_501, 500, 0));
    assert_eq!((m.stall.is_none(), m.pending_kill.is_none()), (true, true));
}

#[test]
fn no_sysrq_when_the_kernel_kills_during_the_confirmation() {
    // Regression (benchmark, 6.12, storm, fallback mode): the kernel
    // killed a hog on its own between the decision and the sysrq f;
    // the sysrq found that victim still exiting and killed nobody, and
    // its empty wait replaced the watch on the real victim: no kill
    // for 10 s, a 7 s freeze.
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    m.handle(Event::Psi, counted(0, 20, 1000));
    m.handle(Event::Psi, counted(2000, 20, 1000));
    let a = m.handle(
        Event::OomKill(Some(Victim {
            pid: 9,
            comm: "hog".into(),
            rss_kb: 100,
            cgroup: None,
        })),
        counted(2100, 20, 1000),
    );
    assert!(a.contains(&Action::WatchExit(9)), "{a:?}");
    let a = m.handle(Event::Timer, counted(2200, 20, 1000));
    assert!(!a.contains(&Action::Kill), "{a:?}");
    assert!(
        logged(&a, "the kernel's OOM killer killed pid 9 meanwhile"),
        "{a:?}"
    );
    assert_eq!(m.counters.kills, 0);
    // Its exit ends the wait; the stall goes on: decided and made again.
    m.handle(Event::VictimExited(9), counted(2500, 20, 1000));
    m.handle(Event::Psi, counted(3000, 20, 1000));
    let a = m.handle(Event::Timer, counted(3200, 20, 1000));
    assert!(a.contains(&Action::Kill), "{a:?}");
    // A wait given up after 10 s does not call off the next kill.
    let a = m.handle(Event::Psi, counted(12_000, 20, 1000));
    assert!(!logged(&a, "have not exited after"), "{a:?}");
    let a = m.handle(Event::Psi, counted(13_300, 20, 1000));
    assert!(logged(&a, "have not exited after"), "{a:?}");
    let a = m.handle(Event::Timer, counted(13_500, 20, 1000));
    assert!(a.contains(&Action::Kill), "{a:?}");
}

fn kinds(a: &[Action]) -> Vec<String> {
    a.iter()
        .filter(|a| {
            !matches!(
                a,
                Action::Log(..) | Action::WriteState | Action::AlignScores
            )
        })
        .map(|a| format!("{a:?}"))
        .collect()
}

fn fallback(p: Params) -> Machine {
    Machine::new(Mode::Fallback, p, true)
}

#[test]
fn idle_guard_has_no_deadline() {
    let m = fallback(old_rules());
    assert_eq!(m.next_deadline(), None);
    assert_eq!(
        Machine::new(Mode::Kernel, old_rules(), false).next_deadline(),
        None
    );
}

#[test]
fn fallback_oom_cycle_release_flag_end_rearm() {
    let p = Params {
        resettime: 10,
        ..old_rules()
    };
    let mut m = fallback(p);
    let a = m.handle(
        Event::OomKill(Some(Victim {
            pid: 7,
            comm: "hog".into(),
            rss_kb: 100,
            cgroup: None,
        })),
        at(1000, 500),
    );
    assert_eq!(
        kinds(&a),
        vec![
            "WatchExit(7)",
            "ReleaseBuffer",
            "CreateFlag(\"vmstat\")",
            "AppendFlag(\"mem_available_kb=512000\\n\")",
            "AppendFlag(\"victim=7 hog 100\\n\")"
        ]
    );
    assert_eq!(m.state_word(), "oom");
    assert_eq!(m.next_deadline(), Some(6000));
    // More evidence pushes the end out.
    assert!(kinds(&m.handle(Event::OomKill(None), at(3000, 500))).is_empty());
    assert_eq!(m.next_deadline(), Some(8000));
    // Memory still short at the deadline: re-check a second later.
    assert!(kinds(&m.handle(Event::Timer, at(8000, 10))).is_empty());
    assert_eq!(m.next_deadline(), Some(9000));
    let a = m.handle(Event::Timer, at(9000, 500));
    assert!(kinds(&a).contains(&"RemoveFlag".to_string()), "{a:?}");
    assert_eq!(m.state_word(), "recovering");
    assert_eq!(m.next_deadline(), Some(19000));
    assert_eq!(
        kinds(&m.handle(Event::Timer, at(19000, 500))),
        vec!["ArmBuffer"]
    );
    m.handle(Event::Armed(true), at(19001, 500));
    assert_eq!(m.state_word(), "armed");
    assert_eq!(m.next_deadline(), None);
    assert_eq!(
        (
            m.counters.oom_events,
            m.counters.releases,
            m.counters.rearms
        ),
        (1, 1, 1)
    );
}

#[test]
fn rearm_waits_for_memory() {
    let p = Params {
        resettime: 1,
        psi_kill_ms: 0,
        ..old_rules()
    };
    let mut m = fallback(p);
    m.handle(Event::OomKill(None), at(0, 500));
    m.handle(Event::Timer, at(5000, 500));
    assert_eq!(m.rearm_at, Some(6000));
    assert!(kinds(&m.handle(Event::Timer, at(6000, 50))).is_empty());
    assert_eq!(m.rearm_at, Some(36000));
    assert_eq!(
        kinds(&m.handle(Event::Timer, at(36000, 500))),
        vec!["ArmBuffer"]
    );
    m.handle(Event::Armed(false), at(36001, 500));
    assert_eq!(m.rearm_at, Some(66001));
}

#[test]
fn gracetime_reboots_with_the_flag_marked() {
    let p = Params {
        gracetime: 30,
        ..old_rules()
    };
    let mut m = fallback(p);
    m.handle(Event::Psi, at(0, 10));
    for t in (1000..30000).step_by(1000) {
        let a = m.handle(Event::Psi, at(t, 10));
        assert!(!a.contains(&Action::Reboot));
    }
    assert_eq!(m.next_deadline(), Some(30000));
    let a = m.handle(Event::Timer, at(30000, 10));
    assert_eq!(
        kinds(&a),
        vec!["AppendFlag(\"gracetime_reboot=1\\n\")", "Reboot"]
    );
    assert_eq!(m.next_deadline(), None);
    assert!(m.handle(Event::Psi, at(31000, 10)).is_empty());
}

fn victim(pid: u32) -> Event {
    Event::OomKill(Some(Victim {
        pid,
        comm: "hog".into(),
        rss_kb: 1000,
        cgroup: None,
    }))
}

#[test]
fn sustained_stall_asks_the_kernel_to_kill_at_most_once_per_period() {
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    let a = m.handle(Event::Psi, at(0, 10));
    assert_eq!(kinds(&a), vec!["Trigger"]);
    // A stall begins: the policy aligns oom_score_adj, once per stall.
    assert!(a.contains(&Action::AlignScores), "{a:?}");
    assert!(!m
        .handle(Event::Psi, at(500, 10))
        .contains(&Action::AlignScores));
    assert_eq!(kinds(&m.handle(Event::Psi, at(1000, 10))), vec!["Trigger"]);
    assert_eq!(
        kinds(&m.handle(Event::Psi, at(2000, 10))),
        vec!["Trigger", "Kill"]
    );
    m.handle(victim(50), at(2100, 10));
    m.handle(Event::VictimExited(50), at(2500, 10));
    assert_eq!(m.awaiting, None);
    assert_eq!(kinds(&m.handle(Event::Psi, at(3000, 10))), vec!["Trigger"]);
    assert_eq!(
        kinds(&m.handle(Event::Psi, at(4500, 10))),
        vec!["Trigger", "Kill"]
    );
    m.handle(victim(51), at(4600, 10));
    m.handle(Event::VictimExited(51), at(4700, 10));
    // A pause shorter than the gap is the same stall: the kill timer
    // runs on.
    assert_eq!(m.next_deadline(), Some(14501));
    assert_eq!(
        kinds(&m.handle(Event::Psi, at(12000, 10))),
        vec!["Trigger", "Kill"]
    );
    m.handle(victim(52), at(12100, 10));
    m.handle(Event::VictimExited(52), at(12200, 10));
    // A longer pause starts a new stall: no kill at once.
    m.handle(Event::Timer, at(22001, 10));
    assert_eq!(m.stall, None);
    assert_eq!(kinds(&m.handle(Event::Psi, at(23000, 10))), vec!["Trigger"]);
    assert_eq!(m.counters.kills, 3);
}

fn logged(a: &[Action], text: &str) -> bool {
    a.iter()
        .any(|x| matches!(x, Action::Log(_, l) if l.contains(text)))
}

#[test]
fn no_second_kill_while_the_last_victim_is_still_exiting() {
    // Regression (CI, 6.1, swap leak): the leaker took seconds to exit
    // (its memory half in swap), the stall went on, and the next sysrq f
    // killed the innocent bystander.
    let mut m = fallback(old_rules());
    m.handle(Event::Psi, at(0, 10));
    assert!(m.handle(Event::Psi, at(2000, 10)).contains(&Action::Kill));
    assert!(m
        .handle(victim(470), at(2050, 10))
        .contains(&Action::WatchExit(470)));
    for t in (3000..12000).step_by(1000) {
        let a = m.handle(Event::Psi, at(t, 10));
        assert!(!a.contains(&Action::Kill), "at {t} ms: {a:?}");
    }
    // Exited: its memory is free, and the next event decides again.
    let a = m.handle(Event::VictimExited(470), at(11500, 10));
    assert!(logged(&a, "pid 470 has exited"), "{a:?}");
    assert!(!m.handle(Event::Psi, at(12000, 500)).contains(&Action::Kill));
    assert!(m.handle(Event::Psi, at(13500, 10)).contains(&Action::Kill));
    assert_eq!(m.counters.kills, 2);
    // Exits of pids nobody waits for change nothing.
    assert!(m.handle(Event::VictimExited(9), at(13600, 10)).is_empty());
}

#[test]
fn a_victim_that_never_exits_holds_kills_back_only_so_long() {
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    m.handle(Event::Psi, at(0, 10));
    assert!(m.handle(Event::Psi, at(2000, 10)).contains(&Action::Kill));
    m.handle(victim(60), at(2100, 10));
    for t in (3000..=12000).step_by(1000) {
        assert!(!m.handle(Event::Psi, at(t, 10)).contains(&Action::Kill));
    }
    let a = m.handle(Event::Psi, at(12100, 10));
    assert!(a.contains(&Action::Kill), "{a:?}");
    assert!(logged(&a, "(60) have not exited after 10000 ms"), "{a:?}");
    // A kill the kernel log never named a victim for also waits.
    assert!(!m.handle(Event::Psi, at(15000, 10)).contains(&Action::Kill));
    let a = m.handle(Event::Psi, at(22100, 10));
    assert!(logged(&a, "not named in the kernel log"), "{a:?}");
    assert!(a.contains(&Action::Kill));
}

#[test]
fn the_kernels_own_kills_are_waited_for_too() {
    let mut m = fallback(old_rules());
    m.handle(Event::Psi, at(0, 10));
    m.handle(victim(70), at(1500, 10));
    assert!(!m.handle(Event::Psi, at(2500, 10)).contains(&Action::Kill));
    m.handle(Event::VictimExited(70), at(3000, 10));
    assert!(m.handle(Event::Psi, at(3500, 10)).contains(&Action::Kill));
}

#[test]
fn a_released_buffer_eaten_again_counts_as_the_stall_going_on() {
    // Regression (CI, 6.12, swap leak): the release paused the stall's
    // events for 5 s while the leaker ate the buffer; the kill came late.
    for mode in [Mode::Fallback, Mode::Kernel] {
        let mut m = Machine::new(mode, old_rules(), mode == Mode::Fallback);
        if mode == Mode::Kernel {
            m.handle(
                Event::Module(crate::module_status::parse("state=armed\n")),
                at(0, 100),
            );
        }
        m.handle(Event::Psi, at(0, 20));
        assert_eq!(m.stall.unwrap().released_kb, 32 * 1024, "{mode:?}");
        assert_eq!(m.next_deadline(), Some(2000), "{mode:?}");
        // 7 of 32 MiB eaten after 2 s: not yet, look again in a second.
        assert!(!m.handle(Event::Timer, at(2000, 45)).contains(&Action::Kill));
        assert_eq!(m.next_deadline(), Some(3000), "{mode:?}");
        let a = m.handle(Event::Timer, at(3000, 35));
        assert!(a.contains(&Action::Kill), "{mode:?}: {a:?}");
        assert!(logged(&a, "released 32 MiB eaten again"), "{a:?}");
        assert_eq!(m.stall.unwrap().eaten_check_ms, None, "{mode:?}");
    }
    // A release that was enough: no kill and no more checks.
    let mut m = fallback(old_rules());
    m.handle(Event::Psi, at(0, 140));
    let a = m.handle(Event::Timer, at(2000, 300));
    assert!(!a.contains(&Action::Kill));
    assert_eq!(m.stall.unwrap().eaten_check_ms, None);
    // Nothing released (no buffer): events alone decide.
    let mut m = Machine::new(Mode::Fallback, old_rules(), false);
    m.handle(Event::Psi, at(0, 20));
    assert_eq!(m.stall.unwrap().eaten_check_ms, None);
    assert_eq!(m.next_deadline(), Some(5000));
}

#[test]
fn an_eaten_buffer_waits_for_a_victim_as_events_do() {
    // The kernel's own kill named a victim that does not exit: the
    // eaten-again check holds back for VICTIM_EXIT_WAIT_MS, then kills,
    // like the event path (a_victim_that_never_exits_...).
    let mut m = fallback(old_rules());
    m.handle(Event::Psi, at(0, 20));
    m.handle(victim(80), at(500, 20));
    for t in (2000..11_000).step_by(1000) {
        if t == 9000 {
            // An event keeps the stall going (no kill: the victim).
            assert!(!m.handle(Event::Psi, at(t, 20)).contains(&Action::Kill));
        }
        let a = m.handle(Event::Timer, at(t, 20));
        assert!(!a.contains(&Action::Kill), "at {t} ms: {a:?}");
        assert_eq!(m.next_deadline(), Some(t + 1000), "still checking");
    }
    let a = m.handle(Event::Timer, at(11_000, 20));
    assert!(a.contains(&Action::Kill), "{a:?}");
    assert!(logged(&a, "(80) have not exited after 10500 ms"), "{a:?}");
    assert!(logged(&a, "eaten again"), "{a:?}");
    // A later event kill says how long the whole stall has lasted.
    m.handle(victim(81), at(11_100, 20));
    m.handle(Event::VictimExited(81), at(11_500, 20));
    let a = m.handle(Event::Psi, at(13_000, 20));
    assert!(
        logged(&a, "memory stall for 13000 ms, 2000 ms since the last kill"),
        "{a:?}"
    );
}

#[test]
fn fallback_oom_state_ends_only_with_the_stall() {
    // Regression (CI, 6.12): the state ended 5 s into a paused stall and
    // the next event began a second one.
    let mut m = fallback(Params {
        psi_kill_ms: 0,
        ..old_rules()
    });
    m.handle(Event::Psi, at(0, 20));
    let a = m.handle(Event::Timer, at(5000, 300));
    assert_eq!(m.state_word(), "oom", "{a:?}");
    assert_eq!(m.next_deadline(), Some(10001));
    m.handle(Event::Timer, at(10001, 300));
    assert_eq!(m.stall, None);
    assert_eq!(m.state_word(), "recovering");
    assert_eq!(m.counters.oom_events, 1);
}

#[test]
fn no_kill_once_the_hog_is_gone_even_if_the_stall_goes_on() {
    // Regression (VM thrash run): after the hog died, code read back in
    // kept PSI firing and every 2 s sysrq f took the next innocent.
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    m.handle(Event::Psi, at(0, 40));
    m.handle(Event::Psi, at(1000, 40));
    assert!(kinds(&m.handle(Event::Psi, at(2000, 40))).contains(&"Kill".to_string()));
    for t in (3000..12000).step_by(1000) {
        let a = m.handle(Event::Psi, at(t, 800));
        assert!(kinds(&a).is_empty(), "at {t} ms: {a:?}");
    }
    assert_eq!(m.counters.kills, 1);
    m.handle(Event::Timer, at(12001, 800));
    assert_eq!(
        m.stall, None,
        "events with memory to spare do not extend the stall"
    );
    // Short again (the hog came back): a new stall, killed after psi_kill_ms.
    assert_eq!(kinds(&m.handle(Event::Psi, at(13000, 40))), vec!["Trigger"]);
    assert!(kinds(&m.handle(Event::Psi, at(15000, 40))).contains(&"Kill".to_string()));
    // Unknown memory figures do not block a kill.
    let mut m = Machine::new(Mode::Fallback, old_rules(), false);
    let unknown = |ms| Facts {
        now_ms: ms,
        ..Facts::default()
    };
    m.handle(Event::Psi, unknown(0));
    assert!(kinds(&m.handle(Event::Psi, unknown(2000))).contains(&"Kill".to_string()));
}

#[test]
fn a_stall_with_memory_to_spare_is_not_an_oom() {
    // Regression (CI, 6.12): a boot-time stall on a starved VM host made
    // the guard trigger the module, which wrote a crash flag.
    for mode in [Mode::Kernel, Mode::Fallback] {
        let mut m = Machine::new(mode, old_rules(), true);
        let mut logs = 0;
        for t in (0..10_000).step_by(1000) {
            let a = m.handle(Event::Psi, at(t, 500));
            assert!(kinds(&a).is_empty(), "{mode:?} at {t} ms: {a:?}");
            logs += a.iter().filter(|x| matches!(x, Action::Log(..))).count();
        }
        assert_eq!(logs, 1, "logged once, not once per event");
        assert_eq!(m.stall, None);
        assert_eq!(m.oom, None);
        assert!(m.buffer_armed);
        assert_eq!(m.counters.stall_events, 10);
    }
}

#[test]
fn kernel_mode_backstop_reboots_only_well_after_gracetime() {
    let p = Params {
        gracetime: 10,
        psi_kill_ms: 0,
        ..old_rules()
    };
    let mut m = Machine::new(Mode::Kernel, p, false);
    m.handle(Event::Psi, at(0, 10));
    for t in (1000..=15000).step_by(1000) {
        m.handle(Event::Psi, at(t, 10));
    }
    assert_eq!(m.next_deadline(), Some(15000));
    assert!(m
        .handle(Event::Timer, at(15000, 10))
        .contains(&Action::Reboot));
}

#[test]
fn kernel_mode_logs_module_transitions_and_appends_victims() {
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    let s = crate::module_status::parse("state=oom\n");
    let a = m.handle(Event::Module(s.clone()), at(0, 100));
    assert_eq!(
        kinds(&a),
        vec!["AppendFlag(\"mem_available_kb=102400\\n\")"]
    );
    assert!(
        m.handle(Event::Module(s), at(1, 100)).is_empty(),
        "no change, nothing to say"
    );
    let a = m.handle(
        Event::OomKill(Some(Victim {
            pid: 1,
            comm: "a b".into(),
            rss_kb: 2,
            cgroup: None,
        })),
        at(2, 100),
    );
    assert_eq!(
        kinds(&a),
        vec!["WatchExit(1)", "AppendFlag(\"victim=1 a b 2\\n\")"]
    );
    assert_eq!(m.oom, None, "the module owns the OOM state in kernel mode");
}

#[test]
fn no_flag_when_crashflag_is_off_and_no_release_without_buffer() {
    let p = Params {
        crashflag: false,
        ..old_rules()
    };
    let mut m = Machine::new(Mode::Fallback, p, false);
    let a = m.handle(Event::OomKill(None), at(0, 10));
    assert!(kinds(&a).is_empty(), "{a:?}");
    let a = m.handle(Event::Timer, at(5000, 100));
    assert!(!kinds(&a).contains(&"RemoveFlag".to_string()));
}

#[test]
fn the_oldest_watched_victim_is_given_up_past_the_limit() {
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    let mut unwatched = Vec::new();
    for pid in 100..100 + MAX_WATCHED_VICTIMS as u32 + 2 {
        for a in m.handle(victim(pid), at(u64::from(pid), 10)) {
            if let Action::Unwatch(p) = a {
                unwatched.push(p);
            }
        }
        // Victims past the awaited limit are not watched at all; exits
        // keep the watched set small.
        m.handle(Event::VictimExited(pid), at(u64::from(pid), 10));
    }
    assert!(unwatched.is_empty(), "{unwatched:?}");
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    for round in 0..2u32 {
        for pid in 0..MAX_WATCHED_VICTIMS as u32 {
            let pid = 1000 * (round + 1) + pid;
            for a in m.handle(victim(pid), at(u64::from(pid), 10)) {
                if let Action::Unwatch(p) = a {
                    unwatched.push(p);
                }
            }
        }
        // The stall is over: a new round of victims is awaited afresh.
        m.awaiting = None;
    }
    assert_eq!(unwatched, (1000..1016).collect::<Vec<u32>>());
}

#[test]
fn a_failing_trigger_is_logged_once_per_streak() {
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    let err = || Event::Triggered(Err("EACCES".into()));
    assert!(logged(&m.handle(err(), at(0, 10)), "cannot write /"));
    assert!(m.handle(err(), at(1000, 10)).is_empty());
    assert!(m.handle(Event::Triggered(Ok(())), at(2000, 10)).is_empty());
    assert!(logged(&m.handle(err(), at(3000, 10)), "cannot write /"));
}

#[test]
fn kernel_mode_drops_waiting_victim_lines_once_the_oom_is_over() {
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    let a = m.handle(victim(9), at(0, 10));
    // No module OOM state and no stall: the line is sent, then dropped.
    assert!(a.contains(&Action::AppendFlag("victim=9 hog 1000\n".into())));
    assert_eq!(a.last(), Some(&Action::DropPendingLines));
    m.handle(Event::Psi, at(100, 10));
    let a = m.handle(victim(10), at(200, 10));
    assert!(
        !a.contains(&Action::DropPendingLines),
        "stall goes on: {a:?}"
    );
    let a = m.handle(Event::Timer, at(100 + STALL_GAP_MIN_MS + 1, 10));
    assert!(a.contains(&Action::DropPendingLines), "{a:?}");
}

#[test]
fn reload_reopens_psi_and_replaces_the_buffer_only_when_they_change() {
    let mut m = fallback(old_rules());
    let a = m.handle(Event::Reload(old_rules()), at(0, 500));
    assert_eq!(kinds(&a), Vec::<String>::new());
    let p = Params {
        bufsize: 64,
        psi_stall_ms: 200,
        ..old_rules()
    };
    let a = m.handle(Event::Reload(p), at(0, 500));
    assert_eq!(kinds(&a), vec!["ReopenPsi", "ReplaceBuffer"]);
    assert_eq!(m.params().bufsize, 64);
    assert!(logged(&a, "reloaded parameters (SIGHUP): "));
    m.handle(Event::BufferReplaced(false), at(1, 500));
    assert_eq!(m.state_word(), "off");
}

#[test]
fn reload_in_kernel_mode_writes_the_module_keys_that_changed() {
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    let sets = |a: &[Action]| a.iter().any(|x| matches!(x, Action::SetSysctl(..)));
    let a = m.handle(Event::Reload(old_rules()), at(0, 500));
    assert!(!sets(&a), "{a:?}");
    let p = Params {
        bufsize: 8,
        crashflag_name: "/var/oomflag".into(),
        psi_stall_ms: 200,
        ..old_rules()
    };
    let a = m.handle(Event::Reload(p.clone()), at(0, 500));
    let set: Vec<_> = a
        .iter()
        .filter_map(|x| match x {
            Action::SetSysctl(k, v) => Some((*k, v.as_str())),
            _ => None,
        })
        .collect();
    // The path before bufsize, as init writes them; psi is not a sysctl.
    assert_eq!(set, [("crashflag_name", "/var/oomflag"), ("bufsize", "8")]);
    // Fallback mode has no module to tell.
    let mut f = fallback(old_rules());
    let a = f.handle(Event::Reload(p), at(0, 500));
    assert!(!sets(&a), "{a:?}");
}

#[test]
fn victims_oom_ext_killed_itself_are_awaited_like_the_kernels() {
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    m.handle(Event::Psi, at(0, 10));
    assert!(m.handle(Event::Psi, at(2000, 10)).contains(&Action::Kill));
    let v = |pid| Victim {
        pid,
        comm: "leak".into(),
        rss_kb: 2048,
        cgroup: None,
    };
    let a = m.handle(Event::Killed(vec![v(70), v(71)]), at(2010, 10));
    assert!(a.contains(&Action::WatchExit(70)), "{a:?}");
    assert!(a.contains(&Action::WatchExit(71)), "{a:?}");
    assert!(a.contains(&Action::AppendFlag(v(70).line())), "{a:?}");
    // The executor logged the kill with its reasons: no second line.
    assert!(!logged(&a, "OOM killer killed"), "{a:?}");
    assert_eq!(m.counters.victims, 2);
    assert!(!m.handle(Event::Psi, at(4100, 10)).contains(&Action::Kill));
    m.handle(Event::VictimExited(70), at(4200, 10));
    m.handle(Event::VictimExited(71), at(4300, 10));
    assert_eq!(m.awaiting, None);
    // Nobody killed (a dry run, or sysrq f written): nothing to await but
    // the kill itself, as before.
    assert!(m.handle(Event::Killed(Vec::new()), at(4400, 10)).is_empty());
    let mut m = fallback(old_rules());
    assert!(m.handle(Event::Killed(Vec::new()), at(0, 10)).is_empty());
}

#[test]
fn policy_panic_marks_the_flag_then_panics_or_reboots_at_the_first_oom() {
    let panic = || {
        let mut p = old_rules();
        p.set("policy", "panic").unwrap();
        p
    };
    // Kernel mode: the module entered its OOM state (notifier or trigger).
    let mut m = Machine::new(Mode::Kernel, panic(), false);
    let a = m.handle(
        Event::Module(crate::module_status::parse("state=oom\n")),
        at(0, 100),
    );
    assert_eq!(
        kinds(&a),
        vec![
            "AppendFlag(\"mem_available_kb=102400\\n\")",
            "AppendFlag(\"policy=panic\\n\")",
            "Panic"
        ]
    );
    assert!(logged(&a, "oom_ext.policy=panic: the first OOM"), "{a:?}");
    assert!(
        m.handle(Event::Psi, at(10, 10)).is_empty(),
        "nothing after the panic"
    );
    // A state other than oom is no OOM.
    let mut m = Machine::new(Mode::Kernel, panic(), false);
    let a = m.handle(
        Event::Module(crate::module_status::parse("state=armed\n")),
        at(0, 100),
    );
    assert!(!a.contains(&Action::Panic));
    // Fallback mode: the guard's own first OOM evidence, flag first.
    let mut m = fallback(panic());
    let k = kinds(&m.handle(Event::Psi, at(0, 10)));
    let flag = k.iter().position(|x| x.starts_with("CreateFlag")).unwrap();
    let mark = k
        .iter()
        .position(|x| x == "AppendFlag(\"policy=panic\\n\")")
        .unwrap();
    assert!(
        flag < mark && k.last().map(String::as_str) == Some("Reboot"),
        "{k:?}"
    );
    // The default policy kills, as before.
    let mut m = fallback(old_rules());
    assert!(!kinds(&m.handle(Event::Psi, at(0, 10))).contains(&"Reboot".to_string()));
}

fn memcg_kill(pid: u32) -> Event {
    Event::MemcgKill(MemcgKill {
        victim: Victim {
            pid,
            comm: "stress-ng-vm".into(),
            rss_kb: 63148,
            cgroup: None,
        },
        memcg: Some("/system.slice/memhog.service".into()),
    })
}

#[test]
fn a_cgroup_kill_is_counted_and_no_oom_evidence() {
    // Issue 17: a MemoryMax= unit's OOM kill, with memory to spare or not.
    let mut m = fallback(old_rules());
    for mem_mb in [500, 10] {
        let a = m.handle(memcg_kill(9), at(1000, mem_mb));
        assert!(kinds(&a).is_empty(), "{a:?}");
        assert!(a.contains(&Action::WriteState), "{a:?}");
        assert!(
            logged(&a, "cgroup OOM: the kernel killed pid 9 (stress-ng-vm), anon-rss 63148 kB, at the memory limit of /system.slice/memhog.service: not a system OOM"),
            "{a:?}"
        );
    }
    assert_eq!(m.state_word(), "armed");
    assert_eq!(m.next_deadline(), None);
    assert_eq!(m.counters.memcg_kills, 2);
    assert_eq!((m.counters.oom_events, m.counters.victims), (0, 0));
    // A system OOM after them: its flag says how many came before, and a
    // cgroup kill during it is added; no victim is awaited for it.
    let a = m.handle(Event::OomKill(None), at(2000, 500));
    assert!(
        a.contains(&Action::AppendFlag("memcg_kills=2\n".into())),
        "{a:?}"
    );
    let a = m.handle(memcg_kill(10), at(2100, 500));
    assert_eq!(kinds(&a), vec!["AppendFlag(\"memcg_kills=3\\n\")"]);
    assert_eq!(m.counters.oom_events, 1);
}

#[test]
fn kernel_mode_adds_cgroup_kills_to_the_modules_flag_during_its_oom_state() {
    let mut m = Machine::new(Mode::Kernel, old_rules(), false);
    m.handle(
        Event::Module(crate::module_status::parse("state=armed\n")),
        at(0, 500),
    );
    let a = m.handle(memcg_kill(9), at(100, 500));
    assert!(kinds(&a).is_empty(), "{a:?}");
    let a = m.handle(
        Event::Module(crate::module_status::parse("state=oom\n")),
        at(200, 10),
    );
    assert!(
        a.contains(&Action::AppendFlag("memcg_kills=1\n".into())),
        "{a:?}"
    );
    let a = m.handle(memcg_kill(10), at(300, 10));
    assert!(
        a.contains(&Action::AppendFlag("memcg_kills=2\n".into())),
        "{a:?}"
    );
    assert_eq!(m.counters.memcg_kills, 2);
}
