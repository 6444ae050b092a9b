//! Scenario files: read them, report every problem with its file and line, and expand
//! each scenario's matrix into the cases to boot.
//!
//! A scenario file holds one or more `[[scenario]]` tables:
//!
//! ```toml
//! [[scenario]]
//! name = "pax_sanitize_slab"
//! description = "slab sanitisation at each level"
//! params = ["pax_nouderef"]
//! [scenario.matrix]
//! pax_sanitize_slab = ["off", "fast", "full"]
//! ```
//!
//! Each field of [`Case`] and its parts says what the matching key means and its default.
//! A matrix with several keys expands to their cartesian product, keys taken in sorted
//! order (not file order) with the last key changing fastest.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::accel::Accel;
use crate::event_expect::EventPattern;
use crate::sysctl_write::{SysctlWrite, WriteExpectation};

/// The most cases that all loaded files together may expand to.
const MAX_CASES: usize = 512;

/// The longest kernel command line x86 accepts (`COMMAND_LINE_SIZE`), in bytes.
const MAX_COMMAND_LINE: usize = 2048;

/// The longest boot `timeout` a scenario may ask for, in seconds.
const MAX_TIMEOUT_SECS: u64 = 3600;

/// The keys a `[[scenario]]` table takes, as shown in the unknown-key message.
const SCENARIO_KEYS: &str =
    "`name`, `description`, `params`, `timeout`, `matrix`, `requires`, `expect` and `observe`";

/// The keys a `[scenario.observe]` table takes, as shown in the unknown-key message.
const OBSERVE_KEYS: &str = "`sysctl_writes`, `sysctls`, `commands`, `paxtest` and `probe`";

/// The keys a `[scenario.expect]` table takes, as shown in the unknown-key message.
const EXPECT_KEYS: &str = "`outcome`, `message`, `sysctls`, `events` and `no_events`";

/// The longest value a sysctl write may carry, in bytes: one write(2) of it
/// always reaches the kernel whole.
const MAX_WRITE_VALUE: usize = 1024;

/// The longest dotted sysctl key, in bytes.
const MAX_SYSCTL_KEY: usize = 256;

/// One boot to run: a scenario, or one combination of its matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    /// The scenario's name; for a matrix case, the name and then each matrix value, in
    /// sorted key order, all joined by `-` (for example `pax_sanitize_slab-off`).
    pub name: String,
    /// The `name` of the scenario the case comes from.
    pub scenario: String,
    /// The scenario's `description`: what it checks, for people reading reports.
    pub description: String,
    /// The file the scenario is written in.
    pub file: PathBuf,
    /// The 1-based line of the scenario's `[[scenario]]` header.
    pub line: usize,
    /// Kernel parameters: the scenario's `params` (default none), then one `key=value` per
    /// matrix key, in sorted key order.
    pub params: Vec<String>,
    /// What the guest must be given for the case to run; default nothing.
    pub requires: Requirements,
    /// How the boot should end; default a boot that reaches readiness.
    pub expect: Expectation,
    /// What to read from the guest once it is up; default nothing.
    pub observe: Observe,
    /// The `timeout` for the boot to reach readiness, 1 to 3600 seconds; `None` (the
    /// default) leaves it to the runner. Serialised as whole seconds.
    #[serde(serialize_with = "serialize_secs")]
    pub timeout: Option<Duration>,
}

/// The `[scenario.requires]` table: what the guest must be given for a case to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Requirements {
    /// `cpu`: guest CPU flags the case needs, lowercase as in `/proc/cpuinfo`; default none.
    pub cpu: Vec<String>,
    /// `accel`: the accelerator the case must run under, `"kvm"` or `"tcg"`; default any.
    pub accel: Option<Accel>,
}

/// The `[scenario.expect]` table: how a boot should end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Expectation {
    /// `outcome`: the expected end of the boot; default `booted`.
    pub outcome: ExpectedOutcome,
    /// `message`: text the panic or oops line must contain; only with `panic` or `oops`.
    /// Default `None`, which accepts any such line.
    pub message: Option<String>,
    /// `sysctls`: per key, `"2"`, `">= 1"`, `"<= 0"`, `"absent"`, optionally
    /// followed by `" or absent"`; each key is also read. Default: none.
    pub sysctls: std::collections::BTreeMap<String, crate::sysctl_expect::SysctlExpectation>,
    /// `events`: console events that must occur, `"KIND"` or `"KIND: TEXT"` (see
    /// [`crate::event_expect`]); default none.
    pub events: Vec<EventPattern>,
    /// `no_events`: console events that must not occur, written like `events`; default none.
    pub no_events: Vec<EventPattern>,
}

/// The end a scenario expects its boot to reach, written in kebab case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectedOutcome {
    /// The guest reaches readiness (the default).
    #[default]
    Booted,
    /// The kernel panics.
    Panic,
    /// The kernel logs an oops and carries on.
    Oops,
    /// The guest neither reaches readiness nor reports a failure before the timeout.
    Hang,
    /// The guest boots but SSH never answers.
    SshUnreachable,
}

/// The `[scenario.observe]` table: what to read from a guest once it is up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observe {
    /// `sysctl_writes`: sysctls to write as root before anything is read, in order, each
    /// `{ key = "...", value = "...", expect = "applied" }` where `expect` is `applied`
    /// (the default) or `refused`, optionally followed by `or absent`; default none.
    pub sysctl_writes: Vec<SysctlWrite>,
    /// `sysctls`: dotted sysctl keys to read, such as `kernel.kptr_restrict`; default none.
    pub sysctls: Vec<String>,
    /// `commands`: commands to run in the guest, each an argv; default none.
    pub commands: Vec<Vec<String>>,
    /// `paxtest`: whether to run paxtest's fast tests; default `false`.
    pub paxtest: bool,
    /// `probe`: whether to run vmgate-probe as root and as the unprivileged
    /// user; default `false`.
    pub probe: bool,
    /// The probe checks to run, when `probe` is a list of check names such as
    /// `["ptrace-nonchild"]` instead of `true`; empty runs every check.
    pub probe_checks: Vec<String>,
}

/// One thing wrong with the scenario files, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file the problem is in.
    pub file: PathBuf,
    /// The 1-based line of the problem; 0 when it belongs to no particular line.
    pub line: usize,
    /// What is wrong, on one line.
    pub message: String,
}

/// Why scenarios could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A file could not be read.
    #[error("{}: cannot read the scenarios ({source})", path.display())]
    Read {
        /// The file or directory that could not be read.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// One or more problems; Display lists each on its own line (`file:line: message`).
    #[error("{}", one_per_line(.0))]
    Invalid(Vec<Problem>),
}

/// Reads one file's text into its cases, or every problem found in it.
///
/// Besides each scenario's own checks, scenario and case names must be unique within the
/// file and the file may expand to at most 512 cases. Text without scenarios gives no
/// cases and no problem.
pub fn parse_str(file: &Path, text: &str) -> Result<Vec<Case>, Vec<Problem>> {
    let mut budget = Budget::default();
    finish(vec![parse_file(file, text, &mut budget)])
}

/// Loads the scenarios in `paths`, each a file or a directory whose `*.toml` files are
/// read in name order (not recursively), and returns their cases in file order.
///
/// Problems from all files are reported together, with those that span files: scenario
/// and case names must be unique across files, all files together may expand to at most
/// 512 cases, and at least one scenario must be found. A path that cannot be read,
/// missing ones included, stops the load with [`ScenarioError::Read`].
pub fn load(paths: &[PathBuf]) -> Result<Vec<Case>, ScenarioError> {
    let mut budget = Budget::default();
    let mut parsed = Vec::new();
    for file in scenario_files(paths)? {
        parsed.push(read_file(&file, &mut budget)?);
    }

    if parsed.iter().all(Parsed::is_empty) {
        return Err(ScenarioError::Invalid(vec![nothing_found(paths)]));
    }
    finish(parsed).map_err(ScenarioError::Invalid)
}

/// Keeps the cases whose name contains any of the comma-separated parts of
/// `pattern`. An empty part, or one that matches no case (a typo), is an error.
pub fn filter(cases: Vec<Case>, pattern: &str) -> Result<Vec<Case>, String> {
    let parts: Vec<&str> = pattern.split(',').map(str::trim).collect();
    if parts.iter().any(|part| part.is_empty()) {
        return Err(format!("--filter {pattern:?} has an empty part"));
    }
    let matches = |part: &str| cases.iter().any(|case| case.name.contains(part));
    if let Some(part) = parts.iter().find(|part| !matches(part)) {
        return Err(format!(
            "no case matches --filter {part:?}; `vmgate list` prints the cases"
        ));
    }
    let wanted = |case: &Case| parts.iter().any(|part| case.name.contains(part));
    Ok(cases.into_iter().filter(wanted).collect())
}

