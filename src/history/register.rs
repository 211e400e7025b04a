//! The register history format: store operations on documents, one JSON object per line, as
//! any tool can record them (Jepsen's checkers take the same shape), checked by S1
//! ([`crate::property::register`]). `tenure history check FILE` reads it.
//!
//! ```text
//! {"client": "c1", "key": "lease/db", "op": "cas", "args": [3, 4], "result": true, "call_ns": 120, "return_ns": 180}
//! ```
//!
//! - `client`: who called (a string or a number); `key`: which document (optional: one
//!   register when absent);
//! - `op`: `"read"` (`args` empty, `result` the value read, `null` for no document),
//!   `"write"` (`args` `[value]`, `result` anything but `false`, which means refused), or
//!   `"cas"` (`args` `[expected, new]`, `result` `true` or `false`);
//! - `result` `"unknown"`: the caller does not know whether the operation took effect (a
//!   timeout, a lost reply); a read with an unknown result is ignored;
//! - `call_ns`, `return_ns`: real time of the call and of its answer, in nanoseconds, from one
//!   clock for all clients; `return_ns` `null`: it never answered (outcome unknown).
//!
//! Values are any JSON, compared as written; every write must carry a new value (a version, an
//! epoch, a timestamp), which is what makes the check fast. Other fields are ignored.

use crate::property::register::{
    s1_linearizable, Applied, RegisterAction, RegisterOp, Unsupported, ValueId, ABSENT,
};
use crate::property::Verdict;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use thiserror::Error;

/// What an operation does, as the format spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Returns the value.
    Read,
    /// Writes a value whatever the register holds.
    Write,
    /// Writes a value if the register holds the expected one.
    Cas,
}

/// One line of a register history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterLine {
    /// Who called.
    pub client: Value,
    /// Which document; one register for the whole history when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// What it does.
    pub op: OpKind,
    /// `[]` for a read, `[value]` for a write, `[expected, new]` for a compare-and-swap.
    #[serde(default)]
    pub args: Vec<Value>,
    /// The value read, whether a write took effect, or `"unknown"`.
    #[serde(default)]
    pub result: Value,
    /// Real time of the call (ns).
    pub call_ns: u64,
    /// Real time of the answer (ns); `null` if it never came.
    #[serde(default)]
    pub return_ns: Option<u64>,
}

/// A register history that cannot be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RegisterFormatError {
    /// One line is not an operation of this format.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// No operation at all.
    #[error("the history holds no operation: expected one JSON object per line, each a store operation with client, op, args, result, call_ns and return_ns")]
    Empty,
}

/// A register history, read: each key's operations, and the values they name.
#[derive(Clone, Debug, Default)]
pub struct RegisterHistory {
    keys: BTreeMap<String, Vec<RegisterOp>>,
    /// Each value's JSON text, by [`ValueId`]; entry 0 is the absent document.
    values: Vec<String>,
    ids: BTreeMap<String, ValueId>,
    unknown: usize,
}

/// S1's verdict on a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterReport {
    /// Registers (documents) checked.
    pub keys: usize,
    /// Operations checked (reads without an answer are not counted).
    pub operations: usize,
    /// Writes whose outcome was unknown.
    pub unknown: usize,
    /// The first violation, by key order.
    pub verdict: Verdict,
}

impl RegisterHistory {
    /// Whether `first_line` (a history's first non-empty line) is of this format rather than
    /// a Tenure history: it names an `op` and a `call_ns`.
    pub fn looks_like(first_line: &str) -> bool {
        serde_json::from_str::<Value>(first_line)
            .is_ok_and(|v| v.get("op").is_some() && v.get("call_ns").is_some())
    }

