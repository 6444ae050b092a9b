//! What a scenario expects of a sysctl: an exact value, a bound for knobs
//! where a larger (or smaller) value is stricter, or absence, written as
//! `"2"`, `">= 1"`, `"<= 0"`, `"absent"`, or any of the first three followed
//! by `" or absent"`.

use crate::probe::SysctlValue;
use serde::Serialize;
use std::str::FromStr;

/// How the value must compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    /// Exactly this text.
    Equal(String),
    /// A number at least this.
    AtLeast(i64),
    /// A number at most this.
    AtMost(i64),
    /// The key must not exist.
    Absent,
}

/// One sysctl expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlExpectation {
    /// The bound on the value.
    pub bound: Bound,
    /// Whether a kernel without the key passes too.
    pub absent_ok: bool,
}

impl FromStr for SysctlExpectation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (body, absent_ok) = match text.strip_suffix(" or absent") {
            Some(body) => (body.trim(), true),
            None => (text, false),
        };
        let number = |s: &str| {
            s.trim()
                .parse::<i64>()
                .map_err(|_| format!("`{text}`: expected a whole number after the comparison"))
        };
        let bound = if body == "absent" && !absent_ok {
            Bound::Absent
        } else if let Some(rest) = body.strip_prefix(">=") {
            Bound::AtLeast(number(rest)?)
        } else if let Some(rest) = body.strip_prefix("<=") {
            Bound::AtMost(number(rest)?)
        } else if body.is_empty() || body == "absent" || body.starts_with(['<', '>', '=']) {
            return Err(format!(
                "`{text}`: write a value, `>= N`, `<= N` or `absent`, optionally `... or absent`"
            ));
        } else {
            Bound::Equal(body.to_string())
        };
        Ok(SysctlExpectation { bound, absent_ok })
    }
}

impl SysctlExpectation {
    /// Why `seen` misses the expectation for `key`, if it does.
    pub fn failure(&self, key: &str, seen: Option<&SysctlValue>) -> Option<String> {
        let value = match seen {
            Some(SysctlValue::Value { value }) => value,
            Some(SysctlValue::Absent) if self.absent_ok || self.bound == Bound::Absent => {
                return None
            }
            Some(SysctlValue::Absent) => return Some(format!("{key} is absent, expected {self}")),
            Some(SysctlValue::Error { error }) => {
                return Some(format!(
                    "{key} could not be read ({error}), expected {self}"
                ))
            }
            None => return Some(format!("{key} was not read, expected {self}")),
        };
        let number = value.trim().parse::<i64>().ok();
        let fine = match &self.bound {
            Bound::Equal(want) => value.trim() == want,
            Bound::AtLeast(low) => number.is_some_and(|n| n >= *low),
            Bound::AtMost(high) => number.is_some_and(|n| n <= *high),
            Bound::Absent => false,
        };
        (!fine).then(|| format!("{key} = {value}, expected {self}"))
    }
}

impl std::fmt::Display for SysctlExpectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.bound {
            Bound::Equal(value) => write!(f, "{value}")?,
            Bound::AtLeast(low) => write!(f, ">= {low}")?,
            Bound::AtMost(high) => write!(f, "<= {high}")?,
            Bound::Absent => write!(f, "absent")?,
        }
        if self.absent_ok {
            write!(f, " or absent")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: &str) -> SysctlValue {
        SysctlValue::Value { value: v.into() }
    }

    #[test]
    fn expectations_parse_and_print_back() {
        for text in [
            "2",
            ">= 1",
            "<= 0",
            "absent",
            "1 or absent",
            ">= 2 or absent",
            "-1",
        ] {
            let parsed: SysctlExpectation = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
        for bad in ["", ">= x", "<=", "> 1", "= 1", "absent or absent", "== 2"] {
            assert!(bad.parse::<SysctlExpectation>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn absent_value_and_read_error_are_judged_apart() {
        let key = "kernel.kptr_restrict";
        let at_least: SysctlExpectation = ">= 1".parse().unwrap();
        assert_eq!(
            at_least.failure(key, Some(&value("2"))),
            None,
            "2 is stricter than 1"
        );
        let low = at_least.failure(key, Some(&value("0")));
        assert_eq!(
            low.as_deref(),
            Some("kernel.kptr_restrict = 0, expected >= 1")
        );
        assert!(at_least.failure(key, Some(&SysctlValue::Absent)).is_some());
        let denied = SysctlValue::Error {
            error: "permission-denied".into(),
        };
        let failure = at_least.failure(key, Some(&denied)).unwrap();
        assert!(failure.contains("permission-denied"), "{failure}");
        let optional: SysctlExpectation = "1 or absent".parse().unwrap();
        assert_eq!(optional.failure(key, Some(&SysctlValue::Absent)), None);
        let absent: SysctlExpectation = "absent".parse().unwrap();
        assert!(absent.failure(key, Some(&value("0"))).is_some());
        assert_eq!(absent.failure(key, Some(&SysctlValue::Absent)), None);
        let at_most: SysctlExpectation = "<= 1".parse().unwrap();
        assert!(at_most.failure(key, Some(&value("not a number"))).is_some());
    }
}
