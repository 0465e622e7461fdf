//! When to act on memory pressure: on harm, not on use (issue 16).
//!
//! Harm is memory pressure that freezes the machine now or will run it out
//! of memory within seconds; a machine that merely uses most of its RAM,
//! however hard, is left alone. While memory is short (MemAvailable below
//! `short_pct` of MemTotal) two measures are taken over the last second:
//! the **freeze**, the share of that second in which every task waited on
//! memory (PSI `full`), and the **runway**, the headroom above a floor
//! divided by how fast MemAvailable + SwapFree fell. The headroom is
//! MemAvailable plus the swap the swap device can take in time: SwapFree,
//! but at most what it took in the last second (`pswpout`) times
//! `runway_ms`; swap that a slow disk cannot fill in time is not room.
//! Harm is a freeze
//! of `freeze_pct` or more, a runway of `runway_ms` or less, or a machine
//! that does not get better: frozen `act_ms` in all (PSI `full` time, short
//! freezes added up) within the last `SUSTAIN_MS`. The first harm of an
//! episode releases the buffer; a kill follows only if harm goes on after
//! that: frozen `act_ms` in all since the last response (within
//! `SUSTAIN_MS`), or the headroom down at the floor and not coming back.
//! The model is sampled
//! only while an episode lasts (a PSI trigger starts one; `CALM_MS` without
//! pressure or harm ends it), so a calm machine costs no wake-ups.
//!
//! Pure: samples and the time in, responses out; docs/stall.md has the
//! measurements behind each parameter.

#![forbid(unsafe_code)]

use std::collections::VecDeque;

/// Sampling period while an episode lasts.
pub const SAMPLE_MS: u64 = 100;
/// The measures are taken over this much of the past.
pub const WINDOW_MS: u64 = 1000;
/// An episode ends after this long without a PSI event or harm.
pub const CALM_MS: u64 = 5000;
/// A shorter span says too little about a share or a rate.
const MIN_SPAN_MS: u64 = WINDOW_MS / 2;
/// Freezes add up over this much of the past: a machine frozen `act_ms`
/// in all within it is not getting better, however the freezes are cut
/// up (the thrash's 10-25 % PSI `full`, second after second; the near
/// misses' worst 10 s held 0.26-0.35 s: docs/stall.md).
pub const SUSTAIN_MS: u64 = 10_000;

/// The model's parameters (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HarmParams {
    /// A second in which every task waited on memory this share of the
    /// time (PSI `full`) is a freeze.
    pub freeze_pct: u32,
    /// Headroom that will be gone within this long is harm.
    pub runway_ms: u32,
    /// Headroom (MemAvailable + SwapFree) at or below this share of
    /// MemTotal is gone: the kill comes without waiting for a freeze.
    pub floor_pct: u32,
    /// Frozen this long in all (PSI `full` time) within SUSTAIN_MS, since
    /// the last response, calls for the next one.
    pub act_ms: u32,
    /// Only while MemAvailable is below this share of MemTotal can pressure
    /// be harm that a buffer or a kill would help.
    pub short_pct: u32,
}

impl Default for HarmParams {
    fn default() -> Self {
        HarmParams {
            freeze_pct: 30,
            runway_ms: 2000,
            floor_pct: 4,
            act_ms: 1000,
            short_pct: 15,
        }
    }
}

impl HarmParams {
    /// The tunables `harm_*` (src/params.rs); `short_pct` is the guard's
    /// MEMORY_SHORT_PCT, as for the PSI-some rules.
    pub fn from_params(p: &crate::params::Params) -> Self {
        HarmParams {
            freeze_pct: p.harm_freeze_pct,
            runway_ms: p.harm_runway_ms,
            floor_pct: p.harm_floor_pct,
            act_ms: p.harm_act_ms,
            short_pct: crate::guard::machine::MEMORY_SHORT_PCT as u32,
        }
    }
}

/// One reading of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// CLOCK_BOOTTIME (or any monotonic clock) in ms.
    pub now_ms: u64,
    /// PSI memory `full` total, µs (`/proc/pressure/memory`).
    pub full_us: u64,
    pub avail_kb: u64,
    pub swap_free_kb: u64,
    /// Swapped out since boot, kB (`pswpout` in /proc/vmstat times the
    /// page size); only its rate counts.
    pub swap_out_kb: u64,
    pub total_kb: u64,
}

impl Sample {
    /// What is left to fill: RAM and swap.
    fn left_kb(&self) -> u64 {
        self.avail_kb + self.swap_free_kb
    }
}

