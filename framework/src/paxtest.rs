//! Reads what paxtest reports: the output of `paxtest blackhat`, and the framed output vmgate
//! gets by running each paxtest binary on its own in the guest.
//!
//! Test names are matched exactly against the known list, never by prefix, and a verdict is
//! only ever taken from the same line as its test name, so one test's result cannot leak into
//! another's.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use serde::Serialize;

/// Every paxtest test as `(binary, test name)`, in the order `paxtest` runs them.
pub const TESTS: [(&str, &str); 34] = [
    ("anonmap", "Executable anonymous mapping"),
    ("execbss", "Executable bss"),
    ("execdata", "Executable data"),
    ("execheap", "Executable heap"),
    ("execstack", "Executable stack"),
    ("shlibbss", "Executable shared library bss"),
    ("shlibdata", "Executable shared library data"),
    ("mprotanon", "Executable anonymous mapping (mprotect)"),
    ("mprotbss", "Executable bss (mprotect)"),
    ("mprotdata", "Executable data (mprotect)"),
    ("mprotheap", "Executable heap (mprotect)"),
    ("mprotstack", "Executable stack (mprotect)"),
    ("mprotshbss", "Executable shared library bss (mprotect)"),
    ("mprotshdata", "Executable shared library data (mprotect)"),
    ("writetext", "Writable text segments"),
    ("randamap", "Anonymous mapping randomization test"),
    ("randheap1", "Heap randomization test (ET_EXEC)"),
    ("randheap2", "Heap randomization test (PIE)"),
    ("randmain1", "Main executable randomization (ET_EXEC)"),
    ("randmain2", "Main executable randomization (PIE)"),
    ("randshlib", "Shared library randomization test"),
    ("randvdso", "VDSO randomization test"),
    ("randstack1", "Stack randomization test (SEGMEXEC)"),
    ("randstack2", "Stack randomization test (PAGEEXEC)"),
    ("randarg1", "Arg/env randomization test (SEGMEXEC)"),
    ("randarg2", "Arg/env randomization test (PAGEEXEC)"),
    (
        "randshlibdelta1",
        "Offset to library randomisation (ET_EXEC)",
    ),
    (
        "randshlibdelta2",
        "Offset to library randomisation (ET_DYN)",
    ),
    ("randexhaust1", "Randomization under memory exhaustion @~0"),
    ("randexhaust2", "Randomization under memory exhaustion @0"),
    ("rettofunc1", "Return to function (strcpy)"),
    ("rettofunc2", "Return to function (memcpy)"),
    ("rettofunc1x", "Return to function (strcpy, PIE)"),
    ("rettofunc2x", "Return to function (memcpy, PIE)"),
];

/// Where Debian installs the test binaries, and where their shared libraries live.
const PAXTEST_DIR: &str = "/usr/lib/paxtest";

/// The line `paxtest` prints just before the first result.
const RESULTS_HEADER: &str = "Test results:";

/// Starts a block in the framed format; the binary follows.
const START_MARKER: &str = "@@vmgate-paxtest ";

/// Ends a block in the framed format; the binary and its exit status follow.
const EXIT_MARKER: &str = "@@vmgate-paxtest-exit ";

/// The modes `paxtest` can run in, as it prints them.
const MODES: [&str; 2] = ["Blackhat", "Kiddie"];

/// The test name of a paxtest binary, or `None` if the binary is not a known test.
#[must_use]
pub fn name_of(binary: &str) -> Option<&'static str> {
    TESTS
        .iter()
        .find(|(known, _)| *known == binary)
        .map(|(_, name)| *name)
}

/// Whether a known binary is one of the 15 slow randomisation tests (those named `rand*`).
///
/// Unknown binaries are not randomisation tests.
#[must_use]
pub fn is_randomisation(binary: &str) -> bool {
    name_of(binary).is_some() && binary.starts_with("rand")
}

/// The binaries of the 19 fast tests, in paxtest's order.
pub fn fast_tests() -> impl Iterator<Item = &'static str> {
    TESTS
        .iter()
        .map(|(binary, _)| *binary)
        .filter(|binary| !is_randomisation(binary))
}

