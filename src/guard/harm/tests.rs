use super::*;

const TOTAL_KB: u64 = 480 * 1024;

/// A trace: (ms, PSI full share of the last 100 ms in %, MemAvailable MiB,
/// SwapFree MiB) per sample; full_us accumulates.
fn run(m: &mut Model, start_ms: u64, trace: &[(u64, u64, u64, u64)]) -> Vec<(u64, Decision)> {
    let mut full_us = 0;
    let mut out = Vec::new();
    for &(t, full_pct, avail_mb, swap_mb) in trace {
        full_us += full_pct * SAMPLE_MS * 10;
        let d = m.sample(Sample {
            now_ms: start_ms + t,
            full_us,
            avail_kb: avail_mb * 1024,
            swap_free_kb: swap_mb * 1024,
            total_kb: TOTAL_KB,
        });
        out.push((start_ms + t, d));
    }
    out
}

fn responses(ds: &[(u64, Decision)]) -> Vec<(u64, Response)> {
    ds.iter()
        .filter_map(|(t, d)| d.response.map(|r| (*t, r)))
        .collect()
}

/// Samples every 100 ms from `from` to `to` (exclusive) with one shape.
fn flat(
    from: u64,
    to: u64,
    full_pct: u64,
    avail_mb: u64,
    swap_mb: u64,
) -> Vec<(u64, u64, u64, u64)> {
    (from / SAMPLE_MS..to / SAMPLE_MS)
        .map(|i| (i * SAMPLE_MS, full_pct, avail_mb, swap_mb))
        .collect()
}

#[test]
fn nothing_without_an_episode() {
    let mut m = Model::new(HarmParams::default());
    assert_eq!(m.next_sample_ms(), None);
    let ds = run(&mut m, 0, &flat(0, 3000, 100, 2, 0));
    assert!(responses(&ds).is_empty());
}

#[test]
fn a_plateau_below_the_limit_is_use_not_harm() {
    // A job holding 94 % of RAM with some pressure but no freeze.
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let ds = run(&mut m, 0, &flat(0, 20_000, 5, 29, 0));
    assert!(responses(&ds).is_empty(), "{:?}", responses(&ds));
}

#[test]
fn a_freeze_releases_first_and_kills_only_if_it_goes_on() {
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let ds = run(&mut m, 0, &flat(0, 4000, 80, 10, 0));
    let r = responses(&ds);
    assert_eq!(r[0].1, Response::Release);
    let first_kill = r.iter().find(|(_, r)| *r == Response::Kill).unwrap().0;
    // The release once half a window is seen; the kill act_ms after it.
    assert!(first_kill >= r[0].0 + 1000, "{r:?}");
    assert!(first_kill <= r[0].0 + 1200, "{r:?}");
}

#[test]
fn a_freeze_that_ends_after_the_release_kills_nobody() {
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let mut trace = flat(0, 800, 80, 10, 0);
    trace.extend(flat(800, 8000, 0, 42, 0));
    let r = responses(&run(&mut m, 0, &trace));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].1, Response::Release);
}

#[test]
fn a_storm_is_met_before_the_freeze() {
    // Headroom falling 100 MiB/s from 70 MiB, no freeze yet: the release
    // comes on the runway, the kill when the headroom is at the floor.
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let trace: Vec<_> = (0..12u64)
        .map(|i| (i * 100, 0, 70u64.saturating_sub(i * 10).max(5), 0))
        .collect();
    let r = responses(&run(&mut m, 0, &trace));
    assert_eq!(r[0].1, Response::Release, "{r:?}");
    assert!(r.iter().any(|(_, x)| *x == Response::Kill), "{r:?}");
}

#[test]
fn a_ramp_that_stops_above_the_floor_is_released_for_not_killed() {
    // 50 MiB/s down to 29 MiB left, then held: the runway calls for the
    // release, the plateau for nothing more.
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let mut trace: Vec<_> = (0..30u64).map(|i| (i * 100, 0, 180 - i * 5, 0)).collect();
    let last = trace.last().unwrap().2;
    assert_eq!(last, 35);
    trace.extend(flat(3000, 25_000, 3, 29, 0));
    let r = responses(&run(&mut m, 0, &trace));
    assert!(r.iter().all(|(_, x)| *x == Response::Release), "{r:?}");
}