    /// Reads a history, one operation per line (blank lines skipped).
    pub fn from_jsonl(text: &str) -> Result<RegisterHistory, RegisterFormatError> {
        let mut history = RegisterHistory {
            values: vec!["null".to_owned()],
            ..RegisterHistory::default()
        };
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let line = i + 1;
            let bad = |message: String| RegisterFormatError::Line { line, message };
            let parsed: RegisterLine = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
            history.push(line, parsed).map_err(bad)?;
        }
        if history.keys.is_empty() {
            return Err(RegisterFormatError::Empty);
        }
        Ok(history)
    }

    /// Adds one operation (`line`: its place, for messages).
    pub fn push(&mut self, line: usize, op: RegisterLine) -> Result<(), String> {
        if op.return_ns.is_some_and(|r| r < op.call_ns) {
            return Err(format!(
                "return_ns {} is before call_ns {}",
                op.return_ns.unwrap_or_default(),
                op.call_ns
            ));
        }
        let unknown = op.return_ns.is_none() || op.result.as_str() == Some("unknown");
        let Some(action) = self.action(&op, unknown)? else {
            return Ok(()); // a read without an answer says nothing
        };
        if matches!(
            action,
            RegisterAction::Write {
                applied: Applied::Unknown,
                ..
            } | RegisterAction::Cas {
                applied: Applied::Unknown,
                ..
            }
        ) {
            self.unknown += 1;
        }
        let key = op.key.as_ref().map_or(String::new(), text_of);
        self.keys.entry(key).or_default().push(RegisterOp {
            line,
            client: text_of(&op.client),
            call_ns: op.call_ns,
            return_ns: op.return_ns,
            action,
        });
        Ok(())
    }

    fn action(
        &mut self,
        op: &RegisterLine,
        unknown: bool,
    ) -> Result<Option<RegisterAction>, String> {
        let arity = match op.op {
            OpKind::Read => 0,
            OpKind::Write => 1,
            OpKind::Cas => 2,
        };
        if op.args.len() != arity {
            return Err(format!(
                "{:?} takes {arity} argument(s) in args, found {}",
                op.op,
                op.args.len()
            ));
        }
        Ok(Some(match op.op {
            OpKind::Read if unknown => return Ok(None),
            OpKind::Read => RegisterAction::Read {
                value: self.intern(&op.result),
            },
            OpKind::Write => RegisterAction::Write {
                value: self.intern(&op.args[0]),
                applied: match (&op.result, unknown) {
                    (_, true) => Applied::Unknown,
                    (Value::Bool(false), _) => Applied::No,
                    _ => Applied::Yes,
                },
            },
            OpKind::Cas => RegisterAction::Cas {
                expected: self.intern(&op.args[0]),
                value: self.intern(&op.args[1]),
                applied: match (&op.result, unknown) {
                    (_, true) => Applied::Unknown,
                    (Value::Bool(true), _) => Applied::Yes,
                    (Value::Bool(false), _) => Applied::No,
                    (other, _) => {
                        return Err(format!(
                            "a cas's result is true, false or \"unknown\", found {other}"
                        ))
                    }
                },
            },
        }))
    }

    fn intern(&mut self, value: &Value) -> ValueId {
        if value.is_null() {
            return ABSENT;
        }
        let text = value.to_string();
        if let Some(&id) = self.ids.get(&text) {
            return id;
        }
        let id = ValueId::try_from(self.values.len()).unwrap_or(ValueId::MAX);
        self.values.push(text.clone());
        self.ids.insert(text, id);
        id
    }

    /// Checks S1 on every key, in key order, stopping at the first violation.
    pub fn check(&self) -> Result<RegisterReport, Unsupported> {
        let mut verdict = Ok(());
        for (key, ops) in &self.keys {
            verdict = s1_linearizable(key, ops, &self.values)?;
            if verdict.is_err() {
                break;
            }
        }
        Ok(RegisterReport {
            keys: self.keys.len(),
            operations: self.keys.values().map(Vec::len).sum(),
            unknown: self.unknown,
            verdict,
        })
    }
}

/// A client or key as text: strings as they are, anything else as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
