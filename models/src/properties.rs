//! What a check checks: each property under the short key stateright knows it by, its full
//! name, and a selection of them (`ModelConfig::only`, `tenure check --only`).
//!
//! stateright's breadth-first checker looks each property's key up in a hash map (SipHash,
//! whose cost grows with the key's length) in every state it visits, before evaluating the
//! property: with full names as keys that was 9% of a lease check's instructions. So the keys
//! are short ("L6", "claimed"); reports and the CLI give the full names, and the keys are what
//! the Explorer shows and what `--only` takes.

use crate::harness::TenureModel;
use crate::protocol::{self, Milestone};
use stateright::Property;
use std::fmt;
use std::sync::OnceLock;
use tenure::property::PropertyId;

/// One property of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckedProperty {
    /// A safety property of the core: must hold in every reachable state.
    Always(PropertyId),
    /// A milestone: must be reached in some state, or the model is vacuous.
    Sometimes(Milestone),
}

impl CheckedProperty {
    /// The key stateright knows it by: "L6", "claimed".
    pub fn key(self) -> &'static str {
        match self {
            CheckedProperty::Always(id) => id.code(),
            CheckedProperty::Sometimes(m) => m.key(),
        }
    }

    /// The full name: "L6 lease exclusion", "sometimes: a lease is claimed".
    pub fn name(self) -> &'static str {
        match self {
            CheckedProperty::Always(id) => always_name(id),
            CheckedProperty::Sometimes(m) => m.name(),
        }
    }

    /// Every property of every protocol, `always` first.
    pub fn all() -> impl Iterator<Item = CheckedProperty> {
        let always = PropertyId::ALL
            .iter()
            .map(|id| CheckedProperty::Always(*id));
        always.chain(
            Milestone::ALL
                .iter()
                .map(|m| CheckedProperty::Sometimes(*m)),
        )
    }

    /// The property whose key is `key` (ignoring case), if any.
    pub fn from_key(key: &str) -> Option<CheckedProperty> {
        CheckedProperty::all().find(|p| p.key().eq_ignore_ascii_case(key))
    }

    /// Parses a comma-separated list of keys ("L6,claimed").
    pub fn parse_list(list: &str) -> Result<Vec<CheckedProperty>, String> {
        let mut chosen = Vec::new();
        for key in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            let p = CheckedProperty::from_key(key).ok_or_else(|| {
                format!(
                    "unknown property {key:?}: give property ids (G1, L6, ...) or milestones ({})",
                    keys(
                        CheckedProperty::all()
                            .filter(|p| matches!(p, CheckedProperty::Sometimes(_)))
                    )
                )
            })?;
            if !chosen.contains(&p) {
                chosen.push(p);
            }
        }
        if chosen.is_empty() {
            return Err("no property given".into());
        }
        Ok(chosen)
    }

    /// The stateright property: its key and its condition.
    pub(crate) fn stateright(self) -> Property<TenureModel> {
        match self {
            CheckedProperty::Always(id) => Property::always(self.key(), protocol::holds_fn(id)),
            CheckedProperty::Sometimes(m) => {
                Property::sometimes(self.key(), protocol::reached_fn(m))
            }
        }
    }
}

impl fmt::Display for CheckedProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// `properties`' keys, comma-separated.
pub fn keys(properties: impl IntoIterator<Item = CheckedProperty>) -> String {
    properties
        .into_iter()
        .map(CheckedProperty::key)
        .collect::<Vec<_>>()
        .join(", ")
}

/// "L6 lease exclusion", built once (a result names its property by a `&'static str`).
fn always_name(id: PropertyId) -> &'static str {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        PropertyId::ALL
            .iter()
            .map(|p| &*Box::leak(p.to_string().into_boxed_str()))
            .collect()
    });
    let i = PropertyId::ALL.iter().position(|p| *p == id).unwrap_or(0);
    names[i]
}

#[cfg(test)]
mod tests {
    use super::CheckedProperty;
    use crate::protocol::Milestone;
    use tenure::property::PropertyId;

    #[test]
    fn every_key_is_short_distinct_and_names_its_property() {
        for p in &CheckedProperty::all().collect::<Vec<_>>() {
            // One SipHash block with the terminator byte `str` hashing adds.
            assert!(p.key().len() <= 7, "{} is too long a key", p.key());
            assert_eq!(CheckedProperty::from_key(p.key()), Some(*p));
            assert_eq!(CheckedProperty::from_key(&p.key().to_lowercase()), Some(*p));
            assert!(p.name().len() > p.key().len());
        }
        assert_eq!(
            CheckedProperty::Always(PropertyId::L6).name(),
            "L6 lease exclusion"
        );
    }

    #[test]
    fn a_list_is_parsed_once_per_property_and_unknown_keys_are_named() {
        assert_eq!(
            CheckedProperty::parse_list("L6, claimed,l6"),
            Ok(vec![
                CheckedProperty::Always(PropertyId::L6),
                CheckedProperty::Sometimes(Milestone::LeaseClaimed)
            ])
        );
        let err = CheckedProperty::parse_list("L6,L99").unwrap_err();
        assert!(err.contains("\"L99\"") && err.contains("claimed"), "{err}");
        assert!(CheckedProperty::parse_list(" , ").is_err());
    }
}