impl ExpectedOutcome {
    /// The outcome as written in scenario files.
    fn as_str(self) -> &'static str {
        match self {
            ExpectedOutcome::Booted => "booted",
            ExpectedOutcome::Panic => "panic",
            ExpectedOutcome::Oops => "oops",
            ExpectedOutcome::Hang => "hang",
            ExpectedOutcome::SshUnreachable => "ssh-unreachable",
        }
    }

    /// Whether the outcome leaves a kernel line that `message` can be matched against.
    fn has_message(self) -> bool {
        matches!(self, ExpectedOutcome::Panic | ExpectedOutcome::Oops)
    }
}

impl fmt::Display for ExpectedOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Shows each problem on its own line.
fn one_per_line(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// Writes a timeout as whole seconds, or none.
fn serialize_secs<S: Serializer>(timeout: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    timeout.map(|t| t.as_secs()).serialize(s)
}

/// The files named by `paths`: files as given, directories replaced by their `*.toml`
/// files in name order. A file named twice is read once.
fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(read_error(path))?;
        if meta.is_dir() {
            files.extend(toml_files_in(path)?);
        } else {
            files.push(path.clone());
        }
    }

    let mut seen = HashSet::new();
    files.retain(|file| seen.insert(fs::canonicalize(file).unwrap_or_else(|_| file.clone())));
    Ok(files)
}

/// The `*.toml` files directly inside `dir`, sorted.
fn toml_files_in(dir: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error(dir))? {
        let path = entry.map_err(read_error(dir))?.path();
        if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Makes a [`ScenarioError::Read`] for `path`.
fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ScenarioError + '_ {
    move |source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads and parses one file; text that is not UTF-8 is a problem, not an error.
fn read_file(file: &Path, budget: &mut Budget) -> Result<Parsed, ScenarioError> {
    let bytes = fs::read(file).map_err(read_error(file))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(parse_file(file, text, budget)),
        Err(e) => {
            let mut check = FileCheck::new(file, &bytes);
            check.at_offset(e.valid_up_to(), "the file is not valid UTF-8".to_string());
            Ok(check.into_parsed())
        }
    }
}

/// The problem for a load that found no scenario at all.
fn nothing_found(paths: &[PathBuf]) -> Problem {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    Problem {
        file: paths.first().cloned().unwrap_or_default(),
        line: 0,
        message: format!("no [[scenario]] tables found in {}", names.join(", ")),
    }
}

/// Joins what the files gave and adds the problems that span files.
fn finish(files: Vec<Parsed>) -> Result<Vec<Case>, Vec<Problem>> {
    let mut all = Parsed::default();
    for file in files {
        all.cases.extend(file.cases);
        all.scenarios.extend(file.scenarios);
        all.problems.extend(file.problems);
    }

    duplicate_scenarios(&all.scenarios, &mut all.problems);
    duplicate_cases(&all.cases, &mut all.problems);
    if all.problems.is_empty() {
        Ok(all.cases)
    } else {
        Err(all.problems)
    }
}

/// Reports each scenario whose name an earlier one already took.
fn duplicate_scenarios(scenarios: &[Site], problems: &mut Vec<Problem>) {
    let mut first: HashMap<&str, &Site> = HashMap::new();
    for site in scenarios {
        if let Some(earlier) = first.get(site.name.as_str()) {
            let message = format!(
                "scenario name `{}` is already used at {}:{}",
                site.name,
                earlier.file.display(),
                earlier.line
            );
            problems.push(site.problem(message));
        } else {
            first.insert(&site.name, site);
        }
    }
}

/// Reports each case whose name an earlier case already took. Cases of two scenarios with
/// the same name are left out: the scenario names are reported instead.
fn duplicate_cases(cases: &[Case], problems: &mut Vec<Problem>) {
    let mut first: HashMap<&str, &Case> = HashMap::new();
    for case in cases {
        let Some(earlier) = first.get(case.name.as_str()) else {
            first.insert(&case.name, case);
            continue;
        };
        let same_scenario = (&earlier.file, earlier.line) == (&case.file, case.line);
        if earlier.scenario != case.scenario || same_scenario {
            problems.push(Problem {
                file: case.file.clone(),
                line: case.line,
                message: format!(
                    "case name `{}` is also produced by scenario `{}` at {}:{}",
                    case.name,
                    earlier.scenario,
                    earlier.file.display(),
                    earlier.line
                ),
            });
        }
    }
}

/// Parses and checks one file's text.
fn parse_file(file: &Path, text: &str, budget: &mut Budget) -> Parsed {
    let mut check = FileCheck::new(file, text.as_bytes());
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        check.syntax(errors);
        return check.into_parsed();
    }

    for (header, table) in check.scenario_tables(root.into_inner()) {
        check.scenario(header, table, budget);
    }
    check.into_parsed()
}

/// The 1-based line holding byte `offset` of `bytes`; offsets past the end give the last line.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    let before = bytes.get(..offset).unwrap_or(bytes);
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// `message` with control characters escaped, so that it stays on one line.
fn one_line(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What one or more files gave: cases from problem-free scenarios, every named scenario
/// (for the duplicate check) and the problems.
#[derive(Default)]
struct Parsed {
    cases: Vec<Case>,
    scenarios: Vec<Site>,
    problems: Vec<Problem>,
}

impl Parsed {
    /// Whether nothing at all was found: no scenario and no problem.
    fn is_empty(&self) -> bool {
        self.scenarios.is_empty() && self.problems.is_empty()
    }
}

/// Where a scenario's name is written.
struct Site {
    name: String,
    file: PathBuf,
    line: usize,
}

impl Site {
    /// A problem at the scenario's name.
    fn problem(&self, message: String) -> Problem {
        Problem {
            file: self.file.clone(),
            line: self.line,
            message: one_line(&message),
        }
    }
}

/// How many more cases may be expanded before the cap is reached. Once a scenario goes
/// over, it is reported and no later scenario is expanded or reported for the cap.
struct Budget {
    left: usize,
    exhausted: bool,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            left: MAX_CASES,
            exhausted: false,
        }
    }
}

/// A key's value, read on its own so that a bad value hides no other key.
#[derive(Default)]
enum Field<T> {
    /// The key is not in the table.
    #[default]
    Absent,
    /// The key is there but its value did not read; a problem says why.
    Invalid,
    /// The value as read.
    Given(T),
}

impl<T> Field<T> {
    /// The value, if it was given and read.
    fn given(&self) -> Option<&T> {
        match self {
            Field::Given(value) => Some(value),
            Field::Absent | Field::Invalid => None,
        }
    }

    /// Whether the key is there but its value did not read.
    fn is_invalid(&self) -> bool {
        matches!(self, Field::Invalid)
    }
}

/// A `[[scenario]]` table as written, with the place of each value kept for problems.
#[derive(Default)]
struct RawScenario {
    name: Field<Spanned<String>>,
    description: Field<Spanned<String>>,
    params: Field<Vec<Spanned<String>>>,
    timeout: Field<Spanned<i64>>,
    matrix: Field<RawMatrix>,
    requires: Field<RawRequires>,
    expect: Field<RawExpect>,
    observe: Field<RawObserve>,
}

/// A `[scenario.matrix]` table as written.
#[derive(Default)]
struct RawMatrix {
    /// The keys whose values were read, in sorted order, each with its values.
    keys: BTreeMap<Spanned<String>, Spanned<Vec<Spanned<MatrixValue>>>>,
    /// Whether the values of every key were read; a matrix without them is not expanded.
    complete: bool,
}

/// A `[scenario.requires]` table as written.
#[derive(Default)]
struct RawRequires {
    cpu: Field<Vec<Spanned<String>>>,
    accel: Field<Accel>,
}

/// A `[scenario.expect]` table as written.
#[derive(Default)]
struct RawExpect {
    outcome: Field<ExpectedOutcome>,
    message: Field<Spanned<String>>,
    sysctls: Field<BTreeMap<String, Spanned<String>>>,
    events: Field<Vec<Spanned<String>>>,
    no_events: Field<Vec<Spanned<String>>>,
}

/// A `[scenario.observe]` table as written.
#[derive(Default)]
struct RawObserve {
    sysctl_writes: Field<Vec<Spanned<RawWrite>>>,
    sysctls: Field<Vec<Spanned<String>>>,
    commands: Field<Vec<Spanned<Vec<String>>>>,
    paxtest: Field<bool>,
    probe: Field<Spanned<RawProbe>>,
}

/// `probe` as written: `true`/`false`, or the checks to run.
#[derive(Deserialize)]
#[serde(untagged, expecting = "`true`, `false` or a list of probe check names")]
enum RawProbe {
    Flag(bool),
    Checks(Vec<String>),
}

/// One entry of `sysctl_writes` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWrite {
    key: String,
    value: MatrixValue,
    expect: Option<String>,
}

/// One matrix value: a string, or an integer kept as its decimal text.
struct MatrixValue(String);

impl<'de> Deserialize<'de> for MatrixValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MatrixValueVisitor)
    }
}