/// The fast tests whose verdict does not depend on where ASLR put things: the
/// return-to-function tests give up, or not, depending on whether a randomised
/// address holds a NUL byte, so their verdicts change from boot to boot.
pub fn stable_tests() -> impl Iterator<Item = &'static str> {
    fast_tests().filter(|binary| !binary.starts_with("rettofunc"))
}

/// What one paxtest test reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The attack was stopped: the test process was killed.
    Killed,
    /// The attack worked.
    Vulnerable,
    /// A randomisation test measured this many bits of entropy.
    Bits {
        /// The number of random bits.
        bits: u32,
        /// Whether paxtest marked the number as guessed, as it always does today.
        guessed: bool,
    },
    /// A randomisation test found no randomisation at all.
    NoRandomization,
    /// The test printed a message but no verdict, such as
    /// `paxtest: return address contains a NULL byte.`
    Other {
        /// The message, trimmed.
        text: String,
    },
    /// The test name was printed and nothing followed it: the test died or the output ended.
    Missing,
}

impl Verdict {
    /// Reads the text paxtest printed after a test name.
    fn from_text(text: &str) -> Verdict {
        let text = text.trim();
        match text {
            "" => Verdict::Missing,
            "Killed" => Verdict::Killed,
            "Vulnerable" => Verdict::Vulnerable,
            "No randomization" | "No randomisation" => Verdict::NoRandomization,
            _ => parse_bits(text).unwrap_or_else(|| Verdict::Other {
                text: text.to_owned(),
            }),
        }
    }
}

/// Reads `28 quality bits (guessed)`, `28 bits (guessed)`, and either without `(guessed)`.
fn parse_bits(text: &str) -> Option<Verdict> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (count, guessed) = match words.as_slice() {
        [count, "bits"] | [count, "quality", "bits"] => (*count, false),
        [count, "bits", "(guessed)"] | [count, "quality", "bits", "(guessed)"] => (*count, true),
        _ => return None,
    };

    // `u32::from_str` would also take a leading `+`, which paxtest never prints.
    if !count.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let bits = count.parse().ok()?;
    Some(Verdict::Bits { bits, guessed })
}

/// Everything read from one paxtest run.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PaxtestReport {
    /// The mode paxtest ran in (`Blackhat` or `Kiddie`), if it printed one.
    pub mode: Option<String>,
    /// The `uname -a` line printed after `Kernel:`, if any.
    pub kernel: Option<String>,
    /// The verdict of each test, keyed by its exact test name. Tests the run never reached are
    /// absent; a binary unknown to [`TESTS`] (framed format only) is keyed by its binary name.
    pub results: BTreeMap<String, Verdict>,
    /// Result text not taken as a verdict, trimmed: lines matching no test name, repeated
    /// results for a test already seen, and the output of framed blocks that were cut off.
    pub unknown: Vec<String>,
}

impl PaxtestReport {
    /// The names in `expected` that have no result, in the order given.
    #[must_use]
    pub fn missing_tests<'a>(&self, expected: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        expected
            .into_iter()
            .filter(|name| !self.results.contains_key(*name))
            .collect()
    }

    /// Keeps the first verdict for a test; a repeated one goes to `unknown` as `line`.
    fn record(&mut self, key: String, verdict: Verdict, line: &str) {
        match self.results.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(verdict);
            }
            Entry::Occupied(_) => self.push_unknown(line),
        }
    }

    /// Keeps text that was not taken as a verdict, unless it is blank.
    fn push_unknown(&mut self, text: &str) {
        let text = text.trim();
        if !text.is_empty() {
            self.unknown.push(text.to_owned());
        }
    }
}

/// Reads the full output of `paxtest blackhat` or `paxtest kiddie`, from a log file or stdout.
///
/// Results are read from the lines after `Test results:`, or from every line if that header is
/// missing. Several results may share one line when a test printed its name and died; each
/// test then gets its own verdict, and the one that printed nothing gets [`Verdict::Missing`].
#[must_use]
pub fn parse_report(text: &str) -> PaxtestReport {
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|line| line.trim() == RESULTS_HEADER);
    let (preamble, results) = match header {
        Some(at) => (lines.get(..at), lines.get(at + 1..)),
        None => (None, Some(lines.as_slice())),
    };
    let preamble = preamble.unwrap_or_default();

    let mut report = PaxtestReport {
        mode: preamble.iter().rev().find_map(|line| mode_in(line)),
        kernel: kernel_in(preamble),
        ..PaxtestReport::default()
    };
    for line in results.unwrap_or_default() {
        parse_result_line(&mut report, line);
    }
    report
}

