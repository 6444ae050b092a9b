//! A bounded fuzz pass over the parsers that read untrusted input: scenario files, raw
//! serial bytes, kernel log messages, paxtest output and the guest's sysctl records.
//!
//! Each target tries a fixed number of generated inputs, arbitrary ones and ones built
//! from the words its parser looks for, and asserts that it never panics and that what it
//! returns keeps the invariants its docs promise. A failing input is shrunk and saved
//! beside this file in `fuzz.proptest-regressions`, which is replayed first on later runs.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use vmgate::console::{LineAssembler, MAX_LINE_BYTES};
use vmgate::kernel_log::{self, KernelEvent, KernelLog};
use vmgate::paxtest::{self, PaxtestReport, TESTS};
use vmgate::probe::{self, SysctlValue};
use vmgate::scenario::{self, Case, Problem};
use vmgate::sysctl_expect::SysctlExpectation;

/// Inputs tried per target: enough to reach odd corners on every run, few enough that
/// the whole file runs in seconds in a debug build.
const CASES: u32 = 256;

/// The most cases one scenario file may expand to, as `scenario::parse_str` documents.
const MAX_CASES: usize = 512;

/// The same bounded run for every target.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

/// Text of every kind: arbitrary Unicode, names, separators and control characters,
/// and lines long enough to pass the kernel's command-line limit.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        3 => "[a-z][a-z0-9_.-]{0,10}",
        2 => "[a-zA-Z0-9_.,:+=/ -]{0,16}",
        2 => "[ \t\n\r\u{0}\u{7f}\u{85}\"'=a]{0,8}",
        1 => ("[a-z=]{1,4}", 100usize..800).prop_map(|(part, times)| part.repeat(times)),
    ]
}

// Scenario files.

/// Checks what `parse_str` promises of any text.
fn check_scenario_text(text: &str) -> Result<(), TestCaseError> {
    let last_line = text.matches('\n').count() + 1;
    match scenario::parse_str(Path::new("fuzz.toml"), text) {
        Ok(cases) => check_cases(&cases, last_line),
        Err(problems) => check_problems(&problems, last_line),
    }
}

/// Problems are on lines of the text, each message on one line.
fn check_problems(problems: &[Problem], last_line: usize) -> Result<(), TestCaseError> {
    prop_assert!(!problems.is_empty(), "an error without problems");
    for problem in problems {
        prop_assert!(
            (1..=last_line).contains(&problem.line),
            "{problem:?} is not on a line of the text"
        );
        prop_assert!(!problem.message.contains('\n'), "{problem:?} spans lines");
    }
    Ok(())
}

/// Cases stay within the cap, on lines of the text, with unique names.
fn check_cases(cases: &[Case], last_line: usize) -> Result<(), TestCaseError> {
    prop_assert!(cases.len() <= MAX_CASES, "{} cases", cases.len());
    let mut names = HashSet::new();
    for case in cases {
        prop_assert!((1..=last_line).contains(&case.line), "{case:?}");
        prop_assert!(names.insert(case.name.as_str()), "{} twice", case.name);
    }
    Ok(())
}

/// A TOML basic string holding `text`, with the characters it cannot hold escaped.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML array of already written values.
fn array(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// A table's keys with their values as written.
type Entries = Vec<(String, String)>;

/// A quoted string value.
fn string_value() -> impl Strategy<Value = String> {
    text().prop_map(|s| quoted(&s))
}

/// A TOML value of any type, nested a little, as it would be written.
fn any_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => string_value(),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => (-5i64..4000).prop_map(|n| n.to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => select(vec!["1.5", "-0.0", "inf", "nan", "1979-05-27T07:32:00Z", "'lit'", "0x1F"])
            .prop_map(str::to_string),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|items| array(&items)),
            vec((text(), inner), 0..3).prop_map(|pairs| inline_table(&pairs)),
        ]
    })
}

/// A TOML inline table of already written values; a key given twice keeps its first.
fn inline_table(pairs: &[(String, String)]) -> String {
    let entries: Vec<String> = unique(pairs)
        .map(|(key, value)| format!("{} = {value}", quoted(key)))
        .collect();
    format!("{{ {} }}", entries.join(", "))
}

