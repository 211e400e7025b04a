//! Register histories for S1's benchmark and tests: clients reading a register and swapping
//! it from what they last read, run against a true register (so the history is linearizable by
//! construction), with a share of the swaps' outcomes unknown; optionally one read made stale.

use std::fmt::Write;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Operations in all.
    pub operations: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Per cent of compare-and-swaps whose outcome the history says is unknown.
    pub unknown_percent: u64,
    /// Make one read in the middle return a value replaced before the read began.
    pub stale_read: bool,
    /// The seed of everything random.
    pub seed: u64,
}

/// splitmix64: enough randomness for test data, with no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One operation, before it is written out.
struct Op {
    client: usize,
    cas: bool,
    expected: u64,
    value: u64,
    result: String,
    call: u64,
    ret: Option<u64>,
}

/// The history, as JSON lines in the format `tenure history check` reads. Values are numbers;
/// 0 stands for the absent document (`null`).
pub fn generate(shape: Shape) -> String {
    let mut rng = Rng(shape.seed);
    let mut free_at = vec![0u64; shape.clients];
    let mut last_read = vec![0u64; shape.clients];
    // Each value the register held, with the answer time of the write that replaced it.
    let mut replaced: Vec<(u64, u64)> = Vec::new();
    let (mut current, mut next_value, mut point) = (0u64, 1u64, 0u64);
    let mut ops = Vec::with_capacity(shape.operations);
    for _ in 0..shape.operations {
        let client = rng.below(shape.clients as u64) as usize;
        // Linearization points advance; each operation's interval is around its point.
        point = (point + 1 + rng.below(200_000)).max(free_at[client] + 1);
        let call = point
            .saturating_sub(rng.below(1_000_000))
            .max(free_at[client]);
        let ret = point + rng.below(1_000_000);
        free_at[client] = ret;
        let mut op = Op {
            client,
            cas: rng.below(2) == 0,
            expected: last_read[client],
            value: 0,
            result: String::new(),
            call,
            ret: Some(ret),
        };
        if op.cas {
            op.value = next_value;
            next_value += 1;
            let applied = current == op.expected;
            let unknown = rng.below(100) < shape.unknown_percent;
            if applied {
                // A stale read needs a replacement its caller saw answered.
                let answered = if unknown { u64::MAX } else { ret };
                replaced.push((current, answered));
                current = op.value;
            }
            op.result = applied.to_string();
            if unknown {
                op.result = "\"unknown\"".into();
                if rng.below(2) == 0 {
                    op.ret = None;
                }
            }
        } else {
            last_read[client] = current;
            op.value = current;
        }
        ops.push(op);
    }
    if shape.stale_read {
        make_one_read_stale(&mut ops, &replaced);
    }
    let mut out = String::new();
    for op in &ops {
        write_line(&mut out, op);
    }
    out
}

/// Points a read in the middle at a value whose replacement answered before the read began.
fn make_one_read_stale(ops: &mut [Op], replaced: &[(u64, u64)]) {
    let middle = ops.len() / 2;
    for op in ops[middle..].iter_mut().filter(|op| !op.cas) {
        let stale = replaced
            .iter()
            .rev()
            .find(|(value, answered)| *answered < op.call && *value != op.value && *value != 0);
        if let Some((value, _)) = stale {
            op.value = *value;
            return;
        }
    }
}

fn value(v: u64) -> String {
    match v {
        0 => "null".into(),
        v => v.to_string(),
    }
}

fn write_line(out: &mut String, op: &Op) {
    let ret = op.ret.map_or("null".into(), |r| r.to_string());
    let (kind, args, result) = match op.cas {
        true => (
            "cas",
            format!("[{}, {}]", value(op.expected), value(op.value)),
            op.result.clone(),
        ),
        false => ("read", "[]".into(), value(op.value)),
    };
    let _ = writeln!(
        out,
        r#"{{"client": {}, "op": "{kind}", "args": {args}, "result": {result}, "call_ns": {}, "return_ns": {ret}}}"#,
        op.client, op.call
    );
}
