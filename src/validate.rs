//! Input validation shared by every protocol: names, holders, durations.
//!
//! PROTOCOLS.md §2.1 defines a *valid string*: non-empty, with none of `.`, `$`, `#`, space,
//! tab, CR or LF. `#` separates the parts of a lease `_id`, `.` and `$` are special in MongoDB
//! field paths. We add a length cap so an id always fits comfortably in an index key.

use std::time::Duration;
use thiserror::Error;

/// Longest accepted name, holder, namespace or key, in bytes. Three of them plus separators make a
/// lease `_id` far below MongoDB's 1 KiB index-key limit.
pub const NAME_LEN_MAX: usize = 200;

/// Longest accepted lease or claim duration. A lease longer than a week is almost certainly a
/// unit mistake (seconds passed as milliseconds), and a holder that dies would block everyone for
/// that long.
pub const DURATION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// Bad input to a protocol call. Every variant names what was given and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InputError {
    /// A name, holder, namespace or key that is not a valid string.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// Which input it was ("lease name", "holder", ...).
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it was refused and what to use instead.
        reason: &'static str,
    },
    /// A zero or absurdly long duration.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidDuration {
        /// Which input it was ("lease duration", "poll interval", ...).
        what: &'static str,
        /// The value given.
        value: Duration,
        /// Why it was refused and what to use instead.
        reason: String,
    },
    /// A configuration whose values are individually fine but inconsistent together.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// Checks that `value` is a valid string (PROTOCOLS.md §2.1) of at most [`NAME_LEN_MAX`] bytes.
pub fn check_name(what: &'static str, value: &str) -> Result<(), InputError> {
    let err = |reason| InputError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(err("must not be empty"));
    }
    if value.len() > NAME_LEN_MAX {
        return Err(err(
            "longer than 200 bytes; use a shorter name or a hash of it",
        ));
    }
    if value
        .chars()
        .any(|c| matches!(c, '.' | '$' | '#' | ' ' | '\t' | '\r' | '\n'))
    {
        return Err(err(
            "must not contain '.', '$', '#', spaces, tabs or line breaks",
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(err("must not contain control characters"));
    }
    Ok(())
}

/// Checks that `value` is positive and at most `max`.
pub fn check_duration(
    what: &'static str,
    value: Duration,
    max: Duration,
) -> Result<(), InputError> {
    if value.is_zero() {
        return Err(InputError::InvalidDuration {
            what,
            value,
            reason: "must be greater than zero".to_owned(),
        });
    }
    if value > max {
        return Err(InputError::InvalidDuration {
            what,
            value,
            reason: format!("must be at most {max:?}; was a unit (ms vs s) mixed up?"),
        });
    }
    Ok(())
}

/// Checks a lease or claim duration: positive and at most [`DURATION_MAX`].
pub fn check_lease_duration(value: Duration) -> Result<(), InputError> {
    check_duration("lease duration", value, DURATION_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_pass() {
        for ok in [
            "a",
            "mysql",
            "unit-mysql-0",
            "app/0",
            "ümlaut",
            &"x".repeat(NAME_LEN_MAX),
        ] {
            assert_eq!(check_name("lease name", ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn invalid_names_name_the_value() {
        for bad in [
            "", "a.b", "a$b", "a#b", "a b", "a\tb", "a\rb", "a\nb", "a\u{0}b",
        ] {
            let e = check_name("holder", bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid holder"), "{e}");
        }
        let long = "x".repeat(NAME_LEN_MAX + 1);
        assert!(check_name("holder", &long)
            .unwrap_err()
            .to_string()
            .contains("200 bytes"));
    }

    #[test]
    fn durations_must_be_positive_and_bounded() {
        assert!(check_lease_duration(Duration::ZERO).is_err());
        assert!(check_lease_duration(DURATION_MAX + Duration::from_nanos(1)).is_err());
        assert_eq!(check_lease_duration(Duration::from_secs(60)), Ok(()));
    }
}