/// The pairs whose key no earlier pair has, as TOML rejects a key written twice.
fn unique(pairs: &[(String, String)]) -> impl Iterator<Item = &(String, String)> {
    let mut seen = HashSet::new();
    pairs
        .iter()
        .filter(move |(key, _)| seen.insert(key.as_str()))
}

/// Usually a value from `right`, now and then one from `wrong`.
fn mostly<T: std::fmt::Debug>(
    right: impl Strategy<Value = T>,
    wrong: impl Strategy<Value = T>,
) -> impl Strategy<Value = T> {
    prop_oneof![12 => right, 1 => wrong]
}

/// The value a key takes, right most of the time and of any type otherwise.
fn value_or_wrong(right: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    mostly(right, any_value())
}

/// A table's body from `(key, value)` entries; a key given twice keeps its first value.
fn table_body(entries: &[(String, String)]) -> String {
    unique(entries)
        .map(|(key, value)| format!("{} = {value}\n", quoted(key)))
        .collect()
}

/// Whether `entries` give `key` a value.
fn has_key(entries: &[(String, String)], key: &str) -> bool {
    entries.iter().any(|(given, _)| given == key)
}

/// Entries whose keys are mostly `known` ones, each valued by `value_of`, and otherwise
/// unknown keys of any value.
fn entries(
    known: &'static [&'static str],
    value_of: fn(&str) -> BoxedStrategy<String>,
    count: std::ops::Range<usize>,
) -> impl Strategy<Value = Entries> {
    let known_entry =
        select(known).prop_flat_map(move |key| (Just(key.to_string()), value_of(key)));
    let entry = prop_oneof![12 => known_entry, 1 => (text(), any_value())];
    vec(entry, count)
}

/// A scenario or matrix name, usually valid, often one of a few so that scenario and
/// case names collide.
fn name() -> impl Strategy<Value = String> {
    let few = select(vec!["a", "b", "a-x", "a-1"]).prop_map(str::to_string);
    let right = prop_oneof!["[a-z][a-z0-9_.-]{0,10}", few];
    let wrong = select(vec!["a\nb", "a b", "a-\u{0}"]).prop_map(str::to_string);
    mostly(right, prop_oneof![text(), wrong])
}

/// A kernel parameter, valid or not in each way the checks look for.
fn param() -> impl Strategy<Value = String> {
    let wrong = [
        "console=ttyS1",
        "panic=1",
        "=x",
        "",
        "a b",
        "a\nb",
        "a\u{0}b",
        "a\"b",
    ];
    let wrong = prop_oneof![select(wrong.to_vec()).prop_map(str::to_string), text()];
    mostly("[a-z_]{1,10}(=[a-z0-9,]{1,6})?", wrong)
}

/// A dotted sysctl key, valid or not.
fn sysctl_key() -> impl Strategy<Value = String> {
    let wrong = select(vec!["kernel..x", ".x", "x.", "a/b", ""]).prop_map(str::to_string);
    mostly(
        "[a-z_]{1,6}(\\.[a-z_-]{1,6}){0,3}",
        prop_oneof![wrong, text()],
    )
}

/// A sysctl expectation as written, valid or not.
fn expectation() -> impl Strategy<Value = String> {
    let op = select(vec![">=", "<=", "=", "<", ">", "", " ", ">=>="]);
    let operand = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("absent".to_string()),
        Just("99999999999999999999".to_string()),
        "[+-]?[0-9a-z ]{0,6}",
    ];
    let suffix = select(vec![
        "",
        " or absent",
        "or absent",
        " or absent or absent",
        "  ",
    ]);
    let built =
        (op, operand, suffix).prop_map(|(op, operand, suffix)| op.to_string() + &operand + suffix);
    prop_oneof![3 => built, 1 => text()]
}

/// The value of a `[[scenario]]` key.
fn scenario_value(key: &str) -> BoxedStrategy<String> {
    match key {
        "name" => value_or_wrong(name().prop_map(|n| quoted(&n))).boxed(),
        "params" => value_or_wrong(vec(param(), 0..5).prop_map(|ps| quoted_array(&ps))).boxed(),
        "timeout" => value_or_wrong((-2i64..4000).prop_map(|n| n.to_string())).boxed(),
        "matrix" => value_or_wrong(matrix_entries().prop_map(|e| inline_table(&e))).boxed(),
        "requires" => value_or_wrong(inline(REQUIRES_KEYS, requires_value)).boxed(),
        "expect" => value_or_wrong(inline(EXPECT_KEYS, expect_value)).boxed(),
        "observe" => value_or_wrong(inline(OBSERVE_KEYS, observe_value)).boxed(),
        _ => value_or_wrong(string_value()).boxed(),
    }
}