/// Accepts the strings and integers a matrix value may be.
struct MatrixValueVisitor;

impl Visitor<'_> for MatrixValueVisitor {
    type Value = MatrixValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<MatrixValue, E> {
        Ok(MatrixValue(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<MatrixValue, E> {
        Ok(MatrixValue(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<MatrixValue, E> {
        Ok(MatrixValue(v.to_string()))
    }
}

/// A key of a TOML table as parsed, with its place.
type Key<'i> = Spanned<Cow<'i, str>>;

/// Checks one file, collecting its problems, named scenarios and cases.
struct FileCheck<'a> {
    file: &'a Path,
    bytes: &'a [u8],
    parsed: Parsed,
}

impl<'a> FileCheck<'a> {
    fn new(file: &'a Path, bytes: &'a [u8]) -> Self {
        FileCheck {
            file,
            bytes,
            parsed: Parsed::default(),
        }
    }

    /// The result, problems in line order.
    fn into_parsed(mut self) -> Parsed {
        self.parsed.problems.sort_by_key(|p| p.line);
        self.parsed
    }

    /// Reports a problem at a 1-based line.
    fn at_line(&mut self, line: usize, message: String) {
        let file = self.file.to_path_buf();
        self.parsed.problems.push(Problem {
            file,
            line,
            message: one_line(&message),
        });
    }

    /// Reports a problem at the line holding byte `offset`.
    fn at_offset(&mut self, offset: usize, message: String) {
        self.at_line(line_of(self.bytes, offset), message);
    }

    /// Reports a problem at the line where `value` starts.
    fn at<T>(&mut self, value: &Spanned<T>, message: String) {
        self.at_offset(value.span().start, message);
    }

    /// Reports TOML syntax errors, the first on each line only: the parser's recovery
    /// tends to add more errors on the line of the first.
    fn syntax(&mut self, errors: Vec<toml::de::Error>) {
        let mut seen = HashSet::new();
        for error in errors {
            let line = error
                .span()
                .map_or(0, |span| line_of(self.bytes, span.start));
            if seen.insert(line) {
                self.at_line(
                    line,
                    format!("invalid TOML: {}", error.message().trim_end()),
                );
            }
        }
    }

    /// Reports a key that `table` does not take; `known` lists those it does.
    fn unknown(&mut self, key: &Key<'_>, table: &str, known: &str) {
        let message = format!(
            "unknown key {:?} in {table}, which takes {known}",
            key.get_ref()
        );
        self.at(key, message);
    }

    /// The `[[scenario]]` tables of a document with their header lines; anything else at
    /// the top level is a problem.
    fn scenario_tables<'i>(&mut self, root: DeTable<'i>) -> Vec<(usize, DeTable<'i>)> {
        let mut tables = Vec::new();
        for (key, value) in root {
            if key.get_ref() == "scenario" {
                self.scenario_array(&key, value, &mut tables);
            } else {
                self.unknown(&key, "a scenario file", "only [[scenario]] tables");
            }
        }
        tables
    }

    /// Adds the tables of the top-level `scenario` array to `tables`.
    fn scenario_array<'i>(
        &mut self,
        key: &Key<'i>,
        value: Spanned<DeValue<'i>>,
        tables: &mut Vec<(usize, DeTable<'i>)>,
    ) {
        let items = match value.into_inner() {
            DeValue::Array(items) => items,
            DeValue::Table(_) => {
                return self.at(key, "write [[scenario]], not [scenario]".to_string());
            }
            _ => return self.at(key, "`scenario` must be [[scenario]] tables".to_string()),
        };
        for item in items {
            let header = line_of(self.bytes, item.span().start);
            match item.into_inner() {
                DeValue::Table(table) => tables.push((header, table)),
                _ => self.at_line(header, "each `scenario` must be a table".to_string()),
            }
        }
    }

    /// Reads, checks and expands one `[[scenario]]` table whose header is on line `header`.
    fn scenario(&mut self, header: usize, table: DeTable<'_>, budget: &mut Budget) {
        let before = self.parsed.problems.len();
        let raw = self.read_scenario(table);
        self.check_scenario(header, &raw);
        let Some(name) = raw.name.given() else {
            return;
        };

        let line = line_of(self.bytes, name.span().start);
        let file = self.file.to_path_buf();
        self.parsed.scenarios.push(Site {
            name: name.get_ref().clone(),
            file,
            line,
        });
        let cases = self.expand(header, &raw, budget);
        if self.parsed.problems.len() == before {
            self.parsed.cases.extend(cases);
        }
    }

    /// Reads each key of a `[[scenario]]` table on its own.
    fn read_scenario(&mut self, table: DeTable<'_>) -> RawScenario {
        let mut raw = RawScenario::default();
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "name" => raw.name = self.field("name", value),
                "description" => raw.description = self.field("description", value),
                "params" => raw.params = self.field("params", value),
                "timeout" => raw.timeout = self.field("timeout", value),
                "matrix" => raw.matrix = self.read_matrix(value),
                "requires" => raw.requires = self.read_requires(value),
                "expect" => raw.expect = self.read_expect(value),
                "observe" => raw.observe = self.read_observe(value),
                _ => self.unknown(&key, "[[scenario]]", SCENARIO_KEYS),
            }
        }
        raw
    }

    /// Reads the values of each matrix key on its own.
    fn read_matrix(&mut self, value: Spanned<DeValue<'_>>) -> Field<RawMatrix> {
        let Some(table) = self.table("matrix", value) else {
            return Field::Invalid;
        };
        let mut matrix = RawMatrix {
            complete: true,
            ..RawMatrix::default()
        };
        for (key, values) in table {
            let label = format!("matrix.{}", key.get_ref());
            let key = Spanned::new(key.span(), key.into_inner().into_owned());
            self.check_matrix_key(&key);
            match self.field(&label, values) {
                Field::Given(values) => {
                    matrix.keys.insert(key, values);
                }
                Field::Absent | Field::Invalid => matrix.complete = false,
            }
        }
        Field::Given(matrix)
    }

    /// Reads each key of a `[scenario.requires]` table on its own.
    fn read_requires(&mut self, value: Spanned<DeValue<'_>>) -> Field<RawRequires> {
        let Some(table) = self.table("requires", value) else {
            return Field::Invalid;
        };
        let mut raw = RawRequires::default();
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "cpu" => raw.cpu = self.field("requires.cpu", value),
                "accel" => raw.accel = self.field("requires.accel", value),
                _ => self.unknown(&key, "[scenario.requires]", "`cpu` and `accel`"),
            }
        }
        Field::Given(raw)
    }

    /// Reads each key of a `[scenario.expect]` table on its own.
    fn read_expect(&mut self, value: Spanned<DeValue<'_>>) -> Field<RawExpect> {
        let Some(table) = self.table("expect", value) else {
            return Field::Invalid;
        };
        let mut raw = RawExpect::default();
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "outcome" => raw.outcome = self.field("expect.outcome", value),
                "message" => raw.message = self.field("expect.message", value),
                "sysctls" => raw.sysctls = self.field("expect.sysctls", value),
                "events" => raw.events = self.field("expect.events", value),
                "no_events" => raw.no_events = self.field("expect.no_events", value),
                _ => self.unknown(&key, "[scenario.expect]", EXPECT_KEYS),
            }
        }
        Field::Given(raw)
    }

    /// Reads each key of a `[scenario.observe]` table on its own.
    fn read_observe(&mut self, value: Spanned<DeValue<'_>>) -> Field<RawObserve> {
        let Some(table) = self.table("observe", value) else {
            return Field::Invalid;
        };
        let mut raw = RawObserve::default();
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "sysctls" => raw.sysctls = self.field("observe.sysctls", value),
                "sysctl_writes" => raw.sysctl_writes = self.field("observe.sysctl_writes", value),
                "commands" => raw.commands = self.field("observe.commands", value),
                "paxtest" => raw.paxtest = self.field("observe.paxtest", value),
                "probe" => raw.probe = self.field("observe.probe", value),
                _ => self.unknown(&key, "[scenario.observe]", OBSERVE_KEYS),
            }
        }
        Field::Given(raw)
    }

    /// The entries of the table `value`, or a problem saying that `key` must be a table.
    fn table<'i>(&mut self, key: &str, value: Spanned<DeValue<'i>>) -> Option<DeTable<'i>> {
        let start = value.span().start;
        match value.into_inner() {
            DeValue::Table(table) => Some(table),
            other => {
                let message = format!("`{key}` must be a table, found {}", other.type_str());
                self.at_offset(start, message);
                None
            }
        }
    }

    /// Reads the value of `key` with serde, reporting why it does not fit. Within one value
    /// serde stops at its first error, so a list with two bad items shows only the first.
    fn field<'i, T: Deserialize<'i>>(
        &mut self,
        key: &str,
        value: Spanned<DeValue<'i>>,
    ) -> Field<T> {
        let fallback = value.span().start;
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(read) => Field::Given(read),
            Err(e) => {
                let offset = e.span().map_or(fallback, |span| span.start);
                self.at_offset(offset, format!("`{key}`: {}", e.message().trim_end()));
                Field::Invalid
            }
        }
    }

    /// Checks every key of a scenario that was read.
    fn check_scenario(&mut self, header: usize, raw: &RawScenario) {
        self.require(header, &raw.name, "name");
        self.require(header, &raw.description, "description");
        if let Some(name) = raw.name.given() {
            self.check_name(name);
        }
        if let Some(description) = raw.description.given() {
            self.check_description(description);
        }
        for param in raw.params.given().into_iter().flatten() {
            self.check_param(param);
        }
        if let Some(timeout) = raw.timeout.given() {
            self.check_timeout(timeout);
        }
        if let Some(matrix) = raw.matrix.given() {
            self.check_matrix(matrix);
        }
        if let Some(requires) = raw.requires.given() {
            self.check_requires(requires);
        }
        if let Some(expect) = raw.expect.given() {
            self.check_expect(expect);
        }
        if let Some(observe) = raw.observe.given() {
            self.check_observe(observe);
        }
    }

    /// Reports a required key that is missing.
    fn require<T>(&mut self, header: usize, field: &Field<T>, key: &str) {
        if matches!(field, Field::Absent) {
            self.at_line(header, format!("missing `{key}`"));
        }
    }

    fn check_name(&mut self, name: &Spanned<String>) {
        if !all_chars(name.get_ref(), is_name_char) {
            let message = format!(
                "name {:?} may use only letters, digits, `_`, `.` and `-`",
                name.get_ref()
            );
            self.at(name, message);
        }
    }

    fn check_description(&mut self, description: &Spanned<String>) {
        if description.get_ref().trim().is_empty() {
            self.at(description, "`description` must not be empty".to_string());
        }
    }

    fn check_param(&mut self, param: &Spanned<String>) {
        if let Some(why) = param_problem(param.get_ref()) {
            self.at(
                param,
                format!("kernel parameter {:?} {why}", param.get_ref()),
            );
        }
    }

    fn check_timeout(&mut self, timeout: &Spanned<i64>) {
        if timeout_of(timeout).is_none() {
            let message = format!(
                "`timeout` is {} seconds; it must be from 1 to {MAX_TIMEOUT_SECS}",
                timeout.get_ref()
            );
            self.at(timeout, message);
        }
    }

    fn check_matrix_key(&mut self, key: &Spanned<String>) {
        if !all_chars(key.get_ref(), is_name_char) {
            let message = format!(
                "matrix key {:?} may use only letters, digits, `_`, `.` and `-`",
                key.get_ref()
            );
            self.at(key, message);
        }
    }

    fn check_matrix(&mut self, matrix: &RawMatrix) {
        for (key, values) in &matrix.keys {
            if values.get_ref().is_empty() {
                self.at(
                    values,
                    format!("matrix key {:?} has no values", key.get_ref()),
                );
            }
            self.check_matrix_values(key.get_ref(), values.get_ref());
        }
    }

    /// Checks the values of one matrix key: their characters, and that none repeats.
    fn check_matrix_values(&mut self, key: &str, values: &[Spanned<MatrixValue>]) {
        let mut seen = HashSet::new();
        for value in values {
            let text = &value.get_ref().0;
            if !all_chars(text, is_value_char) {
                let message = format!(
                    "matrix value {text:?} of {key:?} may use only letters, digits and `_.,:+-`"
                );
                self.at(value, message);
            } else if !seen.insert(text) {
                self.at(
                    value,
                    format!("matrix value {text:?} of {key:?} is listed twice"),
                );
            }
        }
    }

    fn check_requires(&mut self, requires: &RawRequires) {
        for flag in requires.cpu.given().into_iter().flatten() {
            if !all_chars(flag.get_ref(), is_flag_char) {
                let message = format!(
                    "CPU flag {:?} may use only lowercase letters, digits and `_`",
                    flag.get_ref()
                );
                self.at(flag, message);
            }
        }
    }

    fn check_expect(&mut self, expect: &RawExpect) {
        let patterns = [&expect.events, &expect.no_events];
        for pattern in patterns.into_iter().filter_map(Field::given).flatten() {
            if let Err(why) = pattern.get_ref().parse::<EventPattern>() {
                self.at(pattern, why);
            }
        }
        for (key, wanted) in expect.sysctls.given().into_iter().flatten() {
            if !is_sysctl_key(key) {
                self.at(
                    wanted,
                    format!("sysctl key {key:?} is not a dotted sysctl name"),
                );
            }
            if let Err(why) = wanted
                .get_ref()
                .parse::<crate::sysctl_expect::SysctlExpectation>()
            {
                self.at(wanted, format!("`expect.sysctls.{key}`: {why}"));
            }
        }
        let Some(message) = expect.message.given() else {
            return;
        };
        if message.get_ref().is_empty() {
            self.at(message, "`message` must not be empty".to_string());
        }
        if expect.outcome.is_invalid() {
            return;
        }
        let outcome = expect.outcome.given().copied().unwrap_or_default();
        if !outcome.has_message() {
            let text = format!("`message` goes only with outcome panic or oops, not {outcome}");
            self.at(message, text);
        }
    }

    fn check_observe(&mut self, observe: &RawObserve) {
        if let Some(probe) = observe.probe.given() {
            self.check_probe(probe);
        }
        for write in observe.sysctl_writes.given().into_iter().flatten() {
            if let Some(why) = write_problem(write.get_ref()) {
                self.at(write, why);
            }
        }
        for key in observe.sysctls.given().into_iter().flatten() {
            if !is_sysctl_key(key.get_ref()) {
                let message = format!(
                    "sysctl key {:?} must be dot-separated parts of letters, digits, `_` and `-`",
                    key.get_ref()
                );
                self.at(key, message);
            }
        }
        for argv in observe.commands.given().into_iter().flatten() {
            if let Some(why) = command_problem(argv.get_ref()) {
                self.at(argv, why);
            }
        }
    }

    fn check_probe(&mut self, probe: &Spanned<RawProbe>) {
        let RawProbe::Checks(checks) = probe.get_ref() else {
            return;
        };
        let known = crate::guest_probe::CHECKS;
        if checks.is_empty() {
            self.at(
                probe,
                "`probe` lists no checks; write `false` to run none".into(),
            );
        }
        let repeated = checks
            .iter()
            .enumerate()
            .find(|(i, c)| checks[..*i].contains(c));
        if let Some((_, check)) = repeated {
            self.at(probe, format!("`probe` lists {check:?} twice"));
        }
        if let Some(unknown) = checks.iter().find(|c| !known.contains(&c.as_str())) {
            let message = format!(
                "`probe`: unknown check {unknown:?}; the checks are {}",
                known.join(", ")
            );
            self.at(probe, message);
        }
    }

    /// Expands a scenario into its cases, within the budget, and checks the length of each
    /// case's command line. Gives none when the parameters or the matrix did not read.
    fn expand(&mut self, header: usize, raw: &RawScenario, budget: &mut Budget) -> Vec<Case> {
        let matrix_read = match &raw.matrix {
            Field::Absent => true,
            Field::Invalid => false,
            Field::Given(matrix) => matrix.complete,
        };
        if !matrix_read || raw.params.is_invalid() {
            return Vec::new();
        }
        let base = self.base_case(header, raw);
        let matrix = matrix_values(raw.matrix.given());
        if !self.claim(budget, &base.name, case_count(&matrix), header) {
            return Vec::new();
        }

        let combos = combinations(&matrix);
        let cases: Vec<Case> = combos
            .iter()
            .map(|combo| matrix_case(&base, combo))
            .collect();
        for case in &cases {
            self.check_command_line(case);
        }
        cases
    }

    /// The case a scenario gives before its matrix is applied.
    fn base_case(&self, header: usize, raw: &RawScenario) -> Case {
        let name = raw
            .name
            .given()
            .map(|n| n.get_ref().clone())
            .unwrap_or_default();
        let description = raw.description.given().map(|d| d.get_ref().clone());
        Case {
            scenario: name.clone(),
            name,
            description: description.unwrap_or_default(),
            file: self.file.to_path_buf(),
            line: header,
            params: raw.params.given().map(|p| strings(p)).unwrap_or_default(),
            requires: raw
                .requires
                .given()
                .map(RawRequires::build)
                .unwrap_or_default(),
            expect: raw.expect.given().map(RawExpect::build).unwrap_or_default(),
            observe: raw
                .observe
                .given()
                .map(RawObserve::build)
                .unwrap_or_default(),
            timeout: raw.timeout.given().and_then(timeout_of),
        }
    }

    /// Takes `count` cases from the budget for scenario `name`, or reports going over it.
    fn claim(
        &mut self,
        budget: &mut Budget,
        name: &str,
        count: Option<usize>,
        header: usize,
    ) -> bool {
        if budget.exhausted {
            return false;
        }
        match count {
            Some(n) if n <= budget.left => {
                budget.left -= n;
                true
            }
            _ => {
                budget.exhausted = true;
                let used = MAX_CASES.saturating_sub(budget.left);
                self.at_line(header, over_cap(name, count, used));
                false
            }
        }
    }

    fn check_command_line(&mut self, case: &Case) {
        let length = command_line_len(&case.params);
        if length > MAX_COMMAND_LINE {
            let message = format!(
                "case `{}`: the kernel command line is {length} bytes, over x86's limit of \
                 {MAX_COMMAND_LINE}",
                case.name
            );
            self.at_line(case.line, message);
        }
    }
}