/// The measures over the last window, for decisions and log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measures {
    /// Share of the window in which every task waited on memory, per mille.
    pub freeze_pm: u32,
    /// PSI `full` time since the last response (or the episode's start),
    /// within the last SUSTAIN_MS, ms.
    pub frozen_ms: u64,
    /// The span `frozen_ms` was added up over, ms.
    pub frozen_span_ms: u64,
    /// MemAvailable plus `swap_kb`.
    pub headroom_kb: u64,
    /// The swap counted as headroom: SwapFree, at most the swap-out rate
    /// times `runway_ms`.
    pub swap_kb: u64,
    /// How fast MemAvailable + SwapFree fell, kB/s (negative: it grew).
    pub fall_kb_s: i64,
    /// Time until the headroom reaches the floor at that rate (None: not
    /// falling).
    pub runway_ms: Option<u64>,
    pub floor_kb: u64,
    pub short: bool,
    pub span_ms: u64,
}

/// What kind of harm, if any, the last window showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Harm {
    /// The machine is frozen: PSI `full` at or over `freeze_pct`.
    Freeze,
    /// The headroom is at the floor and not coming back.
    Exhausted,
    /// Frozen `act_ms` in all within SUSTAIN_MS: short freezes that keep
    /// coming.
    Frozen,
    /// The headroom will reach the floor within `runway_ms`.
    Runway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// First response to harm: release the emergency buffer (enter the OOM
    /// state).
    Release,
    /// Harm went on after the release: ask the kernel's OOM killer.
    Kill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub measures: Option<Measures>,
    pub harm: Option<Harm>,
    pub response: Option<Response>,
}