/// A sub-table written inline, as `{ key = value, ... }`.
fn inline(
    known: &'static [&'static str],
    value_of: fn(&str) -> BoxedStrategy<String>,
) -> impl Strategy<Value = String> {
    entries(known, value_of, 0..4).prop_map(|e| inline_table(&e))
}

/// The keys of `[scenario.requires]`.
const REQUIRES_KEYS: &[&str] = &["cpu", "accel"];

/// The keys of `[scenario.expect]`.
const EXPECT_KEYS: &[&str] = &["outcome", "outcome", "message", "sysctls"];

/// The keys of `[scenario.observe]`.
const OBSERVE_KEYS: &[&str] = &["sysctls", "commands", "paxtest", "probe"];

/// A TOML array of strings.
fn quoted_array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|item| quoted(item)).collect();
    array(&items)
}

/// The keys of `[[scenario]]` other than its name and description. The sub-tables are
/// mostly written as headers, but appear here now and then with a value of a wrong type.
const SCENARIO_KEYS: &[&str] = &[
    "params", "params", "params", "timeout", "timeout", "matrix", "requires", "expect", "observe",
];

/// The value of a `[scenario.requires]` key.
fn requires_value(key: &str) -> BoxedStrategy<String> {
    let flag = mostly("[a-z0-9_]{1,6}", text());
    let accel = mostly(select(vec!["kvm", "tcg"]), select(vec!["KVM", "hvf", ""]));
    match key {
        "cpu" => value_or_wrong(vec(flag, 0..4).prop_map(|fs| quoted_array(&fs))).boxed(),
        _ => value_or_wrong(accel.prop_map(quoted)).boxed(),
    }
}

/// The value of a `[scenario.expect]` key.
fn expect_value(key: &str) -> BoxedStrategy<String> {
    let outcomes = vec!["booted", "panic", "oops", "hang", "ssh-unreachable"];
    let outcome = mostly(select(outcomes), select(vec!["crash", "Panic", ""]));
    match key {
        "outcome" => value_or_wrong(outcome.prop_map(quoted)).boxed(),
        "sysctls" => value_or_wrong(sysctl_table()).boxed(),
        _ => value_or_wrong(string_value()).boxed(),
    }
}

/// An inline table of sysctl expectations.
fn sysctl_table() -> impl Strategy<Value = String> {
    vec((sysctl_key(), expectation().prop_map(|e| quoted(&e))), 0..4)
        .prop_map(|pairs| inline_table(&pairs))
}

/// The value of a `[scenario.observe]` key.
fn observe_value(key: &str) -> BoxedStrategy<String> {
    match key {
        "sysctls" => {
            value_or_wrong(vec(sysctl_key(), 0..4).prop_map(|ks| quoted_array(&ks))).boxed()
        }
        "commands" => value_or_wrong(commands()).boxed(),
        _ => value_or_wrong(any::<bool>().prop_map(|b| b.to_string())).boxed(),
    }
}

/// Guest commands, each an argument vector that is now and then empty.
fn commands() -> impl Strategy<Value = String> {
    let argv = mostly(vec(text(), 1..4), Just(Vec::new()));
    vec(argv, 0..3).prop_map(|argvs| {
        let argvs: Vec<String> = argvs.iter().map(|argv| quoted_array(argv)).collect();
        array(&argvs)
    })
}

/// A matrix value: mostly valid text, sometimes an integer, text of any kind or a bool.
fn matrix_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z0-9_.,:+-]{1,4}".prop_map(|v| quoted(&v)),
        2 => select(vec!["\"x\"", "\"1\"", "1"]).prop_map(str::to_string),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => string_value(),
        1 => any::<bool>().prop_map(|b| b.to_string()),
    ]
}