impl RawRequires {
    /// The requirements as a case carries them.
    fn build(&self) -> Requirements {
        Requirements {
            cpu: self.cpu.given().map(|cpu| strings(cpu)).unwrap_or_default(),
            accel: self.accel.given().copied(),
        }
    }
}

impl RawExpect {
    /// The expectation as a case carries it.
    fn build(&self) -> Expectation {
        let sysctls = self.sysctls.given().into_iter().flatten();
        Expectation {
            outcome: self.outcome.given().copied().unwrap_or_default(),
            message: self.message.given().map(|m| m.get_ref().clone()),
            sysctls: sysctls
                .filter_map(|(key, text)| Some((key.clone(), text.get_ref().parse().ok()?)))
                .collect(),
            events: patterns(&self.events),
            no_events: patterns(&self.no_events),
        }
    }
}

impl RawObserve {
    /// The observations as a case carries them.
    fn build(&self) -> Observe {
        let commands = self.commands.given().into_iter().flatten();
        let writes = self.sysctl_writes.given().into_iter().flatten();
        Observe {
            sysctl_writes: writes.filter_map(|w| w.get_ref().build()).collect(),
            sysctls: self.sysctls.given().map(|s| strings(s)).unwrap_or_default(),
            commands: commands.map(|argv| argv.get_ref().clone()).collect(),
            paxtest: self.paxtest.given().copied().unwrap_or(false),
            probe: match self.probe.given().map(Spanned::get_ref) {
                Some(RawProbe::Flag(on)) => *on,
                Some(RawProbe::Checks(checks)) => !checks.is_empty(),
                None => false,
            },
            probe_checks: match self.probe.given().map(Spanned::get_ref) {
                Some(RawProbe::Checks(checks)) => checks.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl RawWrite {
    /// The write as a case carries it; `None` if it has a problem.
    fn build(&self) -> Option<SysctlWrite> {
        let expect = match &self.expect {
            Some(text) => text.parse().ok()?,
            None => WriteExpectation::default(),
        };
        write_problem(self).is_none().then(|| SysctlWrite {
            key: self.key.clone(),
            value: self.value.0.clone(),
            expect,
        })
    }
}

/// Why a sysctl write cannot be made, if it cannot.
fn write_problem(write: &RawWrite) -> Option<String> {
    let key = &write.key;
    if !is_sysctl_key(key) {
        return Some(format!("sysctl key {key:?} is not a dotted sysctl name"));
    }
    let value = &write.value.0;
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Some(format!(
            "the value written to {key} contains a control character"
        ));
    }
    if value.len() > MAX_WRITE_VALUE {
        return Some(format!(
            "the value written to {key} is {} bytes, over {MAX_WRITE_VALUE}",
            value.len()
        ));
    }
    let expect = write.expect.as_deref().map(str::parse::<WriteExpectation>);
    expect
        .and_then(Result::err)
        .map(|why| format!("`expect` of {key}: {why}"))
}

/// The event patterns that read, without their places.
fn patterns(field: &Field<Vec<Spanned<String>>>) -> Vec<EventPattern> {
    let written = field.given().into_iter().flatten();
    written.filter_map(|p| p.get_ref().parse().ok()).collect()
}

/// The values without their places.
fn strings(values: &[Spanned<String>]) -> Vec<String> {
    values.iter().map(|v| v.get_ref().clone()).collect()
}

/// A `timeout` in range as a duration.
fn timeout_of(secs: &Spanned<i64>) -> Option<Duration> {
    let secs = u64::try_from(*secs.get_ref()).ok()?;
    (1..=MAX_TIMEOUT_SECS)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
}

/// Whether `text` is non-empty and every character passes `allowed`.
fn all_chars(text: &str, allowed: fn(char) -> bool) -> bool {
    !text.is_empty() && text.chars().all(allowed)
}

/// A character of scenario names and matrix keys.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// A character of matrix values.
fn is_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ',' | ':' | '+' | '-')
}

/// A character of CPU flags.
fn is_flag_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Whether `key` is dot-separated, non-empty parts of letters, digits, `_` and `-`, which
/// rules out `..`, a leading or trailing dot, and `/`, at most [`MAX_SYSCTL_KEY`] bytes.
fn is_sysctl_key(key: &str) -> bool {
    let part_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-');
    key.len() <= MAX_SYSCTL_KEY
        && key
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(part_char))
}

