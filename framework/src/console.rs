//! Reads the guest's serial console: clean text lines out of raw bytes, the kernel and
//! vmgate events recognised in those lines, and a summary of the boot they describe.
//!
//! The raw bytes are not kept here; whoever owns the serial log writes them verbatim
//! beside the clean lines this module produces.

use serde::Serialize;

/// The longest line, in bytes, kept before it is emitted in pieces.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// How many oops lines a [`ConsoleSummary`] keeps; later ones are dropped.
pub const MAX_OOPSES: usize = 32;

/// How many distinct unknown parameters a [`ConsoleSummary`] keeps.
pub const MAX_UNKNOWN_PARAMS: usize = 256;

/// Where the escape-sequence parser is between two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Escape {
    /// Plain text.
    #[default]
    Ground,
    /// After ESC.
    Esc,
    /// After ESC and one or more intermediate bytes, as in `ESC ( B`.
    EscIntermediate,
    /// Inside a control sequence, `ESC [` up to its final byte.
    Csi,
    /// Inside an OSC, DCS, SOS, PM or APC string, up to BEL or `ESC \`.
    Str,
}

/// What to do with one byte once the parser has seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// The byte is line text.
    Keep,
    /// The byte belongs to a control or escape sequence.
    Drop,
    /// The byte ends the line.
    EndLine,
}

/// Turns raw serial bytes, in arbitrary chunks, into clean text lines.
///
/// A line ends at `\n`. Carriage returns, other control characters except tab, and
/// ANSI/VT escape sequences are removed; the parser keeps its state between chunks, so a
/// sequence or a UTF-8 character split across two reads is handled like an unsplit one.
/// Invalid UTF-8 becomes U+FFFD. A newline always ends the line and any unfinished escape
/// sequence, so a stray ESC or unterminated OSC never swallows more than one line. Empty
/// lines are kept as empty strings.
#[derive(Debug, Clone, Default)]
pub struct LineAssembler {
    state: Escape,
    line: Vec<u8>,
}

impl LineAssembler {
    /// An assembler at the start of a stream.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk and returns the lines it completed, in order.
    ///
    /// A line longer than [`MAX_LINE_BYTES`] is returned in pieces made of at most that
    /// many clean input bytes, each cut on a character boundary.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &byte in chunk {
            let (state, action) = step(self.state, byte);
            self.state = state;
            match action {
                Action::Keep => {
                    if self.line.len() >= MAX_LINE_BYTES {
                        lines.push(self.take_piece());
                    }
                    self.line.push(byte);
                }
                Action::EndLine => lines.push(decode(&std::mem::take(&mut self.line))),
                Action::Drop => {}
            }
        }
        lines
    }

    /// Ends the stream: returns the unterminated last line if it is not empty, and
    /// leaves the assembler ready for a new stream.
    pub fn finish(&mut self) -> Option<String> {
        self.state = Escape::Ground;
        let line = decode(&std::mem::take(&mut self.line));
        (!line.is_empty()).then_some(line)
    }

    /// Takes the buffered bytes as one piece of an overlong line, keeping back a
    /// character whose last bytes have not arrived yet.
    fn take_piece(&mut self) -> String {
        let cut = self.line.len().saturating_sub(incomplete_tail(&self.line));
        let tail = self.line.split_off(cut);
        decode(&std::mem::replace(&mut self.line, tail))
    }
}

/// Advances the escape-sequence parser by one byte.
fn step(state: Escape, byte: u8) -> (Escape, Action) {
    match byte {
        b'\n' => (Escape::Ground, Action::EndLine),
        0x1b => (Escape::Esc, Action::Drop),
        // CAN and SUB cancel any sequence in progress.
        0x18 | 0x1a => (Escape::Ground, Action::Drop),
        _ => match state {
            Escape::Ground => (Escape::Ground, ground(byte)),
            Escape::Esc => after_esc(byte),
            Escape::EscIntermediate => in_sequence(state, byte, 0x30..=0x7e),
            Escape::Csi => in_sequence(state, byte, 0x40..=0x7e),
            Escape::Str if byte == 0x07 => (Escape::Ground, Action::Drop),
            Escape::Str => (Escape::Str, Action::Drop),
        },
    }
}