/// A matrix: a few keys of a few values, or so many keys that the case count passes the
/// cap or overflows `usize`.
fn matrix_entries() -> impl Strategy<Value = Entries> {
    let values = mostly(vec(matrix_value(), 1..5), Just(Vec::new())).prop_map(|vs| array(&vs));
    let small = vec((name(), value_or_wrong(values)), 0..5);
    let huge = vec(("[a-z]{1,8}", Just("[\"a\", \"b\"]".to_string())), 8..80);
    prop_oneof![4 => small, 1 => huge]
}

/// The keys and values of `[[scenario]]` itself: a name and a description nearly always,
/// then a few other keys.
fn scenario_entries() -> impl Strategy<Value = Entries> {
    let named = |key: &'static str| (Just(key.to_string()), scenario_value(key));
    let name = option::weighted(0.97, named("name"));
    let description = option::weighted(0.97, named("description"));
    let others = entries(SCENARIO_KEYS, scenario_value, 0..4);
    (name, description, others).prop_map(|(name, description, others)| {
        name.into_iter().chain(description).chain(others).collect()
    })
}

/// The bodies of a scenario's sub-tables, each there or not.
type Sections = (
    Option<Entries>,
    Option<Entries>,
    Option<Entries>,
    Option<Entries>,
    Option<Entries>,
);

/// The sub-tables: matrix, requires, expect, expect.sysctls and observe.
fn sections() -> impl Strategy<Value = Sections> {
    let requires = entries(REQUIRES_KEYS, requires_value, 0..3);
    let expect = entries(EXPECT_KEYS, expect_value, 0..3);
    let observe = entries(OBSERVE_KEYS, observe_value, 0..4);
    let sysctls = vec((sysctl_key(), expectation().prop_map(|e| quoted(&e))), 0..4);
    (
        option::of(matrix_entries()),
        option::of(requires),
        option::of(expect),
        option::of(sysctls),
        option::of(observe),
    )
}

/// One `[[scenario]]` table with its sub-tables written as headers, leaving out those
/// already given a value (of a wrong type) in the table, which TOML would reject.
fn scenario_table() -> impl Strategy<Value = String> {
    (scenario_entries(), sections()).prop_map(|(top, sections)| {
        let (matrix, requires, expect, sysctls, observe) = sections;
        let mut table = format!("[[scenario]]\n{}", table_body(&top));
        let free = |key| !has_key(&top, key);
        let expect_sysctls = sysctls
            .filter(|_| free("expect") && !expect.as_ref().is_some_and(|e| has_key(e, "sysctls")));
        add_section(&mut table, "matrix", matrix.filter(|_| free("matrix")));
        add_section(
            &mut table,
            "requires",
            requires.filter(|_| free("requires")),
        );
        add_section(&mut table, "expect", expect.filter(|_| free("expect")));
        add_section(&mut table, "expect.sysctls", expect_sysctls);
        add_section(&mut table, "observe", observe.filter(|_| free("observe")));
        table
    })
}

/// Appends `[scenario.<name>]` and its entries, if there are any.
fn add_section(table: &mut String, name: &str, entries: Option<Entries>) {
    if let Some(entries) = entries {
        table.push_str(&format!("[scenario.{name}]\n{}", table_body(&entries)));
    }
}

/// A scenario file of a few tables, sometimes led by something that is not a scenario.
fn scenario_file() -> impl Strategy<Value = String> {
    let lead = prop_oneof![
        20 => Just(""),
        1 => select(vec!["title = \"x\"\n", "[scenario]\n", "scenario = 1\n", "[[scenario]]\n"]),
    ];
    (lead, vec(scenario_table(), 1..4))
        .prop_map(|(lead, tables)| lead.to_string() + &tables.concat())
}

/// A near-valid file with one character put in at some place, to reach the syntax errors
/// of text that is otherwise well formed.
fn damaged_scenario_file() -> impl Strategy<Value = String> {
    let damage = select(vec!['[', ']', '=', '"', '\n', '#', '{', '\u{0}', '\'', ',']);
    (scenario_file(), any::<Index>(), damage).prop_map(|(mut file, at, c)| {
        let boundaries: Vec<usize> = file.char_indices().map(|(i, _)| i).collect();
        let at = if boundaries.is_empty() {
            0
        } else {
            *at.get(&boundaries)
        };
        file.insert(at, c);
        file
    })
}

