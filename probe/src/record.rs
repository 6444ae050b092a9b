//! The records the parent prints for a check that could not report for itself, and the
//! encoding every record goes through.

use serde::Serialize;

/// Printed in the unreachable case that a record cannot be encoded.
const UNENCODABLE: &str = r#"{"check":null,"result":"error","error":"record not encodable"}"#;

/// A check whose process a signal killed.
#[derive(Serialize)]
struct Killed<'a> {
    check: &'a str,
    result: &'static str,
    signal: i32,
    signal_name: String,
}

/// A check that ended without a usable record.
#[derive(Serialize)]
struct Failed<'a> {
    check: &'a str,
    result: &'static str,
    error: &'a str,
}

/// A check that outlived its timeout and was killed.
#[derive(Serialize)]
struct TimedOut<'a> {
    check: &'a str,
    result: &'static str,
    seconds: u64,
}

/// Encodes a record as one line of JSON, without the newline.
pub fn encode<T: Serialize>(record: &T) -> Result<String, String> {
    serde_json::to_string(record).map_err(|error| format!("encoding the record: {error}"))
}

fn line<T: Serialize>(record: &T) -> String {
    encode(record).unwrap_or_else(|_| UNENCODABLE.to_string())
}

/// `{"check": ..., "result": "killed", "signal": N, "signal_name": "SIG..."}`.
pub fn killed(check: &str, signal: i32) -> String {
    let signal_name = crate::names::signal_name(signal);
    line(&Killed {
        check,
        result: "killed",
        signal,
        signal_name,
    })
}

/// `{"check": ..., "result": "error", "error": "..."}`.
pub fn error(check: &str, error: &str) -> String {
    line(&Failed {
        check,
        result: "error",
        error,
    })
}

/// `{"check": ..., "result": "timeout", "seconds": N}`.
pub fn timeout(check: &str, seconds: u64) -> String {
    line(&TimedOut {
        check,
        result: "timeout",
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_their_field_order() {
        let cases = [
            (
                killed("exec-anon", 11),
                r#"{"check":"exec-anon","result":"killed","signal":11,"signal_name":"SIGSEGV"}"#,
            ),
            (
                error("aslr", "no \"proc\""),
                r#"{"check":"aslr","result":"error","error":"no \"proc\""}"#,
            ),
            (
                timeout("aslr", 60),
                r#"{"check":"aslr","result":"timeout","seconds":60}"#,
            ),
        ];
        for (actual, expected) in cases {
            assert_eq!(actual, expected);
        }
    }
}
