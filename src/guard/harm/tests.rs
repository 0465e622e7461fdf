use super::*;

const TOTAL_KB: u64 = 480 * 1024;

/// Swapped out so far, kB, along a trace: what SwapFree lost (pages that
/// come back from swap free no slot while swap is not half full, so the
/// fall of SwapFree is what `pswpout` counted; docs/stall.md).
struct SwapOut {
    last_kb: Option<u64>,
    out_kb: u64,
}

impl SwapOut {
    fn new() -> Self {
        SwapOut {
            last_kb: None,
            out_kb: 0,
        }
    }

    fn at(&mut self, swap_free_kb: u64) -> u64 {
        if let Some(l) = self.last_kb {
            self.out_kb += l.saturating_sub(swap_free_kb);
        }
        self.last_kb = Some(swap_free_kb);
        self.out_kb
    }
}

/// A trace: (ms, PSI full share of the last 100 ms in %, MemAvailable MiB,
/// SwapFree MiB) per sample; full_us accumulates, swap-out is SwapFree's
/// fall.
fn run(m: &mut Model, start_ms: u64, trace: &[(u64, u64, u64, u64)]) -> Vec<(u64, Decision)> {
    let mut full_us = 0;
    let mut swap_out = SwapOut::new();
    let mut out = Vec::new();
    for &(t, full_pct, avail_mb, swap_mb) in trace {
        full_us += full_pct * SAMPLE_MS * 10;
        let d = m.sample(Sample {
            now_ms: start_ms + t,
            full_us,
            avail_kb: avail_mb * 1024,
            swap_free_kb: swap_mb * 1024,
            swap_out_kb: swap_out.at(swap_mb * 1024),
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
    // The release once half a window is seen; the kill once the machine
    // was frozen act_ms since (1.25 s at 80 %).
    assert!(first_kill >= r[0].0 + 1000, "{r:?}");
    assert!(first_kill <= r[0].0 + 1400, "{r:?}");
}

#[test]
fn short_freezes_that_keep_coming_add_up_to_a_kill() {
    // Stalled 20 % of every second, memory flat at 30 MiB: no second is
    // a 30 % freeze, but the machine does not get better: released once
    // the stalls add up to act_ms, killed when they do so again.
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let trace = flat(0, 15_000, 20, 30, 0);
    let ds = run(&mut m, 0, &trace);
    assert!(ds
        .iter()
        .all(|(_, d)| d.measures.map_or(true, |x| x.freeze_pm < 300)));
    let r = responses(&ds);
    assert_eq!(r.first().map(|x| x.1), Some(Response::Release), "{r:?}");
    let kill = r.iter().find(|x| x.1 == Response::Kill).expect("a kill");
    assert!(r[0].0 >= 4900 && r[0].0 <= 5200, "{r:?}");
    assert!(kill.0 >= r[0].0 + 4900 && kill.0 <= r[0].0 + 5200, "{r:?}");
    assert!(ds.iter().any(|(_, d)| d.harm == Some(Harm::Frozen)));
}

#[test]
fn one_short_freeze_then_calm_is_not_harm_that_goes_on() {
    // A near miss's ramp: 600 ms of freeze in all, then nothing for 10 s.
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let mut trace = flat(0, 1500, 40, 30, 0);
    trace.extend(flat(1500, 12_000, 0, 30, 0));
    let r = responses(&run(&mut m, 0, &trace));
    assert!(r.iter().all(|(_, x)| *x == Response::Release), "{r:?}");
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
fn swap_that_keeps_pace_counts_as_headroom() {
    // RAM held at 20 MiB (above the 14 MiB floor), 400 MiB of swap left
    // taking 40 MiB/s (a fast disk): the swap the disk takes within the
    // runway is headroom enough; only a freeze would be harm.
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let trace: Vec<_> = (0..50u64).map(|i| (i * 100, 0, 20, 400 - i * 4)).collect();
    let ds = run(&mut m, 0, &trace);
    assert!(responses(&ds).is_empty(), "{:?}", responses(&ds));
    let m = ds.last().unwrap().1.measures.unwrap();
    assert_eq!(m.swap_kb / 1024, 80, "{m:?}");
}

#[test]
fn swap_a_slow_disk_cannot_take_is_not_headroom() {
    // The swap leak's shape: 200 MiB of swap free, but the disk takes
    // 0.5 MiB/s while MemAvailable falls 4 MiB/s to the floor and stays:
    // released on the runway, killed at the floor. (Counted whole, the
    // swap kept the headroom at 200 MiB: no harm without a freeze.)
    let mut m = Model::new(HarmParams::default());
    m.pressure(0, true);
    let trace: Vec<_> = (0..80u64)
        .map(|i| {
            (
                i * 100,
                0,
                40u64.saturating_sub(i * 4 / 10).max(10),
                200 - i / 20,
            )
        })
        .collect();
    let r = responses(&run(&mut m, 0, &trace));
    assert_eq!(r.first().map(|x| x.1), Some(Response::Release), "{r:?}");
    let kill = r.iter().find(|x| x.1 == Response::Kill).expect("a kill");
    // MemAvailable reaches the floor (19 MiB) at 5.3 s.
    assert!(kill.0 >= 5300 && kill.0 <= 5800, "{r:?}");
}

#[test]
fn the_runway_off_counts_all_swap() {
    let p = HarmParams {
        runway_ms: 0,
        ..HarmParams::default()
    };
    let mut m = Model::new(p);
    m.pressure(0, true);
    let trace: Vec<_> = (0..50u64).map(|i| (i * 100, 0, 6, 200)).collect();
    let ds = run(&mut m, 0, &trace);
    assert!(responses(&ds).is_empty(), "{:?}", responses(&ds));
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
            swap_out_kb: 0,
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
    replay_with(trace, total_kb, HarmParams::default())
}

fn replay_with(
    trace: &[(u64, u64, u64, u64, u64, u64)],
    total_kb: u64,
    p: HarmParams,
) -> Vec<(u64, Response, String)> {
    let rows: Vec<_> = trace.iter().map(|r| (r.0, r.1, r.2, r.3, r.4)).collect();
    let mut swap_out = SwapOut::new();
    replay_rows(
        &rows,
        |_, swap_free_kb| swap_out.at(swap_free_kb),
        total_kb,
        p,
    )
}

/// The replay itself, over (ms, PSI some us, PSI full us, MemAvailable kB,
/// SwapFree kB) rows; `swap_out(i, swap_free_kb)` gives row i's swap-out.
fn replay_rows(
    rows: &[(u64, u64, u64, u64, u64)],
    mut swap_out: impl FnMut(usize, u64) -> u64,
    total_kb: u64,
    p: HarmParams,
) -> Vec<(u64, Response, String)> {
    let mut m = Model::new(p);
    let mut out = Vec::new();
    let mut last_event: Option<u64> = None;
    for (i, &(t, some_us, full_us, avail_kb, swap_free_kb)) in rows.iter().enumerate() {
        if let Some(b) = rows[..=i].iter().rev().find(|r| t - r.0 >= 1000) {
            if some_us - b.1 >= 150_000 && last_event.map_or(true, |e| t >= e + 1000) {
                last_event = Some(t);
                m.pressure(t, true);
            }
        }
        let d = m.sample(Sample {
            now_ms: t,
            full_us,
            avail_kb,
            swap_free_kb,
            swap_out_kb: swap_out(i, swap_free_kb),
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
    // PSI full stays at 10-25 % for 20 s while dd streams and the hog
    // eats on: no second is a 30 % freeze, but they add up. Released at
    // 18.2 s (frozen 1.07 s of the last 6.3 s), killed at 24.0 s (frozen
    // 1.0 s more since), 11 s before the 25 s freeze; the floor alone
    // killed at 32.5 s.
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
    assert!(kill.2.starts_with("memory freezes going on"), "{r:#?}");
    assert!(kill.0 < 25_000, "{r:#?}");
}

#[test]
fn measured_swap_leak_is_killed_before_its_first_long_freeze() {
    // RAM full, 200+ MiB of swap free, but the throttled disk takes next
    // to nothing between bursts: the headroom is MemAvailable, which
    // reaches the 4 % floor (18 MiB) at 52.5 s. The heartbeat froze from
    // 53.5 s to 60.0 s (6.5 s; the sampler froze too, so the trace's own
    // gap column misses it).
    let r = replay(traces::SWAPLEAK, PROBE_TOTAL_KB);
    assert_eq!(r[0].1, Response::Release, "{r:#?}");
    let kill = r
        .iter()
        .find(|(_, x, _)| *x == Response::Kill)
        .expect("a kill");
    assert!(kill.0 > 50_000 && kill.0 < 53_500, "{r:#?}");
    assert!(kill.2.starts_with("memory exhausted"), "{r:#?}");
}

/// The first kill along a trace with other parameters.
fn first_kill(trace: &[(u64, u64, u64, u64, u64, u64)], p: HarmParams) -> Option<u64> {
    replay_with(trace, PROBE_TOTAL_KB, p)
        .into_iter()
        .find(|(_, x, _)| *x == Response::Kill)
        .map(|(t, _, _)| t)
}

#[test]
fn the_floor_lies_between_the_swap_leak_and_the_near_misses() {
    // Why 4 %: at 3 % (the first choice) the swap leak's first kill came
    // from the freeze, 1.8 s into it (before freezes added up; now from
    // them, at 53.0 s, 0.5 s before it); at 4 % from the floor at 52.5 s.
    // The near misses' plateaus (4.8 % and 6 %) stay above 4 % with room
    // to spare, and at 5 % the touching one is killed.
    let at = |floor_pct| HarmParams {
        floor_pct,
        ..HarmParams::default()
    };
    let three = first_kill(traces::SWAPLEAK, at(3)).expect("a kill at 3 %");
    let four = first_kill(traces::SWAPLEAK, at(4)).expect("a kill at 4 %");
    assert!(four < three && four < 53_000, "{four} {three}");
    for t in [traces::NEARMISS_ACTIVE, traces::NEARMISS_HOLD] {
        assert_eq!(first_kill(t, at(4)), None);
    }
    assert!(first_kill(traces::NEARMISS_ACTIVE, at(5)).is_some());
}

#[test]
fn measured_swap_leak_counted_whole_is_left_to_the_freeze() {
    // The model before the swap-out rate (all SwapFree headroom) is the
    // runway off here: the kill waits for the freezes (before they were
    // added up: inside the 53.5 s freeze; now at 53.0 s, 0.5 s later
    // than the floor's 52.5 s with the swap-out rate).
    let p = HarmParams {
        runway_ms: 0,
        ..HarmParams::default()
    };
    let r = replay_with(traces::SWAPLEAK, PROBE_TOTAL_KB, p);
    let kill = r
        .iter()
        .find(|(_, x, _)| *x == Response::Kill)
        .expect("a kill");
    assert!(
        kill.0 > 52_500 && kill.2.starts_with("memory freeze"),
        "{r:#?}"
    );
}

/// `replay` for a trace with its own `pswpout` column.
fn replay_pswpout(
    trace: &[(u64, u64, u64, u64, u64, u64, u64)],
    p: HarmParams,
) -> Vec<(u64, Response, String)> {
    let rows: Vec<_> = trace.iter().map(|r| (r.0, r.1, r.2, r.3, r.4)).collect();
    replay_rows(&rows, |i, _| trace[i].5, SWAPLEAK_PSWPOUT_TOTAL_KB, p)
}

const SWAPLEAK_PSWPOUT_TOTAL_KB: u64 = 468_380;

#[test]
fn measured_swap_leak_with_its_pswpout_is_killed_at_the_floor() {
    // A second run (tenth session), pswpout recorded: the disk took
    // 0-1 MiB/s, then bursts of 13-49 MiB/s (queued for a 4 MiB/s disk),
    // then nothing; the heartbeat froze from 60.8 s to 81.0 s (20.2 s;
    // its 3.6 s gap at 40 s came with no memory pressure at all).
    let t = traces::SWAPLEAK_PSWPOUT;
    let (end, len) = t
        .iter()
        .find(|r| r.6 >= 10_000)
        .map(|r| (r.0, r.6))
        .unwrap();
    assert_eq!((end - len) / 100, 608, "{end} {len}");
    let r = replay_pswpout(t, HarmParams::default());
    let kill = r
        .iter()
        .find(|(_, x, _)| *x == Response::Kill)
        .expect("a kill");
    assert!(kill.0 < 54_000, "{r:#?}");
    assert!(kill.2.starts_with("memory exhausted"), "{r:#?}");
    // All of SwapFree as headroom (the runway off; 170-250 MiB of it):
    // only the freeze is harm (PSI full 77 %), 2.4 s later.
    let p = HarmParams {
        runway_ms: 0,
        ..HarmParams::default()
    };
    let r = replay_pswpout(t, p);
    let late = r
        .iter()
        .find(|(_, x, _)| *x == Response::Kill)
        .expect("a kill");
    assert!(
        late.0 >= kill.0 + 2000 && late.2.starts_with("memory freeze"),
        "{r:#?}"
    );
}

/// What the guard logged once a second (`harm model:` lines) in
/// `stall-thrash@6.1` with harm=1 (2026-12-02, eleventh session, a host at
/// load 10): (ms from the workload's start, PSI full share of the last
/// second per mille, headroom MiB); the buffer's 32 MiB came back at 28.3 s.
const VM_THRASH_SECONDS: &[(u64, u64, u64)] = &[
    (17_500, 151, 212),
    (18_700, 230, 199),
    (19_800, 75, 192),
    (20_900, 192, 185),
    (21_900, 169, 166),
    (23_000, 239, 119),
    (25_800, 161, 97),
    (27_200, 144, 90),
    (28_200, 196, 64),
    (28_300, 184, 96),
    (29_500, 10, 97),
    (30_500, 28, 87),
    (31_600, 252, 77),
    (32_700, 305, 67),
    (33_700, 299, 58),
    (34_400, 322, 51),
];

/// The seconds above as 100 ms samples: each second's share held over the
/// time to it, the headroom stepped.
fn vm_thrash_trace() -> Vec<(u64, u64, u64, u64)> {
    let mut out = Vec::new();
    let mut t = 16_900;
    for &(end, full_pm, avail_mb) in VM_THRASH_SECONDS {
        while t <= end {
            out.push((t, full_pm, avail_mb, 0));
            t += SAMPLE_MS;
        }
    }
    out
}

#[test]
fn vm_thrash_is_killed_when_its_short_freezes_add_up() {
    // The run the model failed before freezes were added up: no second
    // held a 30 % freeze for a second, and the hog ate the released
    // buffer too slowly to reach the floor within the workload's 40 s.
    // The guard released at 28.2 s (frozen 1.4 s of the last 10 s, memory
    // short from 64 MiB) and killed the hog at 34.4 s (frozen 1.0 s since).
    let total_kb = 468_392;
    let mut m = Model::new(HarmParams::default());
    m.pressure(16_800, true);
    let mut full_us = 0;
    let mut r = Vec::new();
    for (t, full_pm, avail_mb, _) in vm_thrash_trace() {
        // PSI `some` trigger events came on throughout.
        if t % 1000 == 0 {
            m.pressure(t, true);
        }
        full_us += full_pm * SAMPLE_MS;
        let d = m.sample(Sample {
            now_ms: t,
            full_us,
            avail_kb: avail_mb * 1024,
            swap_free_kb: 0,
            swap_out_kb: 0,
            total_kb,
        });
        if let Some(x) = d.response {
            r.push((t, x, d.why()));
        }
    }
    // (A second's headroom is held over the second before it here, so
    // memory is short a second early.)
    let release = r.first().expect("a release");
    assert_eq!(release.1, Response::Release, "{r:#?}");
    assert!(release.0 >= 27_000 && release.0 <= 28_300, "{r:#?}");
    assert!(release.2.starts_with("memory freezes going on"), "{r:#?}");
    let kill = r.iter().find(|x| x.1 == Response::Kill).expect("a kill");
    assert!(kill.0 >= 33_000 && kill.0 <= 34_400, "{r:#?}");
    // The held freeze (30 % in every window for act_ms) never came.
    let held_freeze = VM_THRASH_SECONDS
        .windows(2)
        .any(|w| w[0].1 >= 300 && w[1].1 >= 300 && w[1].0 - w[0].0 >= 1000);
    assert!(!held_freeze);
}