#[test]
fn headroom_at_the_floor_and_rising_is_memory_coming_back() {
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, false);
    let trace: Vec<_> = (0..20u64).map(|i| (i * 100, 0, 4 + i / 2, 0)).collect();
    assert!(responses(&run(&mut m, 0, &trace)).is_empty());
}

#[test]
fn swap_counts_as_headroom() {
    // RAM full, 200 MiB of swap left, falling 8 MiB/s: not exhausted, no
    // runway harm; only a freeze would be harm.
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let trace: Vec<_> = (0..50u64)
        .map(|i| (i * 100, 0, 6, 200 - (i * 8) / 10))
        .collect();
    assert!(responses(&run(&mut m, 0, &trace)).is_empty());
}

#[test]
fn memory_to_spare_is_never_harm() {
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let r = responses(&run(&mut m, 0, &flat(0, 5000, 100, 300, 0)));
    assert!(r.is_empty(), "{r:?}");
}

#[test]
fn without_a_buffer_the_first_response_is_the_kill() {
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, false);
    let r = responses(&run(&mut m, 0, &flat(0, 2000, 80, 10, 0)));
    assert_eq!(r[0].1, Response::Kill, "{r:?}");
    assert!(r[0].0 >= 1000, "{r:?}");
}

#[test]
fn a_kill_made_restarts_the_wait() {
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, false);
    let mut t = 0;
    let mut full_us = 0;
    let mut kills = Vec::new();
    while t < 5000 {
        full_us += 80 * SAMPLE_MS * 10;
        let d = m.sample(Sample {
            now_ms: t,
            full_us,
            avail_kb: 10 * 1024,
            swap_free_kb: 0,
            total_kb: TOTAL_KB,
        });
        if d.response == Some(Response::Kill) {
            kills.push(t);
            m.killed(t);
        }
        t += SAMPLE_MS;
    }
    assert!(kills.len() >= 3, "{kills:?}");
    for w in kills.windows(2) {
        assert!(w[1] - w[0] >= 1000, "{kills:?}");
    }
}

#[test]
fn the_episode_ends_when_calm_and_sampling_stops() {
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    // At once, but never 0: that would disarm the guard's timerfd (a VM
    // run with harm=1 sampled nothing for that reason).
    assert_eq!(m.next_sample_ms(), Some(1));
    run(&mut m, 0, &flat(0, CALM_MS + 300, 0, 200, 0));
    assert!(!m.in_episode());
    assert_eq!(m.next_sample_ms(), None);
}

#[test]
fn why_says_what_was_measured() {
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let ds = run(&mut m, 0, &flat(0, 1100, 80, 10, 0));
    let why = ds
        .iter()
        .find(|(_, d)| d.response.is_some())
        .unwrap()
        .1
        .why();
    assert!(
        why.starts_with("memory freeze: freeze 80.0% of 500 ms"),
        "{why}"
    );
}

// ---- measured traces (tests/vm/probe-stall, 6.1, no guard; docs/stall.md)

#[path = "traces.rs"]
mod traces;

/// What the guard would do along a measured trace: a PSI trigger of 150 ms
/// in 1 s starts an episode, samples as measured, kills reported as made.
/// Returns (ms, response, why) for each response.
fn replay(trace: &[(u64, u64, u64, u64, u64, u64)], total_kb: u64) -> Vec<(u64, Response, String)> {
    let mut m = Model::new(HarmParams::default());
    let mut out = Vec::new();
    let mut last_event: Option<u64> = None;
    for (i, &(t, _, full_us, avail_kb, swap_free_kb, _)) in trace.iter().enumerate() {
        let back = trace[..=i].iter().rev().find(|r| t - r.0 >= 1000);
        if let Some(b) = back {
            let some = trace[i].1 - b.1;
            if some >= 150_000 && last_event.map_or(true, |e| t >= e + 1000) {
                last_event = Some(t);
                m.pressure(t, true);
            }
        }
        let d = m.sample(Sample {
            now_ms: t,
            full_us,
            avail_kb,
            swap_free_kb,
            total_kb,
        });
        if let Some(r) = d.response {
            if r == Response::Kill {
                m.killed(t);
            }
            out.push((t, r, d.why()));
        }
    }
    out
}