/// The mode named on a line that is just `Blackhat`/`Kiddie`, or `Mode: Blackhat`/`Kiddie`.
fn mode_in(line: &str) -> Option<String> {
    let line = line.trim();
    let word = line.strip_prefix("Mode:").map_or(line, str::trim);
    MODES
        .iter()
        .find(|mode| mode.eq_ignore_ascii_case(word))
        .map(|mode| (*mode).to_owned())
}

/// The kernel from the last `Kernel:` line: the text after it, or else the next line.
fn kernel_in(preamble: &[&str]) -> Option<String> {
    let at = preamble
        .iter()
        .rposition(|line| line.trim_start().starts_with("Kernel:"))?;
    let same_line = preamble
        .get(at)?
        .trim_start()
        .strip_prefix("Kernel:")?
        .trim();
    let kernel = if same_line.is_empty() {
        preamble.get(at + 1)?.trim()
    } else {
        same_line
    };
    (!kernel.is_empty()).then(|| kernel.to_owned())
}

/// A known test name found on a line.
struct NameAt {
    /// The exact test name.
    name: &'static str,
    /// Where the name starts.
    start: usize,
    /// Just past the colon after the name's padding, where the verdict starts.
    verdict_start: usize,
}

/// Reads one line of results, which may hold any number of `name : verdict` pairs.
fn parse_result_line(report: &mut PaxtestReport, line: &str) {
    let found = find_names(line);
    let Some(first) = found.first() else {
        report.push_unknown(line);
        return;
    };

    report.push_unknown(line.get(..first.start).unwrap_or_default());
    for (index, hit) in found.iter().enumerate() {
        let end = found.get(index + 1).map_or(line.len(), |next| next.start);
        let verdict = Verdict::from_text(line.get(hit.verdict_start..end).unwrap_or_default());
        report.record(hit.name.to_owned(), verdict, line);
    }
}

/// Every known test name on a line that is followed by its padding and a colon, left to right.
fn find_names(line: &str) -> Vec<NameAt> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(rest) = line.get(at..).filter(|rest| !rest.is_empty()) {
        match name_at_start(rest) {
            Some((name, header)) => {
                found.push(NameAt {
                    name,
                    start: at,
                    verdict_start: at + header,
                });
                at += header;
            }
            None => at += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    found
}

/// The longest known test name that `text` starts with, with the length of its header.
fn name_at_start(text: &str) -> Option<(&'static str, usize)> {
    TESTS
        .iter()
        .filter_map(|(_, name)| header_len(text, name).map(|len| (*name, len)))
        .max_by_key(|(name, _)| name.len())
}

/// If `text` starts with `name`, padding and a colon, the length up to and including the colon.
///
/// Because a name must be followed by nothing but padding before its colon, `Executable bss`
/// never matches the start of `Executable bss (mprotect)`.
fn header_len(text: &str, name: &str) -> Option<usize> {
    let after_name = text.strip_prefix(name)?;
    let after_padding = after_name.trim_start_matches([' ', '\t']);
    let after_colon = after_padding.strip_prefix(':')?;
    Some(text.len() - after_colon.len())
}

/// One test's output in the framed format, between its start marker and its exit marker.
struct Block<'a> {
    /// The binary named by the start marker.
    binary: &'a str,
    /// The start marker line itself, kept to report a repeated block.
    start_line: &'a str,
    /// Every line between the markers.
    output: Vec<&'a str>,
}

