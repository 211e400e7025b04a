//! S1 on register histories: generated linearizable ones pass, hand-corrupted ones (a doubled
//! winner, a stale read, a lost write) fail with the operations named, and histories the check
//! cannot decide are refused rather than guessed.

#[path = "../benches/shared/register.rs"]
mod generated;

use generated::{generate, Shape};
use proptest::prelude::*;
use tenure::history::register::{RegisterFormatError, RegisterHistory, RegisterReport};
use tenure::property::register::Unsupported;
use tenure::property::PropertyId;

fn check(text: &str) -> RegisterReport {
    RegisterHistory::from_jsonl(text)
        .expect("readable")
        .check()
        .expect("supported")
}

fn violation(text: &str) -> String {
    let v = check(text).verdict.expect_err("a violation");
    assert_eq!(v.property, PropertyId::S1);
    v.detail
}

fn line(client: &str, op: &str, args: &str, result: &str, call: u64, ret: Option<u64>) -> String {
    let ret = ret.map_or("null".into(), |r| r.to_string());
    format!(
        r#"{{"client": "{client}", "op": "{op}", "args": {args}, "result": {result}, "call_ns": {call}, "return_ns": {ret}}}"#
    )
}

fn history(lines: &[String]) -> String {
    lines.join("\n")
}

#[test]
fn generated_histories_with_unknown_outcomes_pass() {
    for seed in 0..20 {
        let text = generate(Shape {
            operations: 2_000,
            clients: 8,
            unknown_percent: 10,
            stale_read: false,
            seed,
        });
        let report = check(&text);
        assert_eq!(report.verdict, Ok(()), "seed {seed}");
        assert_eq!(report.operations, 2_000);
        assert!(report.unknown > 0, "seed {seed}: some outcomes unknown");
    }
}

#[test]
fn a_stale_read_among_unknown_outcomes_is_found() {
    for seed in 0..20 {
        let text = generate(Shape {
            operations: 2_000,
            clients: 8,
            unknown_percent: 10,
            stale_read: true,
            seed,
        });
        let detail = violation(&text);
        assert!(detail.contains("read"), "seed {seed}: {detail}");
    }
}

#[test]
fn two_winners_from_one_value_are_a_lost_update() {
    let text = history(&[
        line("a", "cas", "[null, 1]", "true", 0, Some(10)),
        line("b", "cas", "[1, 2]", "true", 20, Some(30)),
        line("c", "cas", "[1, 3]", "true", 25, Some(35)),
    ]);
    let detail = violation(&text);
    assert!(detail.contains("lost update"), "{detail}");
    assert!(
        detail.contains("line 2") && detail.contains("line 3"),
        "{detail}"
    );
}

#[test]
fn a_read_of_an_overwritten_value_after_the_overwrite_answered_is_stale() {
    let text = history(&[
        line("a", "cas", "[null, 1]", "true", 0, Some(10)),
        line("a", "cas", "[1, 2]", "true", 20, Some(30)),
        line("b", "read", "[]", "1", 40, Some(50)),
    ]);
    let detail = violation(&text);
    assert!(detail.contains("line 3"), "{detail}");
    // Concurrent with the overwrite, the same read is fine.
    let text = history(&[
        line("a", "cas", "[null, 1]", "true", 0, Some(10)),
        line("a", "cas", "[1, 2]", "true", 20, Some(30)),
        line("b", "read", "[]", "1", 25, Some(50)),
    ]);
    assert_eq!(check(&text).verdict, Ok(()));
}

#[test]
fn an_acknowledged_write_that_a_later_read_misses_is_lost() {
    let text = history(&[
        line("a", "cas", "[null, 1]", "true", 0, Some(10)),
        line("b", "read", "[]", "null", 20, Some(30)),
    ]);
    let detail = violation(&text);
    assert!(detail.contains("line 1"), "{detail}");
}

#[test]
fn a_value_from_a_write_told_it_failed_or_from_nowhere_is_flagged() {
    let refused = history(&[
        line("a", "cas", "[null, 1]", "false", 0, Some(10)),
        line("b", "read", "[]", "1", 20, Some(30)),
    ]);
    assert!(violation(&refused).contains("did not take effect"));
    let invented = history(&[line("b", "read", "[]", "7", 20, Some(30))]);
    assert!(violation(&invented).contains("no operation wrote"));
}

#[test]
fn an_unknown_outcome_may_have_happened_or_not() {
    // Observed later: it happened, even though its caller gave up.
    let seen = history(&[
        line("a", "cas", "[null, 1]", "\"unknown\"", 0, None),
        line("b", "read", "[]", "1", 1_000, Some(1_010)),
    ]);
    assert_eq!(check(&seen).verdict, Ok(()));
    // Never observed: it did not, and a later read of the old value is fine.
    let unseen = history(&[
        line("a", "cas", "[null, 1]", "\"unknown\"", 0, Some(5)),
        line("b", "read", "[]", "null", 1_000, Some(1_010)),
    ]);
    assert_eq!(check(&unseen).verdict, Ok(()));
    // Never observed, yet the only explanation for a failed swap of the last value.
    let explains = history(&[
        line("a", "cas", "[null, 1]", "true", 0, Some(10)),
        line("b", "cas", "[1, 2]", "\"unknown\"", 20, None),
        line("c", "cas", "[1, 3]", "false", 30, Some(40)),
    ]);
    assert_eq!(check(&explains).verdict, Ok(()));
}

