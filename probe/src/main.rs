//! vmgate-probe: the guest side of vmgate. It runs exploit-mitigation checks inside the
//! VM, each in a forked child so that a check the kernel kills cannot take the probe
//! down, and prints one JSON record per check, in a fixed order.
//!
//! Exit status: 0 when the checks ran, whatever they found; 1 when output could not be
//! written (or, in the hidden `--aslr-sample` mode, no sample could be taken); 2 for a
//! wrong command line.
//!
//! Built for the guest with
//! `RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target
//! x86_64-unknown-linux-gnu`, which links a static-pie binary: it needs no libraries in
//! the guest, and its own code is randomised like any PIE's, so `aslr` can measure it.

#![deny(missing_docs)]

mod checks;
mod cli;
mod entropy;
mod isolate;
mod names;
mod record;
mod sys;

use std::io::Write;

use checks::Context;
use cli::{Command, RunOpts};

/// The checks ran; their results are in the records.
const EXIT_OK: i32 = 0;

/// Writing to stdout failed, or the hidden sample mode could not take its sample.
const EXIT_OUTPUT: i32 = 1;

/// The command line was wrong.
const EXIT_USAGE: i32 = 2;

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let known = checks::names(true);
    match cli::parse(std::env::args_os().skip(1), &known) {
        Ok(Command::Run(opts)) => run_checks(&opts),
        Ok(Command::AslrSample) => print_sample(),
        Ok(Command::Help) => print_line(cli::usage(&checks::names(false)).trim_end()),
        Err(error) => {
            eprintln!(
                "vmgate-probe: {error}\n\n{}",
                cli::usage(&checks::names(false))
            );
            EXIT_USAGE
        }
    }
}

fn run_checks(opts: &RunOpts) -> i32 {
    // A parent that ignores SIGCHLD would make children vanish before they are waited for.
    sys::default_signal(libc::SIGCHLD);

    for check in checks::select(opts.only.as_deref()) {
        let ctx = Context {
            name: check.name,
            samples: opts.samples,
        };
        let status = print_line(&isolate::run(check, &ctx));
        if status != EXIT_OK {
            return status;
        }
    }
    EXIT_OK
}

fn print_sample() -> i32 {
    match checks::sample_line() {
        Ok(line) => print_line(&line),
        Err(error) => {
            eprintln!("vmgate-probe: {error}");
            EXIT_OUTPUT
        }
    }
}

/// Writes one line to stdout and flushes it, so that nothing is left buffered for a
/// forked child to inherit.
fn print_line(line: &str) -> i32 {
    let mut stdout = std::io::stdout();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Ok(()) => EXIT_OK,
        Err(_) => EXIT_OUTPUT,
    }
}