/// Why a kernel parameter cannot go on the command line, if it cannot.
fn param_problem(param: &str) -> Option<&'static str> {
    if param.is_empty() {
        Some("is empty")
    } else if param.chars().any(char::is_control) {
        Some("contains a control character")
    } else if param.chars().any(char::is_whitespace) {
        Some("contains whitespace")
    } else if param.contains('"') {
        Some("contains a double quote")
    } else if param.starts_with('=') {
        Some("has no name before `=`")
    } else if VMGATE_PARAMS
        .iter()
        .any(|own| param.split('=').next() == Some(own))
    {
        Some("is vmgate's own (it adds console=ttyS0 panic=-1 to read the console and end panics)")
    } else {
        None
    }
}

/// Parameters vmgate sets itself: a case that changed them would hide its own boot.
const VMGATE_PARAMS: [&str; 2] = ["console", "panic"];

/// Why a guest command cannot run, if it cannot.
fn command_problem(argv: &[String]) -> Option<String> {
    match argv.first() {
        None => Some("a command needs at least a program name".to_string()),
        Some(program) if program.is_empty() => {
            Some("a command's program name is empty".to_string())
        }
        Some(_) => {
            if let Some(arg) = argv.iter().find(|arg| arg.contains('\0')) {
                return Some(format!("command argument {arg:?} contains a NUL byte"));
            }
            let length = shell_words::join(argv).len();
            let limit = crate::guest_script::MAX_SCRIPT_BYTES;
            (length > limit).then(|| {
                format!("the command is {length} bytes as a shell line; the guest takes {limit}")
            })
        }
    }
}

/// The matrix as keys in sorted order, each with its values as text.
fn matrix_values(matrix: Option<&RawMatrix>) -> Vec<(String, Vec<String>)> {
    let entries = matrix.into_iter().flat_map(|m| &m.keys);
    entries
        .map(|(key, values)| {
            let texts = values
                .get_ref()
                .iter()
                .map(|v| v.get_ref().0.clone())
                .collect();
            (key.get_ref().clone(), texts)
        })
        .collect()
}

/// How many cases a matrix expands to; `None` when the count does not fit in `usize`.
fn case_count(matrix: &[(String, Vec<String>)]) -> Option<usize> {
    matrix
        .iter()
        .try_fold(1usize, |count, (_, values)| count.checked_mul(values.len()))
}

/// Every combination of one value per key: the cartesian product in key order, the last
/// key changing fastest. A matrix without keys has one empty combination.
fn combinations(matrix: &[(String, Vec<String>)]) -> Vec<Vec<(&str, &str)>> {
    let mut combos: Vec<Vec<(&str, &str)>> = vec![Vec::new()];
    for (key, values) in matrix {
        combos = combos
            .iter()
            .flat_map(|combo| {
                values.iter().map(move |value| {
                    let mut longer = combo.clone();
                    longer.push((key.as_str(), value.as_str()));
                    longer
                })
            })
            .collect();
    }
    combos
}

/// The case for one matrix combination: the name gains `-value` and the parameters
/// `key=value`, for each key in order.
fn matrix_case(base: &Case, combo: &[(&str, &str)]) -> Case {
    let mut case = base.clone();
    for (key, value) in combo {
        case.name.push('-');
        case.name.push_str(value);
        case.params.push(format!("{key}={value}"));
    }
    case
}

/// The length in bytes of the parameters joined by single spaces.
fn command_line_len(params: &[String]) -> usize {
    let text: usize = params.iter().map(String::len).sum();
    text + params.len().saturating_sub(1)
}