/// Whether a text byte is kept: tab and everything but C0 controls and DEL.
fn ground(byte: u8) -> Action {
    if byte == b'\t' || (byte >= 0x20 && byte != 0x7f) {
        Action::Keep
    } else {
        Action::Drop
    }
}

/// The byte right after ESC picks the kind of sequence.
fn after_esc(byte: u8) -> (Escape, Action) {
    match byte {
        b'[' => (Escape::Csi, Action::Drop),
        b']' | b'P' | b'X' | b'^' | b'_' => (Escape::Str, Action::Drop),
        0x20..=0x2f => (Escape::EscIntermediate, Action::Drop),
        0x30..=0x7e => (Escape::Ground, Action::Drop),
        _ => in_sequence(Escape::Esc, byte, 0x30..=0x7e),
    }
}

/// Inside a sequence: `finals` end it, other printable ASCII continues it, controls are
/// ignored, and a non-ASCII byte aborts it and is kept as text.
fn in_sequence(state: Escape, byte: u8, finals: std::ops::RangeInclusive<u8>) -> (Escape, Action) {
    if finals.contains(&byte) {
        (Escape::Ground, Action::Drop)
    } else if byte >= 0x80 {
        (Escape::Ground, Action::Keep)
    } else {
        (state, Action::Drop)
    }
}

/// How many bytes at the end of `bytes` begin a UTF-8 character that is not complete.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for (back, &byte) in bytes.iter().rev().take(3).enumerate() {
        if byte & 0xc0 != 0x80 {
            let have = back + 1;
            let need = match byte {
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => 1,
            };
            return if need > have { have } else { 0 };
        }
    }
    0
}

/// Decodes a line lossily and drops the control characters UTF-8 can carry (C1).
fn decode(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|&c| c == '\t' || !c.is_control())
        .collect()
}

/// The clean lines of a whole serial log.
#[must_use]
pub fn clean_lines(serial: &[u8]) -> Vec<String> {
    let mut assembler = LineAssembler::new();
    let mut lines = assembler.push(serial);
    lines.extend(assembler.finish());
    lines
}

/// Something the kernel or vmgate's guest side printed on the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum ConsoleEvent {
    /// The kernel's `Linux version` banner; a new one means the kernel started (again).
    Banner {
        /// The release token, as in `6.1.0-57-cloud-amd64`.
        version: String,
    },
    /// The kernel's `Command line:` or `Kernel command line:` line: the text after the colon.
    CommandLine(String),
    /// Parameters the kernel did not recognise and passes on to user space.
    UnknownParams(Vec<String>),
    /// `Kernel panic - not syncing: ...`: the message from `Kernel panic` on.
    Panic(String),
    /// An oops, BUG, kernel WARNING or general protection fault: the whole message.
    Oops(String),
    /// `Run /init as init process`: the path of init.
    InitStarted(String),
    /// vmgate's guest side is up: the line `vmgate: ready`.
    Ready,
    /// vmgate's guest side announced its SSH host key: `ssh-ed25519 AAAA...`.
    HostKey(String),
    /// A `PaX` message: the text after `PAX: `, unparsed.
    Pax(String),
    /// A grsecurity message: the text after `grsec: `, unparsed.
    Grsec(String),
}

/// The message of a console line without kernel prefixes.
///
/// Strips, in any order and combination, a syslog level `<4>`, a printk timestamp
/// `[    0.412000]` and a printk caller field `[    T1]` or `[    C0]`, with the spaces
/// after them. Other lines are returned unchanged.
#[must_use]
pub fn message(line: &str) -> &str {
    let mut rest = line;
    while let Some(next) = strip_kernel_prefix(rest) {
        rest = next.trim_start_matches(' ');
    }
    rest
}

/// Strips one syslog level, timestamp or caller field from the front of `s`.
fn strip_kernel_prefix(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix('<') {
        let (level, after) = rest.split_once('>')?;
        return all_digits(level).then_some(after);
    }
    let (inside, after) = s.strip_prefix('[')?.split_once(']')?;
    let inside = inside.trim_start_matches(' ');
    (is_timestamp(inside) || is_caller(inside)).then_some(after)
}

/// Whether `s` is a printk time, seconds and fraction, as in `0.412000`.
fn is_timestamp(s: &str) -> bool {
    s.split_once('.')
        .is_some_and(|(secs, frac)| all_digits(secs) && all_digits(frac))
}

