//! Command-line parsing: turns the argument list into a `Command`, reporting every
//! mistake as a `UsageError` rather than panicking.

use std::ffi::OsString;
use std::fmt;

/// ASLR samples taken when `--samples` is not given.
pub const DEFAULT_SAMPLES: u32 = 64;

/// Fewest ASLR samples accepted: a single sample cannot show any variation.
pub const MIN_SAMPLES: u32 = 2;

/// Most ASLR samples accepted.
pub const MAX_SAMPLES: u32 = 4096;

/// What the probe was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run checks and print one JSON record per check.
    Run(RunOpts),
    /// Print one sample of addresses for a parent probe's `aslr` check (hidden).
    AslrSample,
    /// Print the usage text.
    Help,
}

/// Options of a normal run.
#[derive(Debug, PartialEq, Eq)]
pub struct RunOpts {
    /// Processes the `aslr` check samples; default 64, from 2 to 4096.
    pub samples: u32,
    /// The checks named by `--only`, in the order given; `None` runs every listed check.
    pub only: Option<Vec<String>>,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            samples: DEFAULT_SAMPLES,
            only: None,
        }
    }
}

/// A command line the probe cannot act on, with the reason.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The usage text, listing the checks a user may name.
pub fn usage(checks: &[&str]) -> String {
    format!(
        "usage: vmgate-probe [--samples N] [--only CHECK[,CHECK...]]\n\
         \n\
         Runs exploit-mitigation checks, each in a child process of its own, and prints\n\
         one JSON object per line, in a fixed order.\n\
         \n\
         options:\n  \
           --samples N   processes the aslr check samples, {MIN_SAMPLES} to {MAX_SAMPLES} \
         (default {DEFAULT_SAMPLES})\n  \
           --only LIST   run only these comma-separated checks\n  \
           -h, --help    print this text\n\
         \n\
         checks: {}\n\
         \n\
         exit status: 0 the checks ran (whatever they found), 1 output could not be\n\
         written, 2 the command line was wrong\n",
        checks.join(" ")
    )
}

/// Parses the arguments after the program name; `known` lists every check `--only` may
/// name.
pub fn parse<I>(args: I, known: &[&str]) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let mut opts = RunOpts::default();
    let mut seen = Seen::default();
    while let Some(arg) = args.next() {
        let arg = utf8(arg)?;
        let (flag, inline) = split_value(&arg);
        match flag {
            "-h" | "--help" if inline.is_none() => return Ok(Command::Help),
            "--aslr-sample" if inline.is_none() => once(flag, &mut seen.sample)?,
            "--samples" => {
                once(flag, &mut seen.samples)?;
                opts.samples = parse_samples(&value(flag, inline, &mut args)?)?;
            }
            "--only" => {
                once(flag, &mut seen.only)?;
                opts.only = Some(parse_only(&value(flag, inline, &mut args)?, known)?);
            }
            _ => return Err(UsageError(format!("unknown argument `{arg}`"))),
        }
    }
    seen.into_command(opts)
}

/// Which flags the command line has given so far.
#[derive(Default)]
struct Seen {
    sample: bool,
    samples: bool,
    only: bool,
}

impl Seen {
    fn into_command(self, opts: RunOpts) -> Result<Command, UsageError> {
        match (self.sample, self.samples || self.only) {
            (true, true) => Err(UsageError(
                "`--aslr-sample` takes no other flag".to_string(),
            )),
            (true, false) => Ok(Command::AslrSample),
            (false, _) => Ok(Command::Run(opts)),
        }
    }
}

/// Marks a flag as given, refusing it the second time.
fn once(flag: &str, given: &mut bool) -> Result<(), UsageError> {
    if std::mem::replace(given, true) {
        return Err(UsageError(format!("`{flag}` given twice")));
    }
    Ok(())
}

fn utf8(arg: OsString) -> Result<String, UsageError> {
    arg.into_string()
        .map_err(|raw| UsageError(format!("argument {raw:?} is not UTF-8")))
}

/// Splits `--flag=value` into the flag and its inline value.
fn split_value(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
        _ => (arg, None),
    }
}

/// A flag's value: the inline one, else the next argument.
fn value<I>(flag: &str, inline: Option<&str>, rest: &mut I) -> Result<String, UsageError>
where
    I: Iterator<Item = OsString>,
{
    match inline {
        Some(value) => Ok(value.to_string()),
        None => match rest.next() {
            Some(next) => utf8(next),
            None => Err(UsageError(format!("`{flag}` needs a value"))),
        },
    }
}

fn parse_samples(text: &str) -> Result<u32, UsageError> {
    let range = MIN_SAMPLES..=MAX_SAMPLES;
    match text.parse::<u32>() {
        Ok(samples) if range.contains(&samples) => Ok(samples),
        _ => Err(UsageError(format!(
            "`--samples` takes a whole number from {MIN_SAMPLES} to {MAX_SAMPLES}, not `{text}`"
        ))),
    }
}

fn parse_only(text: &str, known: &[&str]) -> Result<Vec<String>, UsageError> {
    let names: Vec<String> = text.split(',').map(str::to_string).collect();
    for name in &names {
        if name.is_empty() {
            return Err(UsageError(format!(
                "`--only {text}` has an empty check name"
            )));
        }
        if !known.contains(&name.as_str()) {
            return Err(UsageError(format!("unknown check `{name}`")));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["exec-anon", "aslr", "identity"];

    fn run(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from), KNOWN)
    }

    fn opts(samples: u32, only: Option<&[&str]>) -> Command {
        let only = only.map(|names| names.iter().map(|name| name.to_string()).collect());
        Command::Run(RunOpts { samples, only })
    }

    #[test]
    fn accepted_command_lines() {
        let cases: &[(&[&str], Command)] = &[
            (&[], opts(64, None)),
            (&["--samples", "8"], opts(8, None)),
            (&["--samples=4096"], opts(4096, None)),
            (&["--only", "aslr"], opts(64, Some(&["aslr"]))),
            (
                &["--only=identity,aslr"],
                opts(64, Some(&["identity", "aslr"])),
            ),
            (
                &["--only", "aslr", "--samples", "2"],
                opts(2, Some(&["aslr"])),
            ),
            (&["--aslr-sample"], Command::AslrSample),
            (&["--help"], Command::Help),
            (&["--samples", "8", "-h"], Command::Help),
        ];
        for (args, expected) in cases {
            assert_eq!(run(args).as_ref(), Ok(expected), "{args:?}");
        }
    }

    #[test]
    fn refused_command_lines() {
        let cases: &[&[&str]] = &[
            &["--bogus"],
            &["extra"],
            &["--samples"],
            &["--samples", "1"],
            &["--samples", "4097"],
            &["--samples", "-3"],
            &["--samples", "lots"],
            &["--samples="],
            &["--samples", "99999999999999999999"],
            &["--samples", "8", "--samples", "9"],
            &["--only"],
            &["--only", ""],
            &["--only", "aslr,"],
            &["--only", "nope"],
            &["--only", "aslr", "--only", "identity"],
            &["--aslr-sample", "--samples", "8"],
            &["--aslr-sample", "--aslr-sample"],
            &["--aslr-sample=1"],
            &["--help=yes"],
        ];
        for args in cases {
            assert!(run(args).is_err(), "{args:?} should be refused");
        }
    }

    #[test]
    fn non_utf8_arguments_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'-', 0xff]);
        assert!(parse([bad], KNOWN).is_err());
    }

    #[test]
    fn usage_lists_the_checks() {
        let text = usage(KNOWN);
        assert!(text.contains("exec-anon aslr identity"));
    }
}
