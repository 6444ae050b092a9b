//! Console events a scenario requires or forbids, written `"KIND"` or
//! `"KIND: TEXT"`: any event of that kind, or one whose text contains TEXT.
//!
//! Kinds: the structured kernel events (`pax-kill`, `pax-mode`, `size-overflow`,
//! `grsec-denial`, `kernel-fault`), `unknown-param` (each parameter the kernel
//! did not recognise) and `console` (any line of the clean console).

use crate::kernel_log::KernelEvent;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The kinds a pattern may name, as written.
pub const KINDS: &[&str] = &[
    "pax-kill",
    "pax-mode",
    "size-overflow",
    "grsec-denial",
    "kernel-fault",
    "unknown-param",
    "console",
];

/// One required or forbidden event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventPattern {
    /// One of [`KINDS`].
    pub kind: String,
    /// Text the event must contain; any event of the kind when `None`.
    pub text: Option<String>,
}

impl FromStr for EventPattern {
    type Err = String;

    fn from_str(written: &str) -> Result<Self, String> {
        let (kind, text) = match written.split_once(':') {
            Some((kind, text)) => (kind.trim(), Some(text.trim())),
            None => (written.trim(), None),
        };
        if !KINDS.contains(&kind) {
            return Err(format!(
                "`{written}`: the event kind must be one of {}",
                KINDS.join(", ")
            ));
        }
        if text.is_some_and(str::is_empty) {
            return Err(format!("`{written}`: nothing after `{kind}:`"));
        }
        if written.chars().any(char::is_control) {
            return Err(format!(
                "{written:?}: a control character can never match a console line"
            ));
        }
        Ok(EventPattern {
            kind: kind.to_string(),
            text: text.map(str::to_string),
        })
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(text) => write!(f, "{}: {text}", self.kind),
            None => f.write_str(&self.kind),
        }
    }
}

/// What a boot showed, as events are matched against it.
#[derive(Debug, Clone, Copy)]
pub struct SeenEvents<'a> {
    /// The structured kernel events.
    pub kernel: &'a [KernelEvent],
    /// Parameters the kernel did not recognise.
    pub unknown_params: &'a [String],
    /// The clean console lines.
    pub console: &'a [String],
}

impl SeenEvents<'_> {
    /// The first event `pattern` matches, as text.
    pub fn find(&self, pattern: &EventPattern) -> Option<String> {
        let texts: Box<dyn Iterator<Item = String> + '_> = match pattern.kind.as_str() {
            "unknown-param" => Box::new(self.unknown_params.iter().cloned()),
            "console" => Box::new(self.console.iter().cloned()),
            kind => Box::new(
                self.kernel
                    .iter()
                    .filter(move |event| kind_of(event) == kind)
                    .map(text_of),
            ),
        };
        let wanted = pattern.text.as_deref().unwrap_or("");
        texts.into_iter().find(|text| text.contains(wanted))
    }
}

/// Why the boot misses what `required` and `forbidden` say; empty when it does not.
pub fn failures(
    seen: SeenEvents<'_>,
    required: &[EventPattern],
    forbidden: &[EventPattern],
) -> Vec<String> {
    let missing = required
        .iter()
        .filter(|pattern| seen.find(pattern).is_none())
        .map(|pattern| format!("required event `{pattern}` did not occur"));
    let present = forbidden.iter().filter_map(|pattern| {
        let found = seen.find(pattern)?;
        Some(format!("forbidden event `{pattern}` occurred: {found}"))
    });
    missing.chain(present).collect()
}

fn kind_of(event: &KernelEvent) -> &'static str {
    match event {
        KernelEvent::PaxKill { .. } => "pax-kill",
        KernelEvent::PaxMode { .. } => "pax-mode",
        KernelEvent::SizeOverflow { .. } => "size-overflow",
        KernelEvent::GrsecDenial { .. } => "grsec-denial",
        KernelEvent::KernelFault { .. } => "kernel-fault",
    }
}

/// The text a pattern's TEXT is looked for in.
fn text_of(event: &KernelEvent) -> String {
    match event {
        KernelEvent::PaxKill {
            mapping,
            task,
            comm,
            ..
        } => format!("{task} ({comm}) executing in {mapping}"),
        KernelEvent::PaxMode { text, .. }
        | KernelEvent::SizeOverflow { text, .. }
        | KernelEvent::GrsecDenial { text, .. } => text.clone(),
        KernelEvent::KernelFault { headline, taint } => match taint {
            Some(taint) if !taint.is_empty() => format!("{headline} (tainted: {taint})"),
            _ => headline.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_log::KernelLog;

    fn events(lines: &[&str]) -> Vec<KernelEvent> {
        let mut log = KernelLog::new();
        let messages = lines.iter().map(|line| crate::console::message(line));
        let mut events: Vec<KernelEvent> = messages.flat_map(|m| log.push(m)).collect();
        events.extend(log.finish());
        events
    }

    fn pattern(text: &str) -> EventPattern {
        text.parse().unwrap()
    }

    #[test]
    fn patterns_read_a_kind_and_optional_text() {
        assert_eq!(
            pattern("pax-mode: UDEREF"),
            EventPattern {
                kind: "pax-mode".into(),
                text: Some("UDEREF".into())
            }
        );
        assert_eq!(pattern("console: a: b").text.as_deref(), Some("a: b"));
        assert_eq!(pattern("kernel-fault").to_string(), "kernel-fault");
        for bad in [
            "",
            "pax",
            "PAX-MODE: x",
            "console:",
            "console:   ",
            "console: a\nb",
        ] {
            assert!(bad.parse::<EventPattern>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_uderef_mode_line_meets_a_requirement_and_a_fault_breaks_a_ban() {
        let kernel = events(&[
            "[    0.000000] PAX: UDEREF disabled",
            "[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000",
            "[    1.000100] CPU: 0 PID: 1 Comm: init Tainted: G        W          6.1.0 #1",
        ]);
        let console = vec!["mem auto-init: stack:off, heap alloc:off, heap free:on".to_string()];
        let seen = SeenEvents {
            kernel: &kernel,
            unknown_params: &["pax_nouderef".to_string()],
            console: &console,
        };
        let required = [
            pattern("pax-mode: UDEREF"),
            pattern("console: heap free:on"),
            pattern("unknown-param: pax_nouderef"),
        ];
        let forbidden = [pattern("kernel-fault"), pattern("size-overflow")];
        let found = failures(seen, &required, &forbidden);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("forbidden event `kernel-fault` occurred: BUG: kernel NULL"),
            "{found:?}"
        );
        assert!(found[0].ends_with("(tainted: G W)"), "{found:?}");
    }

    #[test]
    fn a_missing_mode_line_fails_the_requirement() {
        let kernel = events(&["PAX: size overflow detected in function foo mm/x.c:12 cicus.1_2"]);
        let seen = SeenEvents {
            kernel: &kernel,
            unknown_params: &[],
            console: &[],
        };
        let found = failures(seen, &[pattern("pax-mode: UDEREF")], &[]);
        assert_eq!(found, ["required event `pax-mode: UDEREF` did not occur"]);
        let hit = seen.find(&pattern("size-overflow: foo")).unwrap();
        assert!(hit.contains("mm/x.c:12"), "{hit}");
    }
}