impl Decision {
    /// One line for the log: what was measured and why it counts.
    pub fn why(&self) -> String {
        let Some(m) = self.measures else {
            return "no measure yet".into();
        };
        let mib = |kb: u64| kb / 1024;
        let runway = match m.runway_ms {
            Some(ms) => format!("gone in {} ms", ms),
            None => "not falling".into(),
        };
        format!(
            "{}: freeze {}.{}% of {} ms, frozen {} ms of {} ms, headroom {} MiB ({} MiB of it swap; floor {} MiB) falling {} MiB/s, {}",
            match self.harm {
                Some(Harm::Freeze) => "memory freeze",
                Some(Harm::Exhausted) => "memory exhausted",
                Some(Harm::Frozen) => "memory freezes going on",
                Some(Harm::Runway) => "memory running out",
                None => "no harm",
            },
            m.freeze_pm / 10,
            m.freeze_pm % 10,
            m.span_ms,
            m.frozen_ms,
            m.frozen_span_ms,
            mib(m.headroom_kb),
            mib(m.swap_kb),
            mib(m.floor_kb),
            m.fall_kb_s / 1024,
            runway
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Episode {
    start_ms: u64,
    /// The last PSI event or harm: the episode ends CALM_MS after it.
    last_ms: u64,
    released: bool,
    last_response_ms: Option<u64>,
    last_kill_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub params: HarmParams,
    history: VecDeque<Sample>,
    episode: Option<Episode>,
}

impl Model {
    pub fn new(params: HarmParams) -> Self {
        Model {
            params,
            history: VecDeque::new(),
            episode: None,
        }
    }

    pub fn in_episode(&self) -> bool {
        self.episode.is_some()
    }

    /// When the next sample is due (None: calm, nothing to do). Never 0:
    /// the guard arms an absolute timerfd with it, and 0 disarms one.
    pub fn next_sample_ms(&self) -> Option<u64> {
        let e = self.episode?;
        Some(match self.history.back() {
            Some(s) => s.now_ms + SAMPLE_MS,
            None => e.start_ms.max(1),
        })
    }

    /// A PSI trigger fired: start (or extend) an episode. `can_release`:
    /// a buffer is armed, so the first response is its release; without
    /// one the first harm that calls for a kill gets it.
    pub fn pressure(&mut self, now_ms: u64, can_release: bool) {
        match self.episode.as_mut() {
            Some(e) => e.last_ms = e.last_ms.max(now_ms),
            None => {
                self.history.clear();
                self.episode = Some(Episode {
                    start_ms: now_ms,
                    last_ms: now_ms,
                    released: !can_release,
                    last_response_ms: None,
                    last_kill_ms: None,
                });
            }
        }
    }

    /// The caller killed (its victim selection may hold a kill back; only a
    /// kill made counts).
    pub fn killed(&mut self, now_ms: u64) {
        if let Some(e) = self.episode.as_mut() {
            e.last_response_ms = Some(now_ms);
            e.last_kill_ms = Some(now_ms);
        }
    }

    /// How long the current episode has lasted (0: none).
    pub fn episode_ms(&self, now_ms: u64) -> u64 {
        self.episode
            .map_or(0, |e| now_ms.saturating_sub(e.start_ms))
    }

    /// `since_ms`: the last response, or the episode's start (freezes
    /// before it were answered already).
    fn measure(&self, s: &Sample, since_ms: u64) -> Option<Measures> {
        let old = self
            .history
            .iter()
            .find(|o| s.now_ms.saturating_sub(o.now_ms) <= WINDOW_MS)?;
        let span_ms = s.now_ms.saturating_sub(old.now_ms);
        if span_ms < MIN_SPAN_MS {
            return None;
        }
        let full = s.full_us.saturating_sub(old.full_us);
        let freeze_pm = (full / span_ms).min(1000) as u32;
        let from = since_ms.max(s.now_ms.saturating_sub(SUSTAIN_MS));
        let base = self.history.iter().find(|o| o.now_ms >= from).unwrap_or(s);
        let frozen_ms = s.full_us.saturating_sub(base.full_us) / 1000;
        let frozen_span_ms = s.now_ms.saturating_sub(base.now_ms);
        let fall = old.left_kb() as i64 - s.left_kb() as i64;
        let fall_kb_s = fall * 1000 / span_ms as i64;
        let swapped_kb_s = s.swap_out_kb.saturating_sub(old.swap_out_kb) * 1000 / span_ms;
        // With the runway off (0) the pace is not judged: all swap counts.
        let swap_kb = match u64::from(self.params.runway_ms) {
            0 => s.swap_free_kb,
            ms => s.swap_free_kb.min(swapped_kb_s.saturating_mul(ms) / 1000),
        };
        let headroom_kb = s.avail_kb + swap_kb;
        let floor_kb = s.total_kb * u64::from(self.params.floor_pct) / 100;
        let above = headroom_kb.saturating_sub(floor_kb);
        let runway_ms = (fall_kb_s > 0).then(|| above * 1000 / fall_kb_s as u64);
        let short = s.avail_kb * 100 < s.total_kb * u64::from(self.params.short_pct);
        Some(Measures {
            freeze_pm,
            frozen_ms,
            frozen_span_ms,
            headroom_kb,
            swap_kb,
            fall_kb_s,
            runway_ms,
            floor_kb,
            short,
            span_ms,
        })
    }

    fn harm(&self, m: &Measures) -> Option<Harm> {
        if !m.short {
            return None;
        }
        if m.freeze_pm >= self.params.freeze_pct * 10 {
            Some(Harm::Freeze)
        } else if m.headroom_kb <= m.floor_kb && m.fall_kb_s >= 0 {
            Some(Harm::Exhausted)
        } else if m.frozen_ms >= u64::from(self.params.act_ms) {
            Some(Harm::Frozen)
        } else if m
            .runway_ms
            .is_some_and(|r| r <= u64::from(self.params.runway_ms))
        {
            Some(Harm::Runway)
        } else {
            None
        }
    }

    /// One sample: what it shows, and the response it calls for.
    pub fn sample(&mut self, s: Sample) -> Decision {
        let none = Decision {
            measures: None,
            harm: None,
            response: None,
        };
        let Some(mut e) = self.episode else {
            return none;
        };
        let after = e.last_response_ms.unwrap_or(e.start_ms);
        let measures = self.measure(&s, after);
        self.history.push_back(s);
        while self
            .history
            .front()
            .is_some_and(|o| s.now_ms.saturating_sub(o.now_ms) > SUSTAIN_MS)
        {
            self.history.pop_front();
        }
        let Some(m) = measures else {
            return none;
        };
        let harm = self.harm(&m);
        let now = s.now_ms;
        if harm.is_some() {
            e.last_ms = now;
        }
        let response = match harm {
            None => None,
            Some(_) if !e.released => {
                e.released = true;
                e.last_response_ms = Some(now);
                Some(Response::Release)
            }
            Some(h) => {
                let act = u64::from(self.params.act_ms);
                // Frozen act_ms since the last response: it did not help.
                let frozen = m.frozen_ms >= act;
                // A release shows at once; a kill's victim needs time to
                // give its memory back.
                let wait = e.last_kill_ms.map_or(SAMPLE_MS, |_| act);
                let gone = h == Harm::Exhausted && now >= after + wait;
                (frozen || gone).then_some(Response::Kill)
            }
        };
        if now > e.last_ms + CALM_MS {
            self.episode = None;
            self.history.clear();
        } else {
            self.episode = Some(e);
        }
        Decision {
            measures: Some(m),
            harm,
            response,
        }
    }
}

#[cfg(test)]
mod tests;
