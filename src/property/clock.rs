//! Clock properties G1-G5 (PROTOCOLS.md §1.4) and G6, the clock's bounded liveness.

use super::{PropertyId, Verdict, Violation};
use crate::time::{GlobalTime, Secs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One read of global time, with the real interval during which it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockRead {
    /// Real time the read was invoked.
    pub real_start: u64,
    /// Real time the reply arrived.
    pub real_end: u64,
    /// The value read.
    pub value: GlobalTime,
}

/// One successful compare-and-swap advance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockWrite {
    /// The value swapped against.
    pub from: GlobalTime,
    /// The value written.
    pub to: GlobalTime,
}

/// G1: a read that begins after another ended never returns a smaller value.
pub fn g1_monotonic(reads: &[ClockRead]) -> Verdict {
    let mut by_end: Vec<&ClockRead> = reads.iter().collect();
    by_end.sort_by_key(|r| r.real_end);
    let mut by_start: Vec<&ClockRead> = reads.iter().collect();
    by_start.sort_by_key(|r| r.real_start);
    let (mut i, mut best): (usize, Option<&ClockRead>) = (0, None);
    for r in by_start {
        while i < by_end.len() && by_end[i].real_end < r.real_start {
            if best.is_none_or(|b| by_end[i].value > b.value) {
                best = Some(by_end[i]);
            }
            i += 1;
        }
        if let Some(b) = best.filter(|b| b.value > r.value) {
            return Err(Violation::new(
                PropertyId::G1,
                format!(
                    "a read ending at real {} saw {}, a later read starting at real {} saw {}",
                    Secs(b.real_end),
                    b.value,
                    Secs(r.real_start),
                    r.value
                ),
            )
            .at(r.real_end));
        }
    }
    Ok(())
}

/// G1 on the clock document itself: a write never moves it from `before` back to `after`.
pub fn g1_stored(before: GlobalTime, after: GlobalTime) -> Verdict {
    if after < before {
        return Err(Violation::new(
            PropertyId::G1,
            format!("the clock document went back from {before} to {after}"),
        ));
    }
    Ok(())
}

/// G2: the successful advances form one chain from `initial`: each swaps against the value the
/// previous one wrote, and no two swap against the same value.
pub fn g2_chain(initial: GlobalTime, writes: &[ClockWrite]) -> Verdict {
    g2_chain_unsure(initial, writes, &[])
}

/// G2 over a recorded history, where some advances ended with their outcome unknown (`unsure`:
/// the reply was lost; the write may have applied). The chain of successful advances may pass
/// through unsure ones, and only through them: a gap no unsure advance bridges is a lost
/// increment.
pub fn g2_chain_unsure(
    initial: GlobalTime,
    writes: &[ClockWrite],
    unsure: &[ClockWrite],
) -> Verdict {
    let mut maybe: BTreeMap<GlobalTime, Vec<GlobalTime>> = BTreeMap::new();
    for w in unsure {
        maybe.entry(w.from).or_default().push(w.to);
    }
    let mut sorted = writes.to_vec();
    sorted.sort_by_key(|w| (w.from, w.to));
    let mut at = initial;
    for (i, w) in sorted.iter().enumerate() {
        if w.to < w.from {
            return Err(Violation::new(
                PropertyId::G2,
                format!(
                    "an advance moved the clock back from {} to {}",
                    w.from, w.to
                ),
            ));
        }
        if i > 0 && sorted[i - 1].from == w.from {
            return Err(Violation::new(
                PropertyId::G2,
                format!(
                    "two advances both swapped against {}: one increment was lost",
                    w.from
                ),
            ));
        }
        if w.from != at && !bridged(&maybe, at, w.from) {
            return Err(Violation::new(
                PropertyId::G2,
                format!(
                    "an advance swapped against {} but the clock held {}",
                    w.from, at
                ),
            ));
        }
        at = w.to;
    }
    Ok(())
}

/// Whether unsure advances, applied one after another, lead from `from` to exactly `to`.
fn bridged(
    maybe: &BTreeMap<GlobalTime, Vec<GlobalTime>>,
    from: GlobalTime,
    to: GlobalTime,
) -> bool {
    let mut frontier = vec![from];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(at) = frontier.pop() {
        if at == to {
            return true;
        }
        if at > to || !seen.insert(at) {
            continue;
        }
        frontier.extend(maybe.get(&at).into_iter().flatten().copied());
    }
    false
}