/// A marker line of the framed format.
enum Marker<'a> {
    /// `@@vmgate-paxtest <binary>`.
    Start(&'a str),
    /// `@@vmgate-paxtest-exit <binary> <status>`.
    Exit(&'a str),
}

/// Reads the framed output that [`framed_script`] produces.
///
/// Each block is read on its own, so nothing merges across tests. A block whose output has no
/// verdict for its own test, or that has no exit marker because the output was cut off, gives
/// [`Verdict::Missing`]. Output lines that are not the block's own result go to `unknown`;
/// lines outside any block are ignored, except stray exit markers, which go to `unknown`.
#[must_use]
pub fn parse_framed(text: &str) -> PaxtestReport {
    let lines: Vec<&str> = text.lines().collect();
    let first_block = lines.iter().position(|line| marker(line).is_some());
    let preamble = &lines[..first_block.unwrap_or(lines.len())];
    let mut report = PaxtestReport {
        mode: preamble.iter().rev().find_map(|line| mode_in(line)),
        kernel: kernel_in(preamble),
        ..PaxtestReport::default()
    };
    let mut open = None;
    for line in lines {
        open = framed_step(&mut report, open, line);
    }
    if let Some(block) = open {
        close_block(&mut report, block, false);
    }
    report
}

/// Feeds one line to the framed reader; returns the block still open after it.
fn framed_step<'a>(
    report: &mut PaxtestReport,
    open: Option<Block<'a>>,
    line: &'a str,
) -> Option<Block<'a>> {
    match (marker(line), open) {
        (Some(Marker::Start(binary)), open) => {
            if let Some(block) = open {
                close_block(report, block, false);
            }
            Some(Block {
                binary,
                start_line: line,
                output: Vec::new(),
            })
        }
        (Some(Marker::Exit(binary)), Some(block)) if block.binary == binary => {
            close_block(report, block, true);
            None
        }
        (_, Some(mut block)) => {
            block.output.push(line);
            Some(block)
        }
        (Some(Marker::Exit(_)), None) => {
            report.push_unknown(line);
            None
        }
        (None, None) => None,
    }
}

/// Reads a marker line; an exit marker without a numeric status is not one (it was cut off).
fn marker(line: &str) -> Option<Marker<'_>> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix(EXIT_MARKER) {
        let mut words = rest.split_whitespace();
        let (binary, status) = (words.next()?, words.next()?);
        let numeric = !status.is_empty() && status.bytes().all(|byte| byte.is_ascii_digit());
        return (numeric && words.next().is_none()).then_some(Marker::Exit(binary));
    }

    let binary = line.strip_prefix(START_MARKER)?.trim();
    let single_word = !binary.is_empty() && !binary.contains(char::is_whitespace);
    single_word.then_some(Marker::Start(binary))
}

/// Records a block's verdict; `finished` says whether its exit marker was seen.
fn close_block(report: &mut PaxtestReport, block: Block<'_>, finished: bool) {
    let name = name_of(block.binary);
    let mut verdict = None;
    for line in block.output {
        let own = name.filter(|_| finished && verdict.is_none());
        match own.and_then(|name| own_verdict(line, name)) {
            Some(text) => verdict = Some(Verdict::from_text(text)),
            None => report.push_unknown(line),
        }
    }

    let key = name.map_or_else(|| block.binary.to_owned(), str::to_owned);
    report.record(key, verdict.unwrap_or(Verdict::Missing), block.start_line);
}

/// The verdict text of a line that starts with `name`, its padding and a colon.
fn own_verdict<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let line = line.trim_start();
    line.get(header_len(line, name)?..)
}

/// A POSIX `sh` script (busybox `sh` is enough) that runs each known binary in `binaries` on
/// its own, between the markers [`parse_framed`] reads.
///
/// Unknown binaries and repeats are left out, and only names from [`TESTS`] are written into
/// the script, so nothing the caller passes reaches the shell.
#[must_use]
pub fn framed_script(binaries: &[&str]) -> String {
    let mut script = format!(
        "#!/bin/sh\n\
         # Written by vmgate: runs each paxtest binary on its own, between markers.\n\
         PAXTEST_MODE=1\n\
         LD_LIBRARY_PATH={PAXTEST_DIR}\n\
         export PAXTEST_MODE LD_LIBRARY_PATH\n\
         echo 'Mode: Blackhat'\n\
         echo 'Kernel: '\n\
         uname -a\n"
    );
    let mut written: Vec<&'static str> = Vec::new();
    for binary in binaries.iter().filter_map(|binary| known_binary(binary)) {
        if !written.contains(&binary) {
            written.push(binary);
            script.push_str(&framed_run(binary));
        }
    }
    script
}