// Console line reassembly.

/// A byte likely to matter to the escape parser, or any byte.
fn serial_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        3 => select(b"\x1b[]P^_X\r\n\x07\x18\x1a\t;0123456789?(mH\\ a".to_vec()),
        1 => select(vec![0x80u8, 0x9b, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0xff]),
    ]
}

/// A piece of serial output: a whole escape sequence, a line end, a multi-byte
/// character, a run of bytes, or a line long enough to be cut into pieces.
fn serial_piece() -> impl Strategy<Value = Vec<u8>> {
    let fragments = vec![
        "\x1b[0m",
        "\x1b[1;31m",
        "\x1b]0;title\x07",
        "\x1b]8;;x\x1b\\",
        "\x1b(B",
        "\x1bc",
        "\r\n",
        "\r",
        "\n",
        "é",
        "€",
        "😀",
        "\x1b[?25l",
        "\x1bP1$r\x1b\\",
        "\t",
    ];
    let long = (
        select(vec!["é", "€", "😀", "ab", "\x1b[m", "x"]),
        20_000usize..40_000,
    );
    prop_oneof![
        6 => select(fragments).prop_map(|f| f.as_bytes().to_vec()),
        6 => vec(serial_byte(), 0..24),
        1 => long.prop_map(|(f, times)| f.repeat(times).into_bytes()),
    ]
}

/// Serial output, with the places it is cut into chunks.
fn serial_stream() -> impl Strategy<Value = (Vec<u8>, Vec<Index>)> {
    (
        vec(serial_piece(), 0..12).prop_map(|pieces| pieces.concat()),
        vec(any::<Index>(), 0..8),
    )
}

/// Cuts `bytes` at `cuts` (positions of any byte, and so of any part of a sequence).
fn chunks<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for end in at {
        chunks.push(&bytes[start..end]);
        start = end;
    }
    chunks.push(&bytes[start..]);
    chunks
}

/// Every line an assembler gives for `chunks`, the unterminated last one included.
fn assemble(chunks: &[&[u8]]) -> Vec<String> {
    let mut assembler = LineAssembler::new();
    let mut lines: Vec<String> = chunks.iter().flat_map(|c| assembler.push(c)).collect();
    lines.extend(assembler.finish());
    lines
}

/// Lines hold no control character but tab, none is longer than the limit, and every
/// newline ended one.
fn check_lines(bytes: &[u8], lines: &[String]) -> Result<(), TestCaseError> {
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    prop_assert!(
        lines.len() >= newlines,
        "{} lines for {newlines} newlines",
        lines.len()
    );
    for line in lines {
        let control = line.chars().find(|&c| c != '\t' && c.is_control());
        prop_assert!(
            control.is_none(),
            "control character {control:?} in {line:?}"
        );
        prop_assert!(
            line.chars().count() <= MAX_LINE_BYTES,
            "a line of {}",
            line.len()
        );
    }
    Ok(())
}

// Kernel log messages.

/// A message built from the words the kernel log parser looks for.
fn kernel_message() -> impl Strategy<Value = String> {
    let heads = vec![
        "PAX: ",
        "PAX: From 10.1.2.3: ",
        "grsec: ",
        "grsec: (default:D:/) ",
        "Oops: ",
        "BUG: ",
        "WARNING: CPU:",
        "WARNING: at ",
        "kernel BUG at",
        "general protection fault",
        "Internal error: Oops",
        "CPU: ",
        "Pid: ",
        "",
        " ",
    ];
    let words = vec![
        "execution attempt in:",
        "terminating task:",
        "bytes at ",
        "<anonymous mapping>",
        "(null)",
        "/usr/bin/x",
        "(x)",
        "(",
        ")",
        "[",
        "]",
        ":",
        "-",
        ", ",
        " ",
        "  ",
        "\t",
        "0x",
        "3054df44000",
        "3054df44000-3054e047000",
        "ffffffffffffffffff",
        "120",
        "-1",
        ", uid/euid:",
        " 1000/1000",
        "/",
        ", PC:",
        " SP: ",
        "From ",
        "denied ",
        " denied ",
        " by ",
        " for ",
        "use of CAP_SYS_ADMIN",
        "[x:120]",
        "x[x:",
        "size overflow detected in function",
        " nfs_readdir",
        " fs/nfs/dir.c:1234",
        "UDEREF",
        "sanitize",
        "size_overflow",
        "0 PID: 1 Comm: swapper/0",
        " Tainted: ",
        "G",
        "W",
        "O",
        " Not tainted",
        "é",
        "\u{0}",
    ];
    let body = vec(select(words), 0..8).prop_map(|ws| ws.concat());
    prop_oneof![
        5 => (select(heads), body).prop_map(|(head, body)| head.to_string() + &body),
        1 => any::<String>(),
    ]
}