/// G3: for real times `t1 < t2`, `g(t2) - g(t1) ≤ (1+ρ)·(t2 - t1) + S`, over exact samples
/// `(real, global)` of the clock document.
pub fn g3_rate(samples: &[(u64, GlobalTime)], rate_error_ppm: u32, step_max: Duration) -> Verdict {
    let s = i128::try_from(step_max.as_nanos()).unwrap_or(i128::MAX);
    let mut sorted = samples.to_vec();
    sorted.sort_by_key(|(t, g)| (*t, *g));
    // max over i<j of (g_j·1e6 - scale·t_j) - (g_i·1e6 - scale·t_i) must be ≤ S·1e6.
    let mut low: Option<(i128, u64, GlobalTime)> = None;
    for (t, g) in sorted {
        let v = g3_level((t, g), rate_error_ppm);
        if let Some((lv, lt, lg)) = low {
            if v - lv > s * 1_000_000 {
                return Err(Violation::new(
                    PropertyId::G3,
                    format!(
                        "global time went from {} at real {} to {} at real {}: faster than real time plus a step of {:?}",
                        lg,
                        Secs(lt),
                        g,
                        Secs(t),
                        step_max
                    ),
                ));
            }
        }
        if low.is_none_or(|(lv, _, _)| v < lv) {
            low = Some((v, t, g));
        }
    }
    Ok(())
}

/// G3 over recorded reads, each of which saw its value at some instant of its real interval:
/// if `b` read more than `a`, `b`'s instant came later, at most `b.real_end − a.real_start`
/// later, so `b.value − a.value ≤ (1+ρ)·(b.real_end − a.real_start) + S` must hold.
pub fn g3_reads(reads: &[ClockRead], rate_error_ppm: u32, step_max: Duration) -> Verdict {
    let s = i128::try_from(step_max.as_nanos()).unwrap_or(i128::MAX);
    let mut sorted = reads.to_vec();
    sorted.sort_by_key(|r| r.value);
    // The lowest level of a read with a smaller value, measured from its start.
    let mut low: Option<(i128, ClockRead)> = None;
    for group in sorted.chunk_by(|a, b| a.value == b.value) {
        for b in group {
            let level = g3_level((b.real_end, b.value), rate_error_ppm);
            if let Some((_, a)) = low.filter(|(lv, _)| level - lv > s * 1_000_000) {
                return Err(Violation::new(
                    PropertyId::G3,
                    format!(
                        "global time read {} (a read begun at real {}), then {} (a read ended at real {}): faster than real time plus a step of {:?}",
                        a.value,
                        Secs(a.real_start),
                        b.value,
                        Secs(b.real_end),
                        step_max
                    ),
                )
                .at(b.real_end));
            }
        }
        for a in group {
            let level = g3_level((a.real_start, a.value), rate_error_ppm);
            if low.is_none_or(|(lv, _)| level < lv) {
                low = Some((level, *a));
            }
        }
    }
    Ok(())
}

/// G3's level of a sample, `g·10⁶ − (10⁶ + ρ)·t`: G3 fails when a sample's level exceeds an
/// earlier one's by more than `S·10⁶`.
fn g3_level((t, g): (u64, GlobalTime), rate_error_ppm: u32) -> i128 {
    i128::from(g.0) * 1_000_000 - (1_000_000 + i128::from(rate_error_ppm)) * i128::from(t)
}

/// Of samples taken in real-time order, the one with the lowest level: the only one a later
/// sample must be compared with, so that G3 can be checked as samples arrive from this sample
/// and the last one alone (the model checker keeps no more).
pub fn g3_lowest(samples: &[(u64, GlobalTime)], rate_error_ppm: u32) -> Option<(u64, GlobalTime)> {
    samples
        .iter()
        .copied()
        .min_by_key(|s| g3_level(*s, rate_error_ppm))
}