/// Why a run of `binaries` in the framed format cannot be trusted: a test with
/// no verdict (the run was cut off or a test died before printing one), or a
/// header naming another kernel than `release`, the one booted.
pub fn run_failures<'a>(
    report: &PaxtestReport,
    binaries: impl IntoIterator<Item = &'a str>,
    release: &str,
) -> Vec<String> {
    let mut reasons = Vec::new();
    match &report.kernel {
        None => reasons.push("paxtest: no `Kernel:` line in its output".to_string()),
        Some(kernel) if !kernel.split_whitespace().any(|word| word == release) => reasons.push(
            format!("paxtest ran on `{kernel}`, not the booted {release}"),
        ),
        Some(_) => {}
    }
    let names = binaries.into_iter().filter_map(name_of);
    let incomplete: Vec<&str> = names
        .filter(|name| matches!(report.results.get(*name), None | Some(Verdict::Missing)))
        .collect();
    if !incomplete.is_empty() {
        reasons.push(format!(
            "paxtest incomplete: no verdict for {}",
            incomplete.join(", ")
        ));
    }
    reasons
}

/// Our own copy of a binary's name if it is a known test.
fn known_binary(binary: &str) -> Option<&'static str> {
    TESTS
        .iter()
        .find(|(known, _)| *known == binary)
        .map(|(known, _)| *known)
}