/// Whether `s` is a printk caller, a task `T1` or a CPU `C0`.
fn is_caller(s: &str) -> bool {
    s.strip_prefix(['T', 'C']).is_some_and(all_digits)
}

/// Whether `s` is one or more ASCII digits.
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Recognises a console line, looking only at its [`message`].
///
/// Every pattern is anchored at the start of the message, so `BUG:` inside other text
/// and the `---[ end Kernel panic ...` trailer after a panic are not events. A message
/// starting with `WARNING: ` counts as an oops when it is the kernel's `WARNING: CPU:`
/// form or when the line carried a kernel prefix; an unprefixed `WARNING: ` line is
/// taken for user space.
pub fn classify(line: &str) -> Option<ConsoleEvent> {
    const MATCHERS: [fn(&str) -> Option<ConsoleEvent>; 8] = [
        vmgate_line,
        banner,
        command_line,
        unknown_params,
        panic,
        init_started,
        pax,
        grsec,
    ];
    let msg = message(line);
    MATCHERS
        .iter()
        .find_map(|matcher| matcher(msg))
        .or_else(|| oops(msg, msg.len() < line.len()))
}

/// vmgate's own lines: `vmgate: ready` and `vmgate: host-key <key>`.
fn vmgate_line(msg: &str) -> Option<ConsoleEvent> {
    if msg.trim_end() == "vmgate: ready" {
        return Some(ConsoleEvent::Ready);
    }
    let key = msg.strip_prefix("vmgate: host-key ")?.trim();
    (!key.is_empty()).then(|| ConsoleEvent::HostKey(key.to_owned()))
}

/// `Linux version <release> (...) ...`.
fn banner(msg: &str) -> Option<ConsoleEvent> {
    let version = msg
        .strip_prefix("Linux version ")?
        .split_whitespace()
        .next()?;
    Some(ConsoleEvent::Banner {
        version: version.to_owned(),
    })
}

/// `Command line: ...` (x86, early) or `Kernel command line: ...`.
fn command_line(msg: &str) -> Option<ConsoleEvent> {
    let rest = msg
        .strip_prefix("Command line:")
        .or_else(|| msg.strip_prefix("Kernel command line:"))?;
    Some(ConsoleEvent::CommandLine(rest.trim().to_owned()))
}

/// `Unknown kernel command line parameters "a b=c", will be passed to user space.`
fn unknown_params(msg: &str) -> Option<ConsoleEvent> {
    let rest = msg.strip_prefix("Unknown kernel command line parameters ")?;
    let quoted = rest.strip_prefix('"').unwrap_or(rest);
    // A line cut short has no closing quote; keep what arrived.
    let list = quoted.rsplit_once('"').map_or(quoted, |(list, _)| list);
    let params = list.split_whitespace().map(str::to_owned).collect();
    Some(ConsoleEvent::UnknownParams(params))
}

/// `Kernel panic - not syncing: ...`.
fn panic(msg: &str) -> Option<ConsoleEvent> {
    msg.starts_with("Kernel panic - not syncing")
        .then(|| ConsoleEvent::Panic(msg.trim_end().to_owned()))
}

/// `Run /init as init process`.
fn init_started(msg: &str) -> Option<ConsoleEvent> {
    let rest = msg.strip_prefix("Run ")?.trim_end();
    let path = rest.strip_suffix(" as init process")?.trim();
    (!path.is_empty()).then(|| ConsoleEvent::InitStarted(path.to_owned()))
}

/// `PAX: ...`, including the `From <ip>: ` variant, kept raw.
fn pax(msg: &str) -> Option<ConsoleEvent> {
    let rest = msg.strip_prefix("PAX: ")?;
    Some(ConsoleEvent::Pax(rest.trim_end().to_owned()))
}

/// `grsec: ...`, kept raw.
fn grsec(msg: &str) -> Option<ConsoleEvent> {
    let rest = msg.strip_prefix("grsec: ")?;
    Some(ConsoleEvent::Grsec(rest.trim_end().to_owned()))
}

/// Oops, BUG and WARNING reports; `from_kernel` says whether the line had a printk prefix.
fn oops(msg: &str, from_kernel: bool) -> Option<ConsoleEvent> {
    const PREFIXES: [&str; 6] = [
        "BUG: ",
        "Oops: ",
        "kernel BUG at ",
        "general protection fault",
        "Internal error: Oops",
        "WARNING: CPU: ",
    ];
    let known = PREFIXES.iter().any(|prefix| msg.starts_with(prefix));
    let warning = from_kernel && msg.starts_with("WARNING: ");
    (known || warning).then(|| ConsoleEvent::Oops(msg.trim_end().to_owned()))
}