/// Checks a log fed `messages` one by one against `parse_all`, and that a finished log
/// starts afresh. Each message gives at most one event, so no more events than messages.
fn check_kernel_log(messages: &[String]) -> Result<(), TestCaseError> {
    let mut log = KernelLog::new();
    let mut events: Vec<KernelEvent> = messages.iter().flat_map(|m| log.push(m)).collect();
    events.extend(log.finish());
    prop_assert!(log.finish().is_empty(), "a finished log still holds events");

    prop_assert!(events.len() <= messages.len(), "{} events", events.len());
    let all = kernel_log::parse_all(messages.iter().map(String::as_str));
    prop_assert_eq!(&all, &events);
    for event in &events {
        if let KernelEvent::KernelFault {
            taint: Some(flags), ..
        } = event
        {
            prop_assert!(!flags.contains("  "), "taint {flags:?} has a run of spaces");
        }
    }
    Ok(())
}

// Paxtest output.

/// The test names paxtest prints.
fn test_name() -> impl Strategy<Value = &'static str> {
    select(TESTS.iter().map(|(_, name)| *name).collect::<Vec<_>>())
}

/// A test binary: a known one mostly, else any word or text.
fn test_binary() -> impl Strategy<Value = String> {
    let known = select(TESTS.iter().map(|(binary, _)| *binary).collect::<Vec<_>>());
    prop_oneof![4 => known.prop_map(str::to_string), 1 => "[a-z0-9]{1,8}", 1 => text()]
}

/// What paxtest prints after a test name, or something else.
fn verdict_text() -> impl Strategy<Value = String> {
    let words = vec![
        "Killed",
        "Vulnerable",
        "No randomization",
        "No randomisation",
        "28 quality bits",
        "28 quality bits (guessed)",
        "4294967296 bits",
        "+3 bits",
        "12 bits (guessed)",
        "",
        "paxtest: return address contains a NULL byte.",
        " Killed ",
        "killed",
    ];
    prop_oneof![4 => select(words).prop_map(str::to_string), 1 => text()]
}

/// One result line: a name, padding, a colon and a verdict, possibly several on a line
/// as when a test died, or one of the other lines paxtest prints.
fn result_line() -> impl Strategy<Value = String> {
    let padding = prop_oneof![" {0,20}", "\t{0,2}"];
    let result = (
        test_name(),
        padding,
        prop_oneof![Just(":"), Just("")],
        verdict_text(),
    )
        .prop_map(|(name, pad, colon, verdict)| format!("{name}{pad}{colon}{verdict}"));
    let other = select(vec![
        "Test results:",
        "Mode: Blackhat",
        "Kiddie",
        "Mode: kiddie",
        "Kernel:",
        "Kernel: ",
        "Kernel: Linux x 6.1.0",
        "Linux x 6.1.0",
        "Executable",
        "PaXtest - Copyright",
    ]);
    prop_oneof![
        6 => vec(result, 1..3).prop_map(|results| results.concat()),
        2 => other.prop_map(str::to_string),
        1 => text(),
    ]
}

/// Lines joined into output with `\n` or `\r\n` line ends.
fn joined(lines: Vec<String>, crlf: bool) -> String {
    lines.join(if crlf { "\r\n" } else { "\n" })
}