/// The problem message for a scenario that takes the cases past the cap.
fn over_cap(name: &str, count: Option<usize>, used: usize) -> String {
    match count {
        Some(n) if n <= MAX_CASES => format!(
            "scenario `{name}` adds {n} cases to the {used} before it, over the limit of \
             {MAX_CASES} cases in all"
        ),
        Some(n) => {
            format!("scenario `{name}` expands to {n} cases, over the limit of {MAX_CASES}")
        }
        None => format!(
            "scenario `{name}` expands to too many cases to count, over the limit of {MAX_CASES}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first three lines of a valid scenario; a problem added after them is on line 4.
    const HEAD: &str = "[[scenario]]\nname = \"s\"\ndescription = \"d\"\n";

    fn parse(text: &str) -> Result<Vec<Case>, Vec<Problem>> {
        parse_str(Path::new("s.toml"), text)
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Ok(cases) => panic!("expected problems, got cases {cases:?}"),
            Err(problems) => problems,
        }
    }

    fn names(cases: &[Case]) -> Vec<&str> {
        cases.iter().map(|case| case.name.as_str()).collect()
    }

    #[test]
    fn sysctl_expectations_parse_and_bad_ones_name_their_line() {
        let text = "[[scenario]]\nname = \"s\"\ndescription = \"d\"\n\
                    [scenario.expect.sysctls]\n\
                    \"kernel.kptr_restrict\" = \">= 1\"\n\
                    \"kernel.grsecurity.harden_ptrace\" = \"1 or absent\"\n";
        let cases = parse_str(Path::new("s.toml"), text).unwrap();
        let sysctls = &cases[0].expect.sysctls;
        assert_eq!(sysctls["kernel.kptr_restrict"].to_string(), ">= 1");
        assert!(sysctls["kernel.grsecurity.harden_ptrace"].absent_ok);
        let bad = text.replace("\">= 1\"", "\"> 1\"");
        let problems = parse_str(Path::new("s.toml"), &bad).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 5);
        assert!(problems[0]
            .message
            .contains("expect.sysctls.kernel.kptr_restrict"));
    }

    #[test]
    fn sysctl_writes_keep_their_order_and_expectations() {
        let text = format!(
            "{HEAD}[scenario.observe]\nsysctl_writes = [\n\
             {{ key = \"kernel.yama.ptrace_scope\", value = 3 }},\n\
             {{ key = \"kernel.yama.ptrace_scope\", value = \"1\", expect = \"refused\" }},\n\
             {{ key = \"kernel.grsecurity.grsec_lock\", value = \"1\", \
             expect = \"applied or absent\" }},\n]\n"
        );
        let cases = parse(&text).expect("valid");
        let writes = &cases[0].observe.sysctl_writes;
        let shown: Vec<String> = writes
            .iter()
            .map(|w| format!("{}={} {}", w.key, w.value, w.expect))
            .collect();
        assert_eq!(
            shown,
            [
                "kernel.yama.ptrace_scope=3 applied",
                "kernel.yama.ptrace_scope=1 refused",
                "kernel.grsecurity.grsec_lock=1 applied or absent",
            ]
        );
    }

    #[test]
    fn bad_sysctl_writes_name_their_line() {
        let bad = [
            (
                "{ key = \"../etc\", value = \"1\" }",
                "not a dotted sysctl name",
            ),
            ("{ key = \"a.b\", value = \"1\\n2\" }", "control character"),
            (
                "{ key = \"a.b\", value = \"1\", expect = \"denied\" }",
                "`expect` of a.b",
            ),
            (
                "{ key = \"a.b\", value = \"1\", extra = 1 }",
                "unknown field `extra`",
            ),
            ("{ key = \"a.b\", value = true }", "a string or an integer"),
            ("{ value = \"1\" }", "missing field `key`"),
            (
                &format!("{{ key = \"a.{}\", value = \"1\" }}", "b".repeat(300)),
                "not a dotted",
            ),
            (
                &format!("{{ key = \"a.b\", value = \"{}\" }}", "v".repeat(1025)),
                "over 1024",
            ),
        ];
        for (entry, wanted) in bad {
            let text = format!("{HEAD}[scenario.observe]\nsysctl_writes = [\n{entry},\n]\n");
            let found = problems(&text);
            assert_eq!(found.len(), 1, "{entry}: {found:?}");
            assert!(found[0].message.contains(wanted), "{entry}: {found:?}");
            assert_eq!(found[0].line, 6, "{entry}: {found:?}");
        }
    }

    #[test]
    fn probe_takes_true_or_a_list_of_known_checks_once_each() {
        let with = |value: &str| format!("{HEAD}[scenario.observe]\nprobe = {value}\n");
        let cases = parse(&with("[\"vsyscall\", \"aslr\"]")).expect("valid");
        assert!(cases[0].observe.probe);
        assert_eq!(cases[0].observe.probe_checks, ["vsyscall", "aslr"]);
        let bad = [
            ("[]", "lists no checks"),
            ("[\"nope\"]", "unknown check \"nope\""),
            ("[\"aslr\", \"aslr\"]", "lists \"aslr\" twice"),
            ("\"yes\"", "a list of probe check names"),
        ];
        for (value, wanted) in bad {
            let found = problems(&with(value));
            assert_eq!(found.len(), 1, "{value}: {found:?}");
            assert!(found[0].message.contains(wanted), "{value}: {found:?}");
            assert_eq!(found[0].line, 5, "{value}");
        }
    }

    #[test]
    fn event_patterns_parse_and_unknown_kinds_name_their_line() {
        let text = format!(
            "{HEAD}[scenario.expect]\nevents = [\"pax-mode: UDEREF\"]\n\
             no_events = [\"kernel-fault\", \"console: BUG\"]\n"
        );
        let cases = parse(&text).expect("valid");
        let expect = &cases[0].expect;
        assert_eq!(expect.events[0].to_string(), "pax-mode: UDEREF");
        assert_eq!(expect.no_events.len(), 2);
        let bad = text.replace("pax-mode: UDEREF", "pax: UDEREF");
        let found = problems(&bad);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 5);
        assert!(
            found[0].message.contains("event kind must be one of"),
            "{found:?}"
        );
    }

    #[test]
    fn valid_file_with_every_field() {
        let text = r#"
[[scenario]]
name = "pax_sanitize_slab"
description = "slab sanitisation"
params = ["pax_nouderef"]
timeout = 90
[scenario.requires]
cpu = ["pcid"]
accel = "kvm"
[scenario.expect]
outcome = "panic"
message = "Requested init"
[scenario.observe]
sysctls = ["kernel.kptr_restrict"]
commands = [["uname", "-r"]]
paxtest = true
"#;
        let cases = parse(text).expect("valid");
        let expected = Case {
            name: "pax_sanitize_slab".to_string(),
            scenario: "pax_sanitize_slab".to_string(),
            description: "slab sanitisation".to_string(),
            file: PathBuf::from("s.toml"),
            line: 2,
            params: vec!["pax_nouderef".to_string()],
            requires: Requirements {
                cpu: vec!["pcid".to_string()],
                accel: Some(Accel::Kvm),
            },
            expect: Expectation {
                outcome: ExpectedOutcome::Panic,
                message: Some("Requested init".to_string()),
                sysctls: Default::default(),
                events: Vec::new(),
                no_events: Vec::new(),
            },
            observe: Observe {
                sysctl_writes: Vec::new(),
                sysctls: vec!["kernel.kptr_restrict".to_string()],
                commands: vec![vec!["uname".to_string(), "-r".to_string()]],
                paxtest: true,
                probe: false,
                probe_checks: Vec::new(),
            },
            timeout: Some(Duration::from_secs(90)),
        };
        assert_eq!(cases, vec![expected]);
    }

    #[test]
    fn defaults_when_optional_keys_are_left_out() {
        let cases = parse(HEAD).expect("valid");
        let case = &cases[0];
        assert_eq!(case.params, Vec::<String>::new());
        assert_eq!(case.requires, Requirements::default());
        assert_eq!(case.expect.outcome, ExpectedOutcome::Booted);
        assert_eq!(case.expect.message, None);
        assert_eq!(case.observe, Observe::default());
        assert_eq!(case.timeout, None);
    }

    #[test]
    fn matrix_expands_in_order() {
        let text = format!(
            "{HEAD}params = [\"quiet\"]\n[scenario.matrix]\nslab = [\"off\", \"fast\", \"full\"]\n"
        );
        let cases = parse(&text).expect("valid");
        assert_eq!(names(&cases), ["s-off", "s-fast", "s-full"]);
        assert_eq!(cases[1].params, ["quiet", "slab=fast"]);
        assert!(cases
            .iter()
            .all(|case| case.scenario == "s" && case.line == 1));
    }

    #[test]
    fn matrix_keys_form_a_cartesian_product_in_key_order() {
        let text = format!("{HEAD}[scenario.matrix]\nz = [\"1\", \"2\"]\na = [\"x\", \"y\"]\n");
        let cases = parse(&text).expect("valid");
        assert_eq!(names(&cases), ["s-x-1", "s-x-2", "s-y-1", "s-y-2"]);
        assert_eq!(cases[1].params, ["a=x", "z=2"]);
    }

    #[test]
    fn integer_matrix_values_become_text() {
        let text = format!("{HEAD}[scenario.matrix]\nn = [0, 1, -2, \"3\"]\n");
        let cases = parse(&text).expect("valid");
        assert_eq!(names(&cases), ["s-0", "s-1", "s--2", "s-3"]);
        assert_eq!(cases[2].params, ["n=-2"]);
    }

    /// Asserts that `text` gives exactly one problem containing `needle`, on `line`.
    fn assert_problem(text: &str, line: usize, needle: &str) {
        let found = problems(text);
        let matching: Vec<&Problem> = found
            .iter()
            .filter(|p| p.message.contains(needle))
            .collect();
        assert_eq!(matching.len(), 1, "{text:?} wants {needle:?}: {found:#?}");
        assert_eq!(matching[0].line, line, "{text:?}: {found:#?}");
        assert_eq!(matching[0].file, Path::new("s.toml"));
    }

    #[test]
    fn each_problem_in_a_scenario_is_reported_at_its_line() {
        // Each row is added after HEAD, so it starts on line 4.
        let table: &[(usize, &str, &str)] = &[
            (4, "params = [", "invalid TOML"),
            (4, "parms = []", r#"unknown key "parms""#),
            (4, r#"params = "x""#, "`params`: invalid type"),
            (5, "params = [\"a\",\n\"b\\nc\"]", "control character"),
            (4, r#"params = ["a\u0000"]"#, "control character"),
            (4, r#"params = ["a\tb"]"#, "control character"),
            (4, r#"params = ["a b"]"#, "whitespace"),
            (4, r#"params = ["="]"#, "no name before"),
            (4, r#"params = ["console=tty0"]"#, "vmgate's own"),
            (4, r#"params = ["panic=0"]"#, "vmgate's own"),
            (4, r#"params = ['a"b']"#, "double quote"),
            (4, r#"params = [""]"#, "is empty"),
            (4, "timeout = 0", "`timeout` is 0 seconds"),
            (4, "timeout = 3601", "`timeout` is 3601"),
            (4, r#"timeout = "90""#, "`timeout`: invalid type"),
            (4, "matrix = 1", "`matrix` must be a table, found integer"),
            (4, r#"matrix."a b" = [1]"#, "matrix key"),
            (4, r#"matrix.k = ["a=b"]"#, r#""a=b" of "k" may use only"#),
            (4, "matrix.k = []", "has no values"),
            (4, "matrix.k = [1.5]", "`matrix.k`: invalid type"),
            (4, r#"matrix.k = ["1", 1]"#, "listed twice"),
            (4, r#"requires.cpu = ["PCID"]"#, "CPU flag"),
            (4, r#"requires.accel = "xen""#, "`xen`"),
            (
                4,
                "requires.ram = 1",
                r#"unknown key "ram" in [scenario.requires]"#,
            ),
            (4, r#"expect.outcome = "crash""#, "`crash`"),
            (4, r#"expect.mesage = "x""#, r#"unknown key "mesage""#),
            (
                4,
                r#"expect.message = "x""#,
                "only with outcome panic or oops",
            ),
            (
                5,
                "expect.outcome = \"oops\"\nexpect.message = \"\"",
                "must not be empty",
            ),
            (4, r#"observe.sysctls = ["a..b"]"#, "sysctl key"),
            (4, r#"observe.sysctls = [".a"]"#, "sysctl key"),
            (4, r#"observe.sysctls = ["a/b"]"#, "sysctl key"),
            (4, "observe.commands = [[]]", "program name"),
            (4, r#"observe.commands = [["ls", "\u0000"]]"#, "NUL byte"),
            (
                4,
                r#"observe.commands = ["ls"]"#,
                "`observe.commands`: invalid",
            ),
            (
                4,
                r#"observe.paxtest = "yes""#,
                "`observe.paxtest`: invalid",
            ),
            (4, "observe.color = 1", r#"unknown key "color""#),
            (4, "observe = []", "`observe` must be a table"),
            (6, "\n[scenario.expect]\nhow = 1", r#"unknown key "how""#),
        ];
        for (line, row, needle) in table {
            assert_problem(&format!("{HEAD}{row}\n"), *line, needle);
        }
    }

    #[test]
    fn each_problem_in_a_file_is_reported_at_its_line() {
        let table: &[(usize, &str, &str)] = &[
            (1, "title = 1", r#"unknown key "title""#),
            (1, "[scenario]\nname = \"s\"", "not [scenario]"),
            (1, "scenario = 1", "must be [[scenario]] tables"),
            (1, "scenario = [1]", "must be a table"),
            (1, "[[scenario]]\ndescription = \"d\"", "missing `name`"),
            (2, "\n[[scenario]]\nname = \"s\"", "missing `description`"),
            (
                3,
                "[[scenario]]\ndescription = \"d\"\nname = 1",
                "`name`: invalid type",
            ),
            (
                3,
                "[[scenario]]\ndescription = \"d\"\nname = \"a/b\"",
                r#"name "a/b""#,
            ),
            (
                3,
                "[[scenario]]\nname = \"s\"\ndescription = \" \"",
                "must not be empty",
            ),
            (2, "[[scenario]]\n\"a\\nb\" = 1", r#"unknown key "a\nb""#),
        ];
        for (line, text, needle) in table {
            assert_problem(&format!("{text}\n"), *line, needle);
        }
    }

    #[test]
    fn names_must_be_unique() {
        let twice = format!("{HEAD}{HEAD}");
        assert_problem(&twice, 5, "scenario name `s` is already used at s.toml:2");

        let clash = format!(
            "{HEAD}matrix.k = [\"b\"]\n{}",
            HEAD.replace("\"s\"", "\"s-b\"")
        );
        let needle = "case name `s-b` is also produced by scenario `s` at s.toml:1";
        assert_problem(&clash, 5, needle);
    }

    #[test]
    fn problem_messages_stay_on_one_line() {
        let text = format!("{HEAD}\"a\\nb\" = 1\nparams = [\"x\\ny\"]\n");
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found.iter().all(|p| !p.message.contains('\n')),
            "{found:#?}"
        );
    }

    #[test]
    fn every_problem_in_a_file_is_reported() {
        let text = r#"[[scenario]]
name = "bad name"
description = ""
params = ["a b", "ok", "c\nd"]
timeout = 0
typo = 1

[[scenario]]
description = "second"
[scenario.matrix]
k = []
[scenario.expect]
outcome = "crash"
message = ""

[[scenario]]
name = "third"
description = "observes"
[scenario.matrix]
"k k" = ["a=b", 1.5]
[scenario.observe]
sysctls = ["../etc", "kernel.kptr_restrict"]
commands = [[], ["ls", "a\u0000"]]
paxtest = 1
"#;
        let lines: Vec<usize> = problems(text).iter().map(|p| p.line).collect();
        assert_eq!(
            lines,
            [2, 3, 4, 4, 5, 6, 8, 11, 13, 14, 20, 20, 22, 23, 23, 24]
        );
    }

    #[test]
    fn one_bad_key_hides_no_other_key_of_its_scenario() {
        let text = format!("{HEAD}params = 1\ntimeout = \"x\"\nmatrix = 2\n");
        let lines: Vec<usize> = problems(&text).iter().map(|p| p.line).collect();
        assert_eq!(lines, [4, 5, 6]);
    }

    #[test]
    fn long_command_line_names_the_case() {
        let long: Vec<String> = (0..30)
            .map(|i| format!("\"p{i}={}\"", "x".repeat(70)))
            .collect();
        let text = format!(
            "\n{HEAD}params = [{}]\n[scenario.matrix]\nk = [\"a\", \"b\"]\n",
            long.join(", ")
        );
        let found = problems(&text);
        let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(messages[0].contains("case `s-a`"), "{messages:?}");
        assert!(messages[0].contains("2048"), "{messages:?}");
        assert!(messages[1].contains("case `s-b`"), "{messages:?}");
        assert!(found.iter().all(|p| p.line == 2));
    }

    #[test]
    fn command_line_of_exactly_the_limit_is_accepted() {
        let param = "x".repeat(MAX_COMMAND_LINE - 4);
        let text = format!("{HEAD}params = [\"{param}\", \"abc\"]\n");
        assert!(parse(&text).is_ok());
        let text = format!("{HEAD}params = [\"{param}\", \"abcd\"]\n");
        assert!(parse(&text).is_err());
    }

    /// A scenario whose matrix has `keys` keys of ten values each.
    fn exploding(keys: usize) -> String {
        let values: Vec<String> = (0..10).map(|v| v.to_string()).collect();
        let line = format!("[{}]", values.join(", "));
        let rows: Vec<String> = (0..keys).map(|k| format!("k{k} = {line}")).collect();
        format!("{HEAD}[scenario.matrix]\n{}\n", rows.join("\n"))
    }

    #[test]
    fn matrix_explosion_fails_before_expanding() {
        let found = problems(&exploding(10));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].line, 1);
        assert!(found[0]
            .message
            .contains("scenario `s` expands to 10000000000 cases"));
        assert!(found[0].message.contains("limit of 512"));

        let found = problems(&exploding(40));
        assert!(
            found[0].message.contains("too many cases to count"),
            "{found:#?}"
        );
    }

    #[test]
    fn cap_counts_cases_of_every_scenario() {
        let values: Vec<String> = (0..200).map(|v| v.to_string()).collect();
        let matrix = format!("[scenario.matrix]\nk = [{}]\n", values.join(", "));
        let text: String = ["a", "b", "c", "d"]
            .iter()
            .map(|name| format!("[[scenario]]\nname = \"{name}\"\ndescription = \"d\"\n{matrix}"))
            .collect();
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].line, 11);
        assert!(found[0]
            .message
            .contains("scenario `c` adds 200 cases to the 400 before it"));
    }

    #[test]
    fn filter_keeps_cases_whose_name_contains_the_pattern() {
        let text = format!("{HEAD}[scenario.matrix]\nk = [\"off\", \"fast\", \"full\"]\n");
        let cases = parse(&text).expect("valid");
        let kept = |pattern: &str| filter(cases.clone(), pattern).map(|c| names(&c).join(" "));
        assert_eq!(kept("f").unwrap(), "s-off s-fast s-full");
        assert_eq!(kept("-f").unwrap(), "s-fast s-full");
        assert_eq!(kept("ast, -off").unwrap(), "s-off s-fast");
        assert!(kept("nothing").unwrap_err().contains("\"nothing\""));
        assert!(kept("-fast,typo").unwrap_err().contains("\"typo\""));
        for empty in ["", ",", "s-off,"] {
            assert!(kept(empty).unwrap_err().contains("empty part"), "{empty:?}");
        }
    }

    #[test]
    fn displays() {
        let problem = Problem {
            file: "a.toml".into(),
            line: 3,
            message: "bad".into(),
        };
        assert_eq!(problem.to_string(), "a.toml:3: bad");
        let error = ScenarioError::Invalid(vec![problem.clone(), problem]);
        assert_eq!(error.to_string(), "a.toml:3: bad\na.toml:3: bad");
        assert_eq!(
            ExpectedOutcome::SshUnreachable.to_string(),
            "ssh-unreachable"
        );
        let text = format!("{HEAD}[scenario.expect]\noutcome = \"ssh-unreachable\"\n");
        let cases = parse(&text).expect("valid");
        assert_eq!(cases[0].expect.outcome, ExpectedOutcome::SshUnreachable);
    }

    #[test]
    fn timeout_serialises_as_seconds() {
        let cases = parse(&format!("{HEAD}timeout = 90\n")).expect("valid");
        let text = toml::to_string(&cases[0]).expect("serialises");
        assert!(text.contains("timeout = 90"), "{text}");
    }

    /// Writes `files` (name, text) into a new directory.
    fn directory(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    fn scenario(name: &str) -> String {
        format!("[[scenario]]\nname = \"{name}\"\ndescription = \"d\"\n")
    }

    #[test]
    fn load_reads_directories_in_name_order() {
        let (b, a) = (scenario("b"), scenario("a"));
        let dir = directory(&[("2.toml", &a), ("1.toml", &b), ("notes.txt", "x")]);
        let cases = load(&[dir.path().to_path_buf()]).expect("valid");
        assert_eq!(names(&cases), ["b", "a"]);
        assert_eq!(cases[0].file, dir.path().join("1.toml"));
    }

    #[test]
    fn load_reads_a_file_named_twice_once() {
        let text = scenario("a");
        let dir = directory(&[("a.toml", &text)]);
        let cases = load(&[dir.path().to_path_buf(), dir.path().join("a.toml")]).expect("ok");
        assert_eq!(names(&cases), ["a"]);
    }

    #[test]
    fn load_reports_duplicates_across_files() {
        let (first, second) = (scenario("x"), format!("\n{}", scenario("x")));
        let dir = directory(&[("a.toml", &first), ("b.toml", &second)]);
        let Err(ScenarioError::Invalid(found)) = load(&[dir.path().to_path_buf()]) else {
            panic!("expected problems");
        };
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].file, dir.path().join("b.toml"));
        assert_eq!(found[0].line, 3);
        let first_place = format!("{}:2", dir.path().join("a.toml").display());
        assert!(found[0].message.contains(&first_place), "{found:#?}");
    }

    #[test]
    fn load_collects_problems_from_every_file() {
        let bad = format!("{}timeout = 0\n", scenario("a"));
        let dir = directory(&[
            ("a.toml", &bad),
            ("b.toml", "[[scenario]]\n"),
            ("c.toml", "a = "),
        ]);
        let Err(ScenarioError::Invalid(found)) = load(&[dir.path().to_path_buf()]) else {
            panic!("expected problems");
        };
        let places: Vec<(PathBuf, usize)> =
            found.iter().map(|p| (p.file.clone(), p.line)).collect();
        let at = |name: &str, line| (dir.path().join(name), line);
        assert_eq!(
            places,
            [
                at("a.toml", 4),
                at("b.toml", 1),
                at("b.toml", 1),
                at("c.toml", 1)
            ]
        );
    }

    #[test]
    fn load_reports_text_that_is_not_utf8() {
        let dir = directory(&[]);
        let file = dir.path().join("a.toml");
        fs::write(&file, b"[[scenario]]\nname = \"\xff\"\n").expect("write");
        let Err(ScenarioError::Invalid(found)) = load(&[file]) else {
            panic!("expected problems");
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 2);
        assert!(found[0].message.contains("UTF-8"));
    }

    #[test]
    fn load_of_a_missing_path_is_a_read_error() {
        let dir = directory(&[]);
        let missing = dir.path().join("missing.toml");
        match load(std::slice::from_ref(&missing)) {
            Err(ScenarioError::Read { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn load_without_scenarios_is_a_problem() {
        let dir = directory(&[("empty.toml", "# nothing yet\n")]);
        let Err(ScenarioError::Invalid(found)) = load(&[dir.path().to_path_buf()]) else {
            panic!("expected problems");
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 0);
        assert!(found[0].message.contains("no [[scenario]] tables found"));
        assert!(matches!(load(&[]), Err(ScenarioError::Invalid(_))));
    }

    /// A small xorshift generator, so the garbage is the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// One of the `|`-separated `choices`.
    fn pick<'a>(rng: &mut Rng, choices: &'a str) -> &'a str {
        let all: Vec<&str> = choices.split('|').collect();
        all[rng.below(all.len())]
    }

    /// Lines that look like a scenario file, with keys and values drawn at random.
    fn scenario_like(rng: &mut Rng) -> Vec<u8> {
        const HEADERS: &str = "[[scenario]]|[scenario.matrix]|[scenario.expect]|\
            [scenario.observe]|[scenario.requires]|[scenario]|[[scenario.matrix]]";
        const KEYS: &str = "name|description|params|timeout|matrix|requires|expect|k|\
            outcome|message|cpu|accel|sysctls|commands|paxtest|probe|\"a b\"";
        const VALUES: &str = concat!(
            r#""s"|"a b"|""|1|-5|0|1.5|true|[]|["a", 2]|[["ls"]]|[[]]|{}|["\u0000"]|"#,
            r#""panic"|"kvm"|3601|1979-05-27|[1, 2, 3]|["x=y"]|{ a = 1 }|"a..b""#,
        );
        let mut text = String::new();
        for _ in 0..rng.below(12) {
            if rng.below(3) == 0 {
                text.push_str(pick(rng, HEADERS));
            } else {
                let (key, value) = (pick(rng, KEYS), pick(rng, VALUES));
                text.push_str(&format!("{key} = {value}"));
            }
            text.push('\n');
        }
        text.into_bytes()
    }

    /// Random bytes mixed with pieces of TOML.
    fn garbage(rng: &mut Rng) -> Vec<u8> {
        const PIECES: &str = "[[scenario]]\n|name = \"s\"\n|[scenario.matrix]\n|k = [|1, |\
            \"a\", |]\n|\\u0000|-99999999999999999999|{|}|=|'|\"\"\"|#|\n|\r\n|é|\u{0}";
        let mut bytes = Vec::new();
        for _ in 0..rng.below(40) {
            if rng.below(3) == 0 {
                bytes.push(rng.next() as u8);
            } else {
                bytes.extend_from_slice(pick(rng, PIECES).as_bytes());
            }
        }
        bytes
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let bytes = if rng.below(2) == 0 {
                scenario_like(&mut rng)
            } else {
                garbage(&mut rng)
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let lines = text.lines().count() + 1;
            if let Err(found) = parse(&text) {
                assert!(
                    found.iter().all(|p| p.line <= lines),
                    "{text:?}: {found:#?}"
                );
            }
        }
    }
}