#[test]
fn a_failed_swap_needs_the_value_absent_at_some_point_of_its_interval() {
    // 1 is current from (at latest) 10 until 100: a swap of 1 within [20, 30] cannot fail.
    let text = history(&[
        line("a", "cas", "[null, 1]", "true", 0, Some(10)),
        line("b", "cas", "[1, 3]", "false", 20, Some(30)),
        line("a", "cas", "[1, 2]", "true", 100, Some(110)),
    ]);
    assert!(violation(&text).contains("line 2"));
    // Overlapping the write of 1, it may have come first.
    let text = history(&[
        line("a", "cas", "[null, 1]", "true", 0, Some(10)),
        line("b", "cas", "[1, 3]", "false", 5, Some(30)),
        line("a", "cas", "[1, 2]", "true", 100, Some(110)),
    ]);
    assert_eq!(check(&text).verdict, Ok(()));
    // Coming first pushes the write of 1 past a read that already returned it: a violation.
    let text = history(&[
        line("a", "cas", "[null, 1]", "true", 0, Some(10)),
        line("c", "read", "[]", "1", 1, Some(4)),
        line("b", "cas", "[1, 3]", "false", 5, Some(30)),
        line("a", "cas", "[1, 2]", "true", 100, Some(110)),
    ]);
    assert!(violation(&text).contains("line 2"));
}

#[test]
fn keys_are_separate_registers_and_blind_writes_in_turn_are_ordered() {
    let text = r#"{"client": 1, "key": "x", "op": "write", "args": ["a"], "result": "ok", "call_ns": 0, "return_ns": 10}
{"client": 2, "key": "y", "op": "write", "args": ["a"], "result": "ok", "call_ns": 0, "return_ns": 10}
{"client": 1, "key": "x", "op": "write", "args": ["b"], "result": "ok", "call_ns": 20, "return_ns": 30}
{"client": 2, "key": "x", "op": "read", "args": [], "result": "b", "call_ns": 40, "return_ns": 50}
{"client": 2, "key": "y", "op": "read", "args": [], "result": "a", "call_ns": 40, "return_ns": 50}"#;
    let report = check(text);
    assert_eq!((report.keys, report.operations), (2, 5));
    assert_eq!(report.verdict, Ok(()));
    let stale = text.replace(
        r#""result": "b", "call_ns": 40"#,
        r#""result": "a", "call_ns": 40"#,
    );
    assert!(violation(&stale).contains("key x"));
}

#[test]
fn histories_the_check_cannot_decide_are_refused() {
    let twice = history(&[
        line("a", "cas", "[null, 1]", "true", 0, Some(10)),
        line("b", "cas", "[null, 1]", "false", 0, Some(10)),
    ]);
    let unsupported = RegisterHistory::from_jsonl(&twice).unwrap().check();
    assert!(matches!(
        unsupported,
        Err(Unsupported::ValueWrittenTwice { .. })
    ));
    let concurrent = history(&[
        line("a", "write", "[1]", "\"ok\"", 0, Some(10)),
        line("b", "write", "[2]", "\"ok\"", 5, Some(15)),
    ]);
    let unsupported = RegisterHistory::from_jsonl(&concurrent).unwrap().check();
    assert!(matches!(
        unsupported,
        Err(Unsupported::ConcurrentBlindWrites { .. })
    ));
}