/// One block of the framed format, cut off or mismatched at times, with its binary.
fn framed_block() -> impl Strategy<Value = (String, String)> {
    let exit = prop_oneof![
        4 => (Just(None::<String>), "[0-9]{1,3}"),
        1 => (test_binary().prop_map(Some), "[0-9a-z]{0,3}"),
    ];
    (test_binary(), vec(result_line(), 0..4), option::of(exit)).prop_map(
        |(binary, output, exit)| {
            let mut lines = vec![format!("@@vmgate-paxtest {binary}")];
            lines.extend(output);
            if let Some((other, status)) = exit {
                let closing = other.unwrap_or_else(|| binary.clone());
                lines.push(format!("@@vmgate-paxtest-exit {closing} {status}"));
            }
            (binary, lines.join("\n"))
        },
    )
}

/// Checks what every report promises: a known mode, a kernel and unknown text that are
/// trimmed and not empty.
fn check_report(report: &PaxtestReport) -> Result<(), TestCaseError> {
    if let Some(mode) = &report.mode {
        prop_assert!(mode == "Blackhat" || mode == "Kiddie", "mode {mode:?}");
    }
    if let Some(kernel) = &report.kernel {
        prop_assert!(
            !kernel.is_empty() && kernel.trim() == kernel,
            "kernel {kernel:?}"
        );
    }
    for text in &report.unknown {
        prop_assert!(!text.is_empty() && text.trim() == text, "unknown {text:?}");
    }
    Ok(())
}

/// A report of paxtest's own output is keyed by known test names only.
fn check_plain_report(report: &PaxtestReport) -> Result<(), TestCaseError> {
    check_report(report)?;
    for name in report.results.keys() {
        prop_assert!(
            TESTS.iter().any(|(_, known)| known == name),
            "result for {name:?}"
        );
    }
    Ok(())
}

/// A framed report is keyed by test names, or by the one-word names of unknown binaries.
fn check_framed_report(report: &PaxtestReport) -> Result<(), TestCaseError> {
    check_report(report)?;
    for key in report.results.keys() {
        let known = TESTS.iter().any(|(_, name)| name == key);
        let word = !key.is_empty() && !key.contains(char::is_whitespace);
        prop_assert!(
            known || (word && paxtest::name_of(key).is_none()),
            "result for {key:?}"
        );
    }
    Ok(())
}

/// Every block of a known binary gives its test a result, if only [`Verdict::Missing`].
///
/// [`Verdict::Missing`]: vmgate::paxtest::Verdict::Missing
fn check_every_block_read(
    report: &PaxtestReport,
    binaries: &[String],
) -> Result<(), TestCaseError> {
    for name in binaries
        .iter()
        .filter_map(|binary| paxtest::name_of(binary))
    {
        prop_assert!(report.results.contains_key(name), "no result for {name:?}");
    }
    Ok(())
}

// Sysctl records and expectations.

/// A sysctl record before it is written: its state, which asked-for key it names (if
/// any), another key, the rest, and how many of those three fields it has.
type SysctlLine = (String, Option<Index>, String, String, usize);

/// A record of the sysctl script's output, as [`SysctlLine`] describes it.
fn sysctl_line() -> impl Strategy<Value = SysctlLine> {
    let state =
        select(vec!["value", "absent", "error", "", "bogus", "Value"]).prop_map(str::to_string);
    let rest = prop_oneof![
        Just("Permission denied".to_string()),
        Just("cat: x: Operation not permitted".to_string()),
        text(),
    ];
    (
        state,
        option::of(any::<Index>()),
        sysctl_key(),
        rest,
        1usize..=3,
    )
}

/// Writes a record line for `keys`, as [`sysctl_line`] describes it.
fn sysctl_record(keys: &[String], line: &SysctlLine) -> String {
    let (state, pick, other, rest, fields) = line;
    let key = match pick {
        Some(index) if !keys.is_empty() => index.get(keys).clone(),
        _ => other.clone(),
    };
    let all = [state.as_str(), key.as_str(), rest.as_str()];
    all[..*fields].join("\t")
}

/// Every key asked for is in the result, and nothing else; values are trimmed.
fn check_sysctls(keys: &[String], output: &str) -> Result<(), TestCaseError> {
    let found = probe::parse_sysctls(keys, output);
    let asked: BTreeSet<&String> = keys.iter().collect();
    let got: BTreeSet<&String> = found.keys().collect();
    prop_assert_eq!(asked, got);
    for value in found.values() {
        if let SysctlValue::Value { value } = value {
            prop_assert_eq!(value.trim(), value.as_str());
        }
    }
    Ok(())
}