/// The first heartbeat gap of at least `ms`: (when it ended, how long).
fn first_freeze(trace: &[(u64, u64, u64, u64, u64, u64)], ms: u64) -> Option<(u64, u64)> {
    trace.iter().find(|r| r.5 >= ms).map(|r| (r.0, r.5))
}

const PROBE_TOTAL_KB: u64 = 468_392;

#[test]
fn measured_near_miss_that_keeps_touching_its_memory_is_not_killed() {
    let r = replay(traces::NEARMISS_ACTIVE, PROBE_TOTAL_KB);
    assert!(r.iter().all(|(_, x, _)| *x != Response::Kill), "{r:#?}");
}

#[test]
fn measured_near_miss_that_only_holds_its_memory_is_not_killed() {
    let r = replay(traces::NEARMISS_HOLD, PROBE_TOTAL_KB);
    assert!(r.iter().all(|(_, x, _)| *x != Response::Kill), "{r:#?}");
}

#[test]
fn measured_storm_is_killed_before_its_first_freeze() {
    let r = replay(traces::STORM, PROBE_TOTAL_KB);
    let kill = r
        .iter()
        .find(|(_, x, _)| *x == Response::Kill)
        .expect("a kill");
    assert_eq!(r[0].1, Response::Release, "{r:#?}");
    let (freeze_end, len) = first_freeze(traces::STORM, 2000).unwrap();
    assert!(
        kill.0 < freeze_end - len,
        "kill at {} ms, freeze {len} ms to {freeze_end} ms: {r:#?}",
        kill.0
    );
}

#[test]
fn the_defaults_are_the_parameter_table_s() {
    assert_eq!(
        HarmParams::from_params(&crate::params::Params::default()),
        HarmParams::default()
    );
}

#[test]
fn measured_thrash_is_killed_before_its_freeze() {
    // PSI full stays at 10-25 % for 20 s while dd streams and memory is
    // still there: no kill for that; the kill comes with the floor.
    let r = replay(traces::THRASH, PROBE_TOTAL_KB);
    let kill = r
        .iter()
        .find(|(_, x, _)| *x == Response::Kill)
        .expect("a kill");
    let (freeze_end, len) = first_freeze(traces::THRASH, 2000).unwrap();
    assert!(
        kill.0 < freeze_end - len,
        "kill at {} ms, freeze {len} ms to {freeze_end} ms: {r:#?}",
        kill.0
    );
    assert!(kill.2.contains("exhausted"), "{r:#?}");
}

#[test]
fn measured_swap_leak_is_killed_in_its_first_long_freeze() {
    // RAM full, swap falling at the throttled disk's pace: the headroom
    // (with swap) is 200+ MiB, so neither runway nor floor calls it harm;
    // the freeze does. The heartbeat froze from 53.5 s to 60.0 s (6.5 s;
    // the sampler froze too, so the trace's own gap column misses it):
    // the kill comes inside that freeze, not before it (a case the model
    // loses to the old rules, which killed at 39 s: docs/stall.md).
    let r = replay(traces::SWAPLEAK, PROBE_TOTAL_KB);
    assert_eq!(r[0].1, Response::Release, "{r:#?}");
    let kill = r
        .iter()
        .find(|(_, x, _)| *x == Response::Kill)
        .expect("a kill");
    assert!(kill.0 > 53_500 && kill.0 < 60_000, "{r:#?}");
    assert!(kill.2.starts_with("memory freeze"), "{r:#?}");
}