#[test]
fn malformed_lines_are_reported_with_their_number() {
    let cases = [
        (
            r#"{"client": 1, "op": "cas", "args": [1], "result": true, "call_ns": 0, "return_ns": 1}"#,
            "argument",
        ),
        (
            r#"{"client": 1, "op": "cas", "args": [1, 2], "result": "ok", "call_ns": 0, "return_ns": 1}"#,
            "true, false",
        ),
        (
            r#"{"client": 1, "op": "read", "args": [], "result": 1, "call_ns": 5, "return_ns": 1}"#,
            "before call_ns",
        ),
        (
            r#"{"client": 1, "op": "delete", "args": [], "call_ns": 0}"#,
            "unknown variant",
        ),
    ];
    for (bad, says) in cases {
        let text = format!("{}\n{bad}", line("a", "read", "[]", "null", 0, Some(1)));
        match RegisterHistory::from_jsonl(&text) {
            Err(RegisterFormatError::Line { line: 2, message }) => {
                assert!(message.contains(says), "{message}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(matches!(
        RegisterHistory::from_jsonl("\n\n"),
        Err(RegisterFormatError::Empty)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the seed, concurrency and share of unknown outcomes, a history of a true
    /// register passes and the same history with one stale read does not.
    #[test]
    fn true_registers_pass_and_one_stale_read_fails(
        seed in any::<u64>(),
        clients in 1usize..12,
        unknown_percent in 0u64..40,
    ) {
        let shape = Shape { operations: 400, clients, unknown_percent, stale_read: false, seed };
        prop_assert_eq!(check(&generate(shape)).verdict, Ok(()));
        let stale = generate(Shape { stale_read: true, ..shape });
        if stale != generate(shape) {
            prop_assert!(check(&stale).verdict.is_err());
        }
    }
}

/// One operation of a small random history, for the brute-force oracle below.
#[derive(Clone, Debug)]
struct Small {
    /// 0 read, 1 write, 2 cas.
    kind: u8,
    expected: u32,
    /// The value written, or read (0: absent).
    value: u32,
    /// 0 applied, 1 not applied, 2 unknown (writes only).
    applied: u8,
    call: u64,
    ret: Option<u64>,
}

impl Small {
    fn line(&self) -> String {
        let v = |x: u32| {
            if x == 0 {
                "null".to_owned()
            } else {
                x.to_string()
            }
        };
        let (op, args, result) = match (self.kind, self.applied) {
            (0, _) => ("read", "[]".to_owned(), v(self.value)),
            (1, a) => (
                "write",
                format!("[{}]", v(self.value)),
                ["\"ok\"", "false", "\"unknown\""][a as usize].to_owned(),
            ),
            (_, a) => (
                "cas",
                format!("[{}, {}]", v(self.expected), v(self.value)),
                ["true", "false", "\"unknown\""][a as usize].to_owned(),
            ),
        };
        let ret = self.ret.map_or("null".to_owned(), |r| r.to_string());
        format!(
            r#"{{"client": 0, "op": "{op}", "args": {args}, "result": {result}, "call_ns": {}, "return_ns": {ret}}}"#,
            self.call
        )
    }

    /// The latest it can take effect: a write of unknown outcome may land after its caller gave up.
    fn deadline(&self) -> u64 {
        match (self.kind, self.applied) {
            (1 | 2, 2) => u64::MAX,
            _ => self.ret.unwrap_or(u64::MAX),
        }
    }
}

/// Linearizability by exhaustive search: every subset of the unknown outcomes taken as applied,
/// every order that respects real time, replayed on a sequential register.
fn brute_force(ops: &[Small]) -> bool {
    let unknown: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].kind != 0 && ops[i].applied == 2)
        .collect();
    (0..1u32 << unknown.len()).any(|mask| {
        let included: Vec<usize> = (0..ops.len())
            .filter(|&i| match (ops[i].kind, ops[i].applied) {
                (1, 1) => false, // a refused write has no effect
                (_, 2) if ops[i].kind != 0 => {
                    mask & (1 << unknown.iter().position(|&u| u == i).unwrap_or(0)) != 0
                }
                _ => true,
            })
            .collect();
        orders(ops, &included, &mut vec![false; ops.len()], 0)
    })
}

fn orders(ops: &[Small], left: &[usize], done: &mut Vec<bool>, current: u32) -> bool {
    let pending: Vec<usize> = left.iter().copied().filter(|&i| !done[i]).collect();
    if pending.is_empty() {
        return true;
    }
    pending.iter().any(|&x| {
        // x may go next unless some other pending operation finished before x began.
        if pending
            .iter()
            .any(|&y| y != x && ops[y].deadline() < ops[x].call)
        {
            return false;
        }
        let op = &ops[x];
        let next = match (op.kind, op.applied) {
            (0, _) if op.value != current => return false,
            (0, _) => current,
            (1, _) => op.value,
            (_, 1) if op.expected == current => return false,
            (_, 1) => current,
            (_, _) if op.expected != current => return false,
            (_, _) => op.value,
        };
        done[x] = true;
        let ok = orders(ops, left, done, next);
        done[x] = false;
        ok
    })
}

fn small_history() -> impl Strategy<Value = Vec<Small>> {
    prop::collection::vec(
        (
            0u8..3,
            0u32..4,
            0u32..5,
            0u8..3,
            0u64..12,
            0u64..6,
            any::<bool>(),
        ),
        1..7,
    )
    .prop_map(|raw| {
        let mut next_value = 1;
        raw.into_iter()
            .map(|(kind, expected, read, applied, call, len, returned)| {
                let writes = kind != 0;
                let value = if writes { next_value } else { read };
                if writes {
                    next_value += 1;
                }
                let unknown = writes && applied == 2;
                Small {
                    kind,
                    expected,
                    value,
                    applied: if writes { applied } else { 0 },
                    call,
                    ret: (returned || !unknown).then_some(call + len),
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// S1 agrees with an exhaustive search on every small history it accepts: it is exact, not
    /// just fast.
    #[test]
    fn s1_agrees_with_an_exhaustive_search(ops in small_history()) {
        let text: Vec<String> = ops.iter().map(Small::line).collect();
        let history = RegisterHistory::from_jsonl(&text.join("\n")).expect("readable");
        if let Ok(report) = history.check() {
            prop_assert_eq!(report.verdict.is_ok(), brute_force(&ops), "{:#?}\n{:?}", ops, report.verdict);
        }
    }
}