/// What a console has shown so far, updated line by line.
///
/// Single values keep the first one seen, so a reboot does not overwrite what the
/// first boot showed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleSummary {
    /// How many `Linux version` banners were seen; more than one means the kernel restarted.
    pub banners: usize,
    /// The release from the first banner.
    pub release: Option<String>,
    /// The first kernel command line printed.
    pub command_line: Option<String>,
    /// Unknown kernel parameters, without repeats, at most [`MAX_UNKNOWN_PARAMS`].
    pub unknown_params: Vec<String>,
    /// The first panic line.
    pub panic: Option<String>,
    /// Oops, BUG and WARNING lines in order, at most [`MAX_OOPSES`].
    pub oopses: Vec<String>,
    /// Whether the kernel started init.
    pub init_started: bool,
    /// Whether vmgate's guest side said it is ready.
    pub ready: bool,
    /// The first SSH host key vmgate's guest side announced.
    pub host_key: Option<String>,
    /// Whether a banner came after init started: the machine rebooted on its own.
    pub rebooted: bool,
}

impl ConsoleSummary {
    /// Classifies one clean line, folds it into the summary and returns its event.
    pub fn observe(&mut self, line: &str) -> Option<ConsoleEvent> {
        let event = classify(line)?;
        self.fold(&event);
        Some(event)
    }

    /// Updates the summary with one event.
    fn fold(&mut self, event: &ConsoleEvent) {
        match event {
            ConsoleEvent::Banner { version } => self.banner(version),
            ConsoleEvent::CommandLine(text) => keep_first(&mut self.command_line, text),
            ConsoleEvent::UnknownParams(params) => self.unknown(params),
            ConsoleEvent::Panic(text) => keep_first(&mut self.panic, text),
            ConsoleEvent::Oops(text) if self.oopses.len() < MAX_OOPSES => {
                self.oopses.push(text.clone());
            }
            ConsoleEvent::InitStarted(_) => self.init_started = true,
            ConsoleEvent::Ready => self.ready = true,
            ConsoleEvent::HostKey(key) => keep_first(&mut self.host_key, key),
            ConsoleEvent::Oops(_) | ConsoleEvent::Pax(_) | ConsoleEvent::Grsec(_) => {}
        }
    }

    /// Counts a banner; one after init started is a reboot.
    fn banner(&mut self, version: &str) {
        self.banners = self.banners.saturating_add(1);
        self.rebooted |= self.init_started;
        keep_first(&mut self.release, version);
    }

    /// Adds parameters not seen yet, up to the cap.
    fn unknown(&mut self, params: &[String]) {
        for param in params {
            if self.unknown_params.len() >= MAX_UNKNOWN_PARAMS {
                return;
            }
            if !self.unknown_params.contains(param) {
                self.unknown_params.push(param.clone());
            }
        }
    }
}