/// An expectation that parses reads back the same from what it displays, and judges
/// any value without a panic.
fn check_expectation(text: &str, seen: &SysctlValue) -> Result<(), TestCaseError> {
    let Ok(expectation) = text.parse::<SysctlExpectation>() else {
        return Ok(());
    };
    let shown = expectation.to_string();
    let reread = shown.parse::<SysctlExpectation>();
    prop_assert_eq!(reread, Ok(expectation.clone()), "{}", shown);
    let _ = expectation.failure("kernel.x", Some(seen));
    let _ = expectation.failure("kernel.x", None);
    Ok(())
}

/// A value as the probe may report it.
fn sysctl_value() -> impl Strategy<Value = SysctlValue> {
    prop_oneof![
        prop_oneof![any::<i64>().prop_map(|n| n.to_string()), text()]
            .prop_map(|value| SysctlValue::Value { value }),
        Just(SysctlValue::Absent),
        text().prop_map(|error| SysctlValue::Error { error }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn scenario_parses_any_text(text in any::<String>()) {
        check_scenario_text(&text)?;
    }

    #[test]
    fn scenario_parses_toml_like_text(text in "[\\[\\]=\"'a-z0-9 \n#.{},_-]{0,200}") {
        check_scenario_text(&text)?;
    }

    #[test]
    fn scenario_parses_generated_files(text in scenario_file()) {
        check_scenario_text(&text)?;
    }

    #[test]
    fn scenario_parses_damaged_files(text in damaged_scenario_file()) {
        check_scenario_text(&text)?;
    }

    #[test]
    fn console_lines_do_not_depend_on_chunking((bytes, cuts) in serial_stream()) {
        let whole = assemble(&[&bytes]);
        check_lines(&bytes, &whole)?;
        prop_assert_eq!(assemble(&chunks(&bytes, &cuts)), whole);
    }

    #[test]
    fn console_takes_any_chunks(chunks in vec(vec(any::<u8>(), 0..64), 0..8)) {
        let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        check_lines(&chunks.concat(), &assemble(&chunks))?;
    }

    #[test]
    fn kernel_log_reads_any_messages(messages in vec(any::<String>(), 0..24)) {
        check_kernel_log(&messages)?;
    }

    #[test]
    fn kernel_log_reads_generated_messages(messages in vec(kernel_message(), 0..32)) {
        check_kernel_log(&messages)?;
    }

    #[test]
    fn paxtest_reads_any_text(text in any::<String>()) {
        check_plain_report(&paxtest::parse_report(&text))?;
        check_framed_report(&paxtest::parse_framed(&text))?;
    }

    #[test]
    fn paxtest_reads_generated_reports(lines in vec(result_line(), 0..40), crlf: bool) {
        check_plain_report(&paxtest::parse_report(&joined(lines, crlf)))?;
    }

    #[test]
    fn paxtest_reads_generated_frames(
        blocks in vec(framed_block(), 0..10),
        noise in vec(result_line(), 0..3),
        crlf: bool,
    ) {
        let (binaries, blocks): (Vec<String>, Vec<String>) = blocks.into_iter().unzip();
        let report = paxtest::parse_framed(&joined([noise, blocks].concat(), crlf));
        check_framed_report(&report)?;
        check_every_block_read(&report, &binaries)?;
    }

    #[test]
    fn sysctls_parse_any_output(keys in vec(sysctl_key(), 0..6), output in any::<String>()) {
        check_sysctls(&keys, &output)?;
    }

    #[test]
    fn sysctls_parse_generated_records(
        keys in vec(sysctl_key(), 0..6),
        lines in vec(sysctl_line(), 0..10),
    ) {
        let records: Vec<String> = lines.iter().map(|line| sysctl_record(&keys, line)).collect();
        check_sysctls(&keys, &records.join("\n"))?;
    }

    #[test]
    fn sysctl_expectations_parse_any_text(text in text(), seen in sysctl_value()) {
        check_expectation(&text, &seen)?;
    }

    #[test]
    fn sysctl_expectations_parse_generated_text(text in expectation(), seen in sysctl_value()) {
        check_expectation(&text, &seen)?;
    }
}