/// The lines of the framed script that run one binary. The bare `echo` ends a verdict line the
/// test left open, so the exit marker always starts its own line.
fn framed_run(binary: &'static str) -> String {
    format!(
        "echo '{START_MARKER}{binary}'\n\
         {PAXTEST_DIR}/{binary} </dev/null 2>&1\n\
         status=$?\n\
         echo\n\
         echo \"{EXIT_MARKER}{binary} $status\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../tests/fixtures/paxtest-vanilla-blackhat.txt");

    fn bits(bits: u32, guessed: bool) -> Verdict {
        Verdict::Bits { bits, guessed }
    }

    fn other(text: &str) -> Verdict {
        Verdict::Other {
            text: text.to_owned(),
        }
    }

    fn verdicts(report: &PaxtestReport) -> Vec<(&str, &Verdict)> {
        let pairs = report.results.iter();
        pairs
            .map(|(name, verdict)| (name.as_str(), verdict))
            .collect()
    }

    #[test]
    fn table_has_unique_binaries_and_names() {
        for (index, (binary, name)) in TESTS.iter().enumerate() {
            assert_eq!(TESTS.iter().position(|(b, _)| b == binary), Some(index));
            assert_eq!(TESTS.iter().position(|(_, n)| n == name), Some(index));
            assert!(!name.contains(':'), "{name}");
            assert!(name.len() <= 41, "{name}");
        }
    }

    #[test]
    fn fast_and_randomisation_split() {
        assert_eq!(fast_tests().count(), 19);
        assert_eq!(
            TESTS.iter().filter(|(b, _)| is_randomisation(b)).count(),
            15
        );
        assert!(fast_tests().all(|binary| !binary.starts_with("rand")));
        assert!(is_randomisation("randexhaust2"));
        assert!(!is_randomisation("rettofunc1"));
        assert!(!is_randomisation("randnotatest"));
        assert_eq!(
            name_of("mprotshdata"),
            Some("Executable shared library data (mprotect)")
        );
        assert_eq!(name_of("Executable bss"), None);
    }

    #[test]
    fn sample_has_every_verdict() {
        let report = parse_report(SAMPLE);
        let q28 = bits(28, true);
        let expected = [
            ("anonmap", Verdict::Killed),
            ("execbss", Verdict::Killed),
            ("execdata", Verdict::Killed),
            ("execheap", Verdict::Killed),
            ("execstack", Verdict::Killed),
            ("shlibbss", Verdict::Killed),
            ("shlibdata", Verdict::Killed),
            ("mprotanon", Verdict::Vulnerable),
            ("mprotbss", Verdict::Vulnerable),
            ("mprotdata", Verdict::Vulnerable),
            ("mprotheap", Verdict::Vulnerable),
            ("mprotstack", Verdict::Vulnerable),
            ("mprotshbss", Verdict::Vulnerable),
            ("mprotshdata", Verdict::Vulnerable),
            ("writetext", Verdict::Vulnerable),
            ("randamap", q28.clone()),
            ("randheap1", q28.clone()),
            ("randheap2", q28.clone()),
            ("randmain1", q28.clone()),
            ("randmain2", q28.clone()),
            ("randshlib", q28.clone()),
            ("randvdso", q28.clone()),
            ("randstack1", bits(30, true)),
            ("randstack2", bits(30, true)),
            ("randarg1", bits(22, true)),
            ("randarg2", bits(22, true)),
            ("randshlibdelta1", q28.clone()),
            ("randshlibdelta2", q28.clone()),
            ("randexhaust1", q28.clone()),
            ("randexhaust2", q28),
            (
                "rettofunc1",
                other("paxtest: return address contains a NULL byte."),
            ),
            ("rettofunc2", Verdict::Missing),
            (
                "rettofunc1x",
                other("paxtest: return address contains a NULL byte."),
            ),
            ("rettofunc2x", Verdict::Missing),
        ];
        for (binary, verdict) in &expected {
            let name = name_of(binary).unwrap_or(binary);
            assert_eq!(report.results.get(name), Some(verdict), "{name}");
        }
        assert_eq!(report.results.len(), TESTS.len());
        assert!(report.unknown.is_empty(), "{:?}", report.unknown);
        assert!(report
            .missing_tests(TESTS.iter().map(|(_, name)| *name))
            .is_empty());
    }

    #[test]
    fn sample_preamble() {
        let report = parse_report(SAMPLE);
        assert_eq!(report.mode.as_deref(), Some("Blackhat"));
        let kernel = "Linux host 6.1.0-57-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 \
                      x86_64 GNU/Linux";
        assert_eq!(report.kernel.as_deref(), Some(kernel));
    }

    #[test]
    fn verdict_words() {
        let cases = [
            ("Killed", Verdict::Killed),
            ("  Vulnerable \r", Verdict::Vulnerable),
            ("No randomization", Verdict::NoRandomization),
            ("No randomisation", Verdict::NoRandomization),
            ("28 quality bits (guessed)", bits(28, true)),
            ("28 bits (guessed)", bits(28, true)),
            ("30 quality bits", bits(30, false)),
            ("0 bits", bits(0, false)),
            ("+28 bits", other("+28 bits")),
            ("99999999999 bits", other("99999999999 bits")),
            ("bits (guessed)", other("bits (guessed)")),
            ("Killed: yes", other("Killed: yes")),
            ("", Verdict::Missing),
            (" \t", Verdict::Missing),
        ];
        for (text, verdict) in cases {
            assert_eq!(Verdict::from_text(text), verdict, "{text:?}");
        }
    }

    #[test]
    fn exact_names_in_either_order() {
        let plain = "Executable bss                           : Vulnerable";
        let mprotect = "Executable bss (mprotect)                : Killed";
        for text in [
            format!("{plain}\n{mprotect}\n"),
            format!("{mprotect}\n{plain}"),
        ] {
            let report = parse_report(&text);
            let expected = [
                ("Executable bss", &Verdict::Vulnerable),
                ("Executable bss (mprotect)", &Verdict::Killed),
            ];
            assert_eq!(verdicts(&report), expected);
        }
    }

    #[test]
    fn quality_word_is_optional() {
        let text = "Stack randomization test (SEGMEXEC)      : 28 quality bits (guessed)\n\
                    Stack randomization test (PAGEEXEC)      : 28 bits (guessed)\n";
        let report = parse_report(text);
        assert!(report
            .results
            .values()
            .all(|verdict| *verdict == bits(28, true)));
        assert_eq!(report.results.len(), 2);
    }

    #[test]
    fn empty_verdict_never_merges_into_next_line() {
        let text = "Test results:\n\
                    Executable bss                           : \n\
                    Executable bss (mprotect)                : Killed\n\
                    Executable data                          :\n\
                    Killed\n";
        let report = parse_report(text);
        let expected = [
            ("Executable bss", &Verdict::Missing),
            ("Executable bss (mprotect)", &Verdict::Killed),
            ("Executable data", &Verdict::Missing),
        ];
        assert_eq!(verdicts(&report), expected);
        assert_eq!(report.unknown, ["Killed"]);
    }

    #[test]
    fn shared_lines_chain() {
        let text = "Executable heap : Executable stack : Writable text segments : Vulnerable";
        let report = parse_report(text);
        let expected = [
            ("Executable heap", &Verdict::Missing),
            ("Executable stack", &Verdict::Missing),
            ("Writable text segments", &Verdict::Vulnerable),
        ];
        assert_eq!(verdicts(&report), expected);
    }

    #[test]
    fn messages_keep_their_colons() {
        let text = "Return to function (strcpy)              : paxtest: bad: thing\n\
                    noise before Executable heap : Killed\n\
                    stray line";
        let report = parse_report(text);
        let name = "Return to function (strcpy)";
        assert_eq!(
            report.results.get(name),
            Some(&other("paxtest: bad: thing"))
        );
        assert_eq!(
            report.results.get("Executable heap"),
            Some(&Verdict::Killed)
        );
        assert_eq!(report.unknown, ["noise before", "stray line"]);
    }

    #[test]
    fn repeated_result_keeps_first_and_reports_second() {
        let text = "Executable heap : Killed\r\nExecutable heap : Vulnerable\r\n";
        let report = parse_report(text);
        assert_eq!(
            report.results.get("Executable heap"),
            Some(&Verdict::Killed)
        );
        assert_eq!(report.unknown, ["Executable heap : Vulnerable"]);
    }

    #[test]
    fn missing_tests_lists_unreached() {
        let report = parse_report("Executable anonymous mapping : Killed\nExecutable bss : ");
        let expected = TESTS.iter().take(3).map(|(_, name)| *name);
        assert_eq!(report.missing_tests(expected), ["Executable data"]);
        assert_eq!(report.mode, None);
        assert_eq!(report.kernel, None);
    }

    #[test]
    fn preamble_variants() {
        let text = "Mode: Kiddie\nKernel: Linux box 6.6\nTest results:\nExecutable heap : Killed";
        let report = parse_report(text);
        assert_eq!(report.mode.as_deref(), Some("Kiddie"));
        assert_eq!(report.kernel.as_deref(), Some("Linux box 6.6"));
        assert!(report.unknown.is_empty());
    }

    #[test]
    fn framed_blocks() {
        let text = "boot noise\n\
                    @@vmgate-paxtest anonmap\n\
                    Executable anonymous mapping             : Killed\n\
                    \n\
                    @@vmgate-paxtest-exit anonmap 0\n\
                    @@vmgate-paxtest rettofunc1\n\
                    Return to function (strcpy)              : \n\
                    @@vmgate-paxtest-exit rettofunc1 139\n\
                    @@vmgate-paxtest randamap\n\
                    Anonymous mapping randomization test     : 28 quality bits (guessed)\n\
                    @@vmgate-paxtest-exit randamap 0\n";
        let report = parse_framed(text);
        let expected = [
            ("Anonymous mapping randomization test", &bits(28, true)),
            ("Executable anonymous mapping", &Verdict::Killed),
            ("Return to function (strcpy)", &Verdict::Missing),
        ];
        assert_eq!(verdicts(&report), expected);
        assert!(report.unknown.is_empty(), "{:?}", report.unknown);
    }

    #[test]
    fn framed_truncated_last_block() {
        let text = "@@vmgate-paxtest execbss\n\
                    Executable bss                           : Killed\n\
                    @@vmgate-paxtest-exit execbss 0\n\
                    @@vmgate-paxtest mprotbss\n\
                    Executable bss (mprotect)                : Vulnerable\n\
                    @@vmgate-paxtest-exit mprot";
        let report = parse_framed(text);
        let expected = [
            ("Executable bss", &Verdict::Killed),
            ("Executable bss (mprotect)", &Verdict::Missing),
        ];
        assert_eq!(verdicts(&report), expected);
        let cut = [
            "Executable bss (mprotect)                : Vulnerable",
            "@@vmgate-paxtest-exit mprot",
        ];
        assert_eq!(report.unknown, cut);
    }

    #[test]
    fn framed_garbage_output() {
        let text = "@@vmgate-paxtest execbss\n\
                    Segmentation fault\n\
                    Executable bss (mprotect)                : Killed\n\
                    @@vmgate-paxtest-exit execbss 139\n\
                    @@vmgate-paxtest-exit execbss 0\n\
                    @@vmgate-paxtest execheap\n\
                    junk Executable heap : Killed\n\
                    @@vmgate-paxtest-exit execheap 1\n";
        let report = parse_framed(text);
        let expected = [
            ("Executable bss", &Verdict::Missing),
            ("Executable heap", &Verdict::Missing),
        ];
        assert_eq!(verdicts(&report), expected);
        let unknown = [
            "Segmentation fault",
            "Executable bss (mprotect)                : Killed",
            "@@vmgate-paxtest-exit execbss 0",
            "junk Executable heap : Killed",
        ];
        assert_eq!(report.unknown, unknown);
    }

    #[test]
    fn framed_unknown_binary_and_repeats() {
        let text = "@@vmgate-paxtest newtest\n\
                    Some new test : Killed\n\
                    @@vmgate-paxtest-exit newtest 0\n\
                    @@vmgate-paxtest execheap\n\
                    Executable heap : Killed\n\
                    Executable heap : Vulnerable\n\
                    @@vmgate-paxtest-exit execheap 0\n\
                    @@vmgate-paxtest execheap\n\
                    @@vmgate-paxtest-exit execheap 0\n";
        let report = parse_framed(text);
        let expected = [
            ("Executable heap", &Verdict::Killed),
            ("newtest", &Verdict::Missing),
        ];
        assert_eq!(verdicts(&report), expected);
        let unknown = [
            "Some new test : Killed",
            "Executable heap : Vulnerable",
            "@@vmgate-paxtest execheap",
        ];
        assert_eq!(report.unknown, unknown);
    }

    const FRAMED_HEAD: &str = "Mode: Blackhat\nKernel: \n\
        Linux (none) 6.1.0-57-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 x86_64\n";

    fn framed_block(binary: &str, output: &str) -> String {
        format!("@@vmgate-paxtest {binary}\n{output}\n@@vmgate-paxtest-exit {binary} 0\n")
    }

    #[test]
    fn a_complete_framed_run_on_the_booted_kernel_has_no_failures() {
        let text = format!(
            "{FRAMED_HEAD}{}{}",
            framed_block(
                "anonmap",
                "Executable anonymous mapping             : Killed"
            ),
            framed_block(
                "execbss",
                "Executable bss                           : Vulnerable"
            ),
        );
        let report = parse_framed(&text);
        assert_eq!(report.mode.as_deref(), Some("Blackhat"));
        let release = "6.1.0-57-cloud-amd64";
        assert!(run_failures(&report, ["anonmap", "execbss"], release).is_empty());
        let other = run_failures(&report, ["anonmap"], "6.6.0-grsec");
        assert_eq!(other.len(), 1, "{other:?}");
        assert!(
            other[0].starts_with("paxtest ran on `Linux (none) 6.1.0-57"),
            "{other:?}"
        );
    }

    #[test]
    fn a_truncated_framed_run_is_an_error_naming_the_tests_without_verdicts() {
        let text = format!(
            "{FRAMED_HEAD}{}@@vmgate-paxtest execbss\nExecutable bss        ",
            framed_block(
                "anonmap",
                "Executable anonymous mapping             : Killed"
            ),
        );
        let report = parse_framed(&text);
        let found = run_failures(
            &report,
            ["anonmap", "execbss", "execdata"],
            "6.1.0-57-cloud-amd64",
        );
        assert_eq!(
            found,
            ["paxtest incomplete: no verdict for Executable bss, Executable data"]
        );
        let headless = parse_framed(&framed_block(
            "anonmap",
            "Executable anonymous mapping : Killed",
        ));
        let found = run_failures(&headless, ["anonmap"], "6.1.0-57-cloud-amd64");
        assert_eq!(found, ["paxtest: no `Kernel:` line in its output"]);
    }

    #[test]
    fn framed_script_runs_only_known_binaries() {
        let script = framed_script(&["anonmap", "randvdso", "x; rm -rf /", "anonmap", "nope"]);
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("export PAXTEST_MODE LD_LIBRARY_PATH\n"));
        assert!(script.contains("LD_LIBRARY_PATH=/usr/lib/paxtest\n"));
        assert!(script.contains("/usr/lib/paxtest/anonmap </dev/null 2>&1\n"));
        assert!(script.contains("echo \"@@vmgate-paxtest-exit randvdso $status\"\n"));
        assert_eq!(script.matches("echo '@@vmgate-paxtest anonmap'").count(), 1);
        assert!(!script.contains("rm -rf") && !script.contains("nope"));
        let anonmap = script.find("/anonmap ").unwrap_or(usize::MAX);
        assert!(anonmap < script.find("/randvdso ").unwrap_or(0));
    }
}