/// G4: every value observed is the initial value or one a successful advance wrote.
pub fn g4_only_written_values(
    initial: GlobalTime,
    writes: &[ClockWrite],
    observed: &[GlobalTime],
) -> Verdict {
    let written: std::collections::BTreeSet<GlobalTime> =
        writes.iter().map(|w| w.to).chain([initial]).collect();
    match observed.iter().find(|v| !written.contains(v)) {
        Some(v) => Err(Violation::new(
            PropertyId::G4,
            format!("{v} was observed but no advance wrote it"),
        )),
        None => Ok(()),
    }
}

/// G6 (bounded liveness): at real time `now`, global time last changed at real `last_change`
/// and no fault has struck since real `quiet_since`; from the later of the two, at most `window`
/// may pass without an advance (see `overdue` in this module's parent).
pub fn g6_progress(last_change: u64, quiet_since: u64, now: u64, window: Duration) -> Verdict {
    super::overdue(
        PropertyId::G6,
        last_change,
        quiet_since,
        now,
        window,
        |waited| {
            format!(
                "global time has not advanced since real {} although no fault struck after real {}: {} passed, the window is {:?}",
                Secs(last_change),
                Secs(quiet_since),
                Secs(waited),
                window
            )
        },
    )
}

/// G5: the values one watcher emits strictly increase.
pub fn g5_watcher_strictly_later(emitted: &[GlobalTime]) -> Verdict {
    match emitted.windows(2).find(|w| w[1] <= w[0]) {
        Some(w) => Err(Violation::new(
            PropertyId::G5,
            format!("the watcher emitted {} after {}", w[1], w[0]),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// The index of the first prefix of `n` items that `fails`, if any.
    fn first_failure(n: usize, mut fails: impl FnMut(usize) -> bool) -> Option<usize> {
        (0..n).find(|i| fails(*i))
    }

    proptest! {
        /// G2 checked as writes arrive, against the last write alone (as the model checker
        /// keeps it), fails first where the whole history does.
        #[test]
        fn g2_against_the_last_write_fails_where_the_whole_history_does(
            raw in vec((0u8..4, 0u64..12, 0u64..4), 1..12),
        ) {
            // Mostly a chain (each write swaps against the value the last one wrote), with
            // arbitrary writes mixed in.
            let mut at = 0;
            let writes: Vec<ClockWrite> = raw
                .iter()
                .map(|(kind, a, b)| {
                    let (from, to) = if *kind < 3 { (at, at + b) } else { (*a, *b) };
                    at = to;
                    ClockWrite { from: GlobalTime(from), to: GlobalTime(to) }
                })
                .collect();
            let whole = first_failure(writes.len(), |i| {
                g2_chain(GlobalTime(0), &writes[..=i]).is_err()
            });
            let incremental = first_failure(writes.len(), |i| match i {
                0 => g2_chain(GlobalTime(0), &writes[..1]).is_err(),
                _ => g2_chain(writes[i - 1].from, &writes[i - 1..=i]).is_err(),
            });
            prop_assert_eq!(whole, incremental);
        }

        /// G3 checked as samples arrive in real-time order, against the lowest earlier one
        /// alone, fails first where the whole history does, while global time never goes back.
        #[test]
        fn g3_against_the_lowest_sample_fails_where_the_whole_history_does(
            steps in vec((0u64..3_000, 1u64..3_000), 1..16),
        ) {
            let (ppm, step) = (100_000, Duration::from_nanos(1_000));
            let mut samples = Vec::new();
            let (mut t, mut g) = (0, 0);
            for (dt, dg) in steps {
                t += dt;
                g += dg;
                samples.push((t, GlobalTime(g)));
            }
            let whole = first_failure(samples.len(), |i| {
                g3_rate(&samples[..=i], ppm, step).is_err()
            });
            let mut lowest: Option<(u64, GlobalTime)> = None;
            let incremental = first_failure(samples.len(), |i| {
                let pair: Vec<_> = lowest.into_iter().chain([samples[i]]).collect();
                lowest = g3_lowest(&pair, ppm);
                g3_rate(&pair, ppm, step).is_err()
            });
            prop_assert_eq!(whole, incremental);
        }
    }

    fn r(s: u64, e: u64, v: u64) -> ClockRead {
        ClockRead {
            real_start: s,
            real_end: e,
            value: GlobalTime(v),
        }
    }

    #[test]
    fn g1_allows_overlapping_reads_but_not_going_back() {
        assert!(g1_monotonic(&[r(0, 10, 5), r(5, 15, 3)]).is_ok());
        assert!(g1_monotonic(&[r(0, 10, 5), r(11, 15, 3)]).is_err());
    }

    #[test]
    fn g2_finds_lost_increment() {
        let w = |f, t| ClockWrite {
            from: GlobalTime(f),
            to: GlobalTime(t),
        };
        assert!(g2_chain(GlobalTime(0), &[w(0, 5), w(5, 9)]).is_ok());
        assert!(g2_chain(GlobalTime(0), &[w(0, 5), w(0, 7)]).is_err());
        assert!(g2_chain(GlobalTime(0), &[w(0, 5), w(6, 7)]).is_err());
        // A lost reply: 5 -> 6 may have applied, so 6 -> 7 follows; nothing bridges 5 -> 8.
        assert!(g2_chain_unsure(GlobalTime(0), &[w(0, 5), w(6, 7)], &[w(5, 6)]).is_ok());
        assert!(g2_chain_unsure(GlobalTime(0), &[w(0, 5), w(8, 9)], &[w(5, 6)]).is_err());
        assert!(g2_chain_unsure(GlobalTime(0), &[w(0, 5), w(8, 9)], &[w(5, 6), w(6, 8)]).is_ok());
        assert!(g2_chain_unsure(GlobalTime(0), &[w(0, 5), w(0, 6)], &[w(5, 6)]).is_err());
    }

    #[test]
    fn g3_rate_bound() {
        let s = |t, g| (t, GlobalTime(g));
        assert!(g3_rate(&[s(0, 0), s(10, 10), s(20, 25)], 0, Duration::from_nanos(5)).is_ok());
        assert!(g3_rate(&[s(0, 0), s(10, 10), s(20, 26)], 0, Duration::from_nanos(5)).is_err());
        // The sample later ones are measured from: the lowest level, not the first or last.
        assert_eq!(
            g3_lowest(&[s(0, 3), s(10, 4), s(20, 30)], 0),
            Some(s(10, 4))
        );
        assert_eq!(g3_lowest(&[], 0), None);
    }

    #[test]
    fn g5_repeats_fail() {
        assert!(g5_watcher_strictly_later(&[GlobalTime(1), GlobalTime(2)]).is_ok());
        assert!(g5_watcher_strictly_later(&[GlobalTime(1), GlobalTime(1)]).is_err());
    }

    #[test]
    fn g6_window_starts_at_the_later_of_the_last_advance_and_the_last_fault() {
        let w = Duration::from_nanos(10);
        assert!(g6_progress(5, 0, 15, w).is_ok(), "exactly the window");
        assert!(g6_progress(5, 0, 16, w).is_err(), "one past it");
        assert!(
            g6_progress(5, 8, 16, w).is_ok(),
            "a fault at 8 restarts the window"
        );
        assert!(g6_progress(5, 8, 19, w).is_err());
    }

    /// G3 on reads with real intervals: a jump of more than the rate allows between a read's
    /// start and a later read's end fails; the same values read by overlapping or
    /// long-separated calls pass, and equal values never compare.
    #[test]
    fn g3_on_reads_uses_each_reads_interval() {
        let ms = 1_000_000;
        let read = |start, end, value_ms| ClockRead {
            real_start: start * ms,
            real_end: end * ms,
            value: GlobalTime(value_ms * ms),
        };
        let s = Duration::from_millis(100);
        // 1 s of global time within 1.05 s of real time: fine.
        assert!(g3_reads(&[read(0, 10, 0), read(1_000, 1_050, 1_000)], 0, s).is_ok());
        // 1 s of global time within 0.5 s: too fast.
        let v = g3_reads(&[read(0, 10, 0), read(400, 500, 1_000)], 0, s).unwrap_err();
        assert_eq!(v.property, PropertyId::G3);
        assert_eq!(v.at_real, Some(500 * ms));
        // A long read may have seen its value late: measured from the first read's start.
        assert!(g3_reads(&[read(0, 900, 0), read(950, 1_000, 950)], 0, s).is_ok());
        // Equal values: a frozen clock, whatever the times.
        assert!(g3_reads(&[read(5_000, 5_010, 7), read(0, 10, 7)], 0, s).is_ok());
    }
}