/// Sets `slot` to `value` unless it already holds one.
fn keep_first(slot: &mut Option<String>, value: &str) {
    if slot.is_none() {
        *slot = Some(value.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real Debian 6.1 banner line.
    const DEBIAN_BANNER: &str = "[    0.000000] Linux version 6.1.0-57-cloud-amd64 \
        (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld \
        (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-10)";

    /// The panic line of a kernel whose init does not exist, and its end marker.
    const PANIC: &str = "[    1.234567] Kernel panic - not syncing: Requested init /nonexistent \
        failed (error -2).";
    const PANIC_END: &str = "[    1.234999] ---[ end Kernel panic - not syncing: Requested init \
        /nonexistent failed (error -2). ]---";

    /// K7: a screen clear split anywhere, doubled carriage returns, a caller field.
    const K7_STREAM: &[u8] = b"\x1b[?7l\x1b[2J[    0.000000] Linux version 6.1.0-57-cloud-amd64 \
        (debian-kernel@lists.debian.org)\r\r\n[    0.412000][    T1] Run /init as init \
        process\r\r\nvmgate: ready\r\n";

    /// Feeds `chunks` to a fresh assembler and returns every line, the last one included.
    fn assemble(chunks: &[&[u8]]) -> Vec<String> {
        let mut assembler = LineAssembler::new();
        let mut lines: Vec<String> = chunks.iter().flat_map(|c| assembler.push(c)).collect();
        lines.extend(assembler.finish());
        lines
    }

    /// Feeds `bytes` one at a time.
    fn assemble_bytewise(bytes: &[u8]) -> Vec<String> {
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        assemble(&chunks)
    }

    fn owned(lines: &[&str]) -> Vec<String> {
        lines.iter().copied().map(String::from).collect()
    }

    #[test]
    fn message_strips_kernel_prefixes() {
        let cases = [
            (
                "[    0.412000] Run /init as init process",
                "Run /init as init process",
            ),
            (
                "[    0.412000][    T1] Run /init as init process",
                "Run /init as init process",
            ),
            ("[    5.000100][    C0] rcu: stall", "rcu: stall"),
            ("<4>[    2.000000] WARNING: x", "WARNING: x"),
            ("[    2.000000] <4>WARNING: x", "WARNING: x"),
            ("<4>[  2.000000][ T123] x", "x"),
            ("[    T1] printk.time=0", "printk.time=0"),
            ("<6>plain", "plain"),
            ("[0.5] no padding", "no padding"),
            ("[    2.1] BUG: short fraction", "BUG: short fraction"),
            ("vmgate: ready", "vmgate: ready"),
            ("[ 1.2.3] not a time", "[ 1.2.3] not a time"),
            ("[    12] no fraction", "[    12] no fraction"),
            ("[    T] no task", "[    T] no task"),
            ("[    X1] other", "[    X1] other"),
            ("<x>not a level", "<x>not a level"),
            ("<>empty level", "<>empty level"),
            ("[    0.412000 unclosed", "[    0.412000 unclosed"),
            ("  indented", "  indented"),
            ("[    1.000000] ", ""),
            ("", ""),
        ];
        for (line, want) in cases {
            assert_eq!(message(line), want, "line {line:?}");
        }
    }

    fn check_classify(cases: &[(&str, Option<ConsoleEvent>)]) {
        for (line, want) in cases {
            assert_eq!(classify(line).as_ref(), want.as_ref(), "line {line:?}");
        }
    }

    #[test]
    fn classify_recognises_kernel_lines() {
        use ConsoleEvent::*;
        let cases = [
            (
                DEBIAN_BANNER,
                Some(Banner {
                    version: "6.1.0-57-cloud-amd64".into(),
                }),
            ),
            (
                "[    0.000000] Command line: console=ttyS0 pax_nouderef",
                Some(CommandLine("console=ttyS0 pax_nouderef".into())),
            ),
            (
                "[    0.041000] Kernel command line: BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ",
                Some(CommandLine(
                    "BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1".into(),
                )),
            ),
            (
                "[    0.000000] Command line:",
                Some(CommandLine(String::new())),
            ),
            (
                "[    0.123456] Unknown kernel command line parameters \"pax_nouderef\", will be \
                 passed to user space.",
                Some(UnknownParams(vec!["pax_nouderef".into()])),
            ),
            (
                "Unknown kernel command line parameters \"pax_nouderef pax_sanitize_slab=full\", \
                 will be passed to user space.",
                Some(UnknownParams(vec![
                    "pax_nouderef".into(),
                    "pax_sanitize_slab=full".into(),
                ])),
            ),
            (
                "Unknown kernel command line parameters \"cut short",
                Some(UnknownParams(vec!["cut".into(), "short".into()])),
            ),
            (PANIC, Some(Panic(message(PANIC).into()))),
            (PANIC_END, None),
            (
                "[    2.000000] WARNING: CPU: 0 PID: 1 at mm/slub.c:123 foo+0x1/0x2",
                Some(Oops(
                    "WARNING: CPU: 0 PID: 1 at mm/slub.c:123 foo+0x1/0x2".into(),
                )),
            ),
            (
                "[    2.1] BUG: kernel NULL pointer dereference, address: 0000000000000000",
                Some(Oops(
                    "BUG: kernel NULL pointer dereference, address: 0000000000000000".into(),
                )),
            ),
            (
                "[    3.000000] Oops: 0002 [#1] PREEMPT SMP NOPTI",
                Some(Oops("Oops: 0002 [#1] PREEMPT SMP NOPTI".into())),
            ),
            (
                "[    3.000000] general protection fault, probably for non-canonical address \
                 0xdead000000000100: 0000 [#1] SMP",
                Some(Oops(
                    "general protection fault, probably for non-canonical address \
                     0xdead000000000100: 0000 [#1] SMP"
                        .into(),
                )),
            ),
            (
                "[    3.000000] kernel BUG at mm/slub.c:321!",
                Some(Oops("kernel BUG at mm/slub.c:321!".into())),
            ),
            (
                "[    4.000000] WARNING: possible circular locking dependency detected",
                Some(Oops(
                    "WARNING: possible circular locking dependency detected".into(),
                )),
            ),
            (
                "[    0.412000][    T1] Run /init as init process",
                Some(InitStarted("/init".into())),
            ),
            (
                "Run /sbin/init as init process  ",
                Some(InitStarted("/sbin/init".into())),
            ),
        ];
        check_classify(&cases);
    }

    #[test]
    fn classify_recognises_vmgate_lines() {
        use ConsoleEvent::*;
        let cases = [
            ("vmgate: ready", Some(Ready)),
            ("<6>[    9.000000] vmgate: ready ", Some(Ready)),
            (
                "vmgate: host-key ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI ",
                Some(HostKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI".into())),
            ),
            ("vmgate: host-key   ", None),
            ("vmgate: ready now", None),
            ("vmgate: readying", None),
        ];
        check_classify(&cases);
    }

    #[test]
    fn classify_ignores_lookalikes() {
        let cases = [
            ("DEBUG: BUG: not at the start", None),
            ("[    1.000000] DEBUG: not a bug", None),
            ("[    1.000000] foo BUG: bar", None),
            ("BUGS: none", None),
            ("WARNING: from a user-space script", None),
            ("Run  as init process", None),
            ("Linux version ", None),
            ("Starting kernel ...", None),
            ("", None),
        ];
        check_classify(&cases);
    }

    #[test]
    fn classify_keeps_k1_pax_and_grsec_lines_raw() {
        let cases = [
            (
                "PAX: execution attempt in: <anonymous mapping>, 3054df44000-3054e047000 \
                 3054df44000",
                ConsoleEvent::Pax(
                    "execution attempt in: <anonymous mapping>, 3054df44000-3054e047000 \
                     3054df44000"
                        .into(),
                ),
            ),
            (
                "[   12.000000] PAX: terminating task: /usr/bin/player(player):7933, uid/euid: \
                 1000/1000, PC: 000003054e044000, SP: 0000030534126388",
                ConsoleEvent::Pax(
                    "terminating task: /usr/bin/player(player):7933, uid/euid: 1000/1000, PC: \
                     000003054e044000, SP: 0000030534126388"
                        .into(),
                ),
            ),
            (
                "PAX: bytes at PC: 55 48 89 e5 48 83 ec 10",
                ConsoleEvent::Pax("bytes at PC: 55 48 89 e5 48 83 ec 10".into()),
            ),
            (
                "PAX: From 10.1.2.3: execution attempt in: <anonymous mapping>, 1000-2000 1000",
                ConsoleEvent::Pax(
                    "From 10.1.2.3: execution attempt in: <anonymous mapping>, 1000-2000 1000"
                        .into(),
                ),
            ),
            (
                "PAX: execution attempt in: (null), 1000-2000 1000",
                ConsoleEvent::Pax("execution attempt in: (null), 1000-2000 1000".into()),
            ),
            (
                "[   13.000000] grsec: denied RWX mmap of <anonymous mapping> by \
                 /usr/bin/x[x:120] uid/euid:1000/1000",
                ConsoleEvent::Grsec(
                    "denied RWX mmap of <anonymous mapping> by /usr/bin/x[x:120] \
                     uid/euid:1000/1000"
                        .into(),
                ),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(classify(line), Some(want), "line {line:?}");
        }
    }

    #[test]
    fn panic_end_marker_is_not_a_second_panic() {
        let mut summary = ConsoleSummary::default();
        let events: Vec<_> = [PANIC, PANIC_END]
            .iter()
            .filter_map(|line| summary.observe(line))
            .collect();
        assert_eq!(events, vec![ConsoleEvent::Panic(message(PANIC).into())]);
        assert_eq!(summary.panic.as_deref(), Some(message(PANIC)));
    }

    #[test]
    fn k7_stream_gives_the_same_lines_split_at_any_two_points() {
        let want = owned(&[
            "[    0.000000] Linux version 6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org)",
            "[    0.412000][    T1] Run /init as init process",
            "vmgate: ready",
        ]);
        for first in 0..=K7_STREAM.len() {
            for second in first..=K7_STREAM.len() {
                let (head, rest) = K7_STREAM.split_at(first);
                let (middle, tail) = rest.split_at(second - first);
                assert_eq!(
                    assemble(&[head, middle, tail]),
                    want,
                    "split {first}/{second}"
                );
            }
        }
        let events: Vec<_> = want.iter().filter_map(|l| classify(l)).collect();
        assert_eq!(
            events,
            vec![
                ConsoleEvent::Banner {
                    version: "6.1.0-57-cloud-amd64".into()
                },
                ConsoleEvent::InitStarted("/init".into()),
                ConsoleEvent::Ready,
            ]
        );
    }

    #[test]
    fn line_ends_and_carriage_returns() {
        let cases: [(&[u8], &[&str]); 6] = [
            (b"a\r\r\nb\r\nc\n", &["a", "b", "c"]),
            (b"a\rb\n", &["ab"]),
            (b"\r\n\n", &["", ""]),
            (b"no end", &["no end"]),
            (b"end\n\r\r", &["end"]),
            (b"", &[]),
        ];
        for (bytes, want) in cases {
            assert_eq!(assemble(&[bytes]), owned(want), "bytes {bytes:?}");
            assert_eq!(assemble_bytewise(bytes), owned(want), "bytes {bytes:?}");
        }
    }

    #[test]
    fn escape_sequences_and_controls_are_removed() {
        let cases: [(&[u8], &[&str]); 16] = [
            (b"\x1b[0;32mOK\x1b[0m done\n", &["OK done"]),
            (b"\x1b[?7l\x1b[2J\x1b[H\x1b[?25hx\n", &["x"]),
            (b"\x1b]0;title\x07x\n", &["x"]),
            (b"\x1b]8;;http://a/\x1b\\link\x1b]8;;\x1b\\\n", &["link"]),
            (b"\x1bPq#0;2;0\x1b\\y\n", &["y"]),
            (b"\x1b7a\x1b8\x1bcb\n", &["ab"]),
            (b"\x1b(Bz\x1b#8\n", &["z"]),
            (b"\x1b]0;never ends\nnext\n", &["", "next"]),
            (b"a\x1b\nb\n", &["a", "b"]),
            (b"a\x1b[12\nb\n", &["a", "b"]),
            (b"\x1b[12\x18x\n", &["x"]),
            (b"\x1b\x1b[1mx\n", &["x"]),
            (b"\x1b[1\xc3\xa9\n", &["\u{e9}"]),
            (b"a\x00b\x07c\x7fd\te\x08\n", &["abcd\te"]),
            (b"a\xc2\x9bb\xc2\x85c\n", &["abc"]),
            (b"\x1b[1;31", &[]),
        ];
        for (bytes, want) in cases {
            assert_eq!(assemble(&[bytes]), owned(want), "bytes {bytes:?}");
            assert_eq!(assemble_bytewise(bytes), owned(want), "bytes {bytes:?}");
        }
    }

    #[test]
    fn utf8_split_across_chunks_decodes() {
        let text = "h\u{e9}llo \u{20ac} \u{1d11e} w\u{f6}rld\n";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let (head, tail) = bytes.split_at(split);
            assert_eq!(
                assemble(&[head, tail]),
                owned(&[text.trim_end()]),
                "split {split}"
            );
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(assemble(&[b"a\xffb\xc3\n"]), owned(&["a\u{fffd}b\u{fffd}"]));
        assert_eq!(assemble(&[b"ab\xe2", b"\x82"]), owned(&["ab\u{fffd}"]));
        assert_eq!(assemble(&[b"\xe2\x82", b"\n"]), owned(&["\u{fffd}"]));
    }

    #[test]
    fn finish_returns_only_a_non_empty_last_line_and_resets() {
        let mut assembler = LineAssembler::new();
        assert_eq!(assembler.push(b"done\n\x1b[0m"), owned(&["done"]));
        assert_eq!(assembler.finish(), None);
        assembler.push(b"\x1b]0;unterminated");
        assert_eq!(assembler.finish(), None);
        assert_eq!(assembler.push(b"fresh\n"), owned(&["fresh"]));
        assembler.push(b"tail");
        assert_eq!(assembler.finish().as_deref(), Some("tail"));
        assert_eq!(assembler.finish(), None);
    }

    /// Feeds `text` without a newline in 4 KiB chunks and checks the pieces.
    fn check_overlong_line(text: &str) {
        let mut assembler = LineAssembler::new();
        let mut pieces = Vec::new();
        for chunk in text.as_bytes().chunks(4096) {
            pieces.extend(assembler.push(chunk));
            assert!(assembler.line.len() <= MAX_LINE_BYTES);
        }
        pieces.extend(assembler.finish());
        assert!(pieces.len() >= 3, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.len() <= MAX_LINE_BYTES));
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn overlong_line_is_emitted_in_bounded_pieces() {
        check_overlong_line(&"a".repeat(200 * 1024));
        // 65536 is not a multiple of 3, so the cut falls inside a character.
        check_overlong_line(&"\u{20ac}".repeat(200 * 1024 / 3));
    }

    #[test]
    fn line_of_exactly_the_limit_is_one_line() {
        let mut bytes = vec![b'x'; MAX_LINE_BYTES];
        bytes.push(b'\n');
        let lines = assemble(&[&bytes]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines.first().map(String::len), Some(MAX_LINE_BYTES));
    }

    #[test]
    fn summary_of_a_boot_that_reboots_after_ready() {
        let boot = format!(
            "{DEBIAN_BANNER}\r\n\
             [    0.000000] Command line: console=ttyS0 pax_nouderef\r\n\
             [    0.040000] Kernel command line: console=ttyS0 pax_nouderef\r\n\
             [    0.123456] Unknown kernel command line parameters \"pax_nouderef\", will be \
             passed to user space.\r\n\
             [    0.412000][    T1] Run /init as init process\r\n\
             vmgate: host-key ssh-ed25519 AAAAfirst\r\n\
             vmgate: ready\r\n"
        );
        let mut summary = ConsoleSummary::default();
        for line in assemble(&[boot.as_bytes()]) {
            summary.observe(&line);
        }
        let first = summary.clone();
        assert_eq!(
            first,
            ConsoleSummary {
                banners: 1,
                release: Some("6.1.0-57-cloud-amd64".into()),
                command_line: Some("console=ttyS0 pax_nouderef".into()),
                unknown_params: vec!["pax_nouderef".into()],
                init_started: true,
                ready: true,
                host_key: Some("ssh-ed25519 AAAAfirst".into()),
                ..ConsoleSummary::default()
            }
        );

        let again = boot.replace("AAAAfirst", "AAAAsecond");
        for line in assemble(&[again.as_bytes()]) {
            summary.observe(&line);
        }
        assert_eq!(summary.banners, 2);
        assert!(summary.rebooted);
        assert_eq!(summary.unknown_params, first.unknown_params);
        assert_eq!(summary.host_key, first.host_key);
    }

    #[test]
    fn summary_banner_before_init_is_not_a_reboot() {
        let mut summary = ConsoleSummary::default();
        summary.observe(DEBIAN_BANNER);
        summary.observe(DEBIAN_BANNER);
        assert_eq!(summary.banners, 2);
        assert!(!summary.rebooted);
    }

    #[test]
    fn summary_keeps_at_most_the_first_oopses() {
        let mut summary = ConsoleSummary::default();
        for n in 0..MAX_OOPSES + 8 {
            let event = summary.observe(&format!("[    2.000000] BUG: number {n}"));
            assert!(matches!(event, Some(ConsoleEvent::Oops(_))));
        }
        assert_eq!(summary.oopses.len(), MAX_OOPSES);
        assert_eq!(
            summary.oopses.first().map(String::as_str),
            Some("BUG: number 0")
        );
    }

    #[test]
    fn summary_caps_unknown_params() {
        let mut summary = ConsoleSummary::default();
        let params: Vec<String> = (0..MAX_UNKNOWN_PARAMS + 10)
            .map(|n| format!("p{n}"))
            .collect();
        let line = format!(
            "Unknown kernel command line parameters \"{}\", will be passed to user space.",
            params.join(" ")
        );
        summary.observe(&line);
        summary.observe(&line);
        assert_eq!(summary.unknown_params.len(), MAX_UNKNOWN_PARAMS);
    }
}
