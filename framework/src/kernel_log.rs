//! Reads structured events out of kernel log messages: `PaX` kills, `PaX` mode lines, size
//! overflow reports, grsecurity denials, and kernel faults with their taint flags.
//!
//! Input is one message per call with printk prefixes already stripped, as
//! `console::message` returns it. Events that span several messages are assembled here,
//! each waiting at most [`PENDING_WINDOW`] further messages for its last part.
//!
//! The `PAX: bytes at PC:` dump after a kill is not kept, so the instruction bytes are only
//! in the raw log. grsecurity messages other than denials (audit lines such as `exec of`)
//! give no event.

use serde::Serialize;

/// How many further messages a kill or fault waits for the message that completes it.
pub const PENDING_WINDOW: usize = 10;

/// Beginnings of the message that opens a kernel fault report.
const FAULT_HEADLINES: [&str; 7] = [
    "BUG: ",
    "Oops: ",
    "WARNING: CPU:",
    "WARNING: at ",
    "general protection fault",
    "kernel BUG at",
    "Internal error: Oops",
];

/// Something the kernel reported, read from one or more log messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KernelEvent {
    /// `PaX` killed a user task (K1): `PAX: execution attempt in:` and the
    /// `PAX: terminating task:` message after it.
    ///
    /// A half that never met the other is still reported: without its execution attempt
    /// the kill has an empty `mapping` and no range; without its terminating task it has
    /// an empty `task` and `comm` and `pid` 0.
    PaxKill {
        /// The mapping executed from, verbatim: a path, `<anonymous mapping>` or `(null)`.
        mapping: String,
        /// Where the mapping starts.
        start: Option<u64>,
        /// Where the mapping ends.
        end: Option<u64>,
        /// The address execution was attempted at.
        address: Option<u64>,
        /// The killed task's executable, as in `/usr/bin/player`.
        task: String,
        /// The killed task's command name, as in `player`.
        comm: String,
        /// The killed task's pid.
        pid: u32,
        /// The killed task's real uid.
        uid: Option<u32>,
        /// The killed task's effective uid.
        euid: Option<u32>,
        /// The remote address of a `From 10.1.2.3: ` prefix, if the kernel printed one.
        source: Option<String>,
    },
    /// Any other `PaX` message, such as `PAX: UDEREF disabled`.
    PaxMode {
        /// `uderef`, `sanitize-slab`, `size-overflow` or `other`, from keywords in `text`.
        feature: String,
        /// The message after `PAX: `.
        text: String,
    },
    /// `PAX: size overflow detected in function <function> <file>:<line> ...`.
    SizeOverflow {
        /// The function the overflow was detected in; empty if the message names none.
        function: String,
        /// The word after the function, normally `file:line`.
        location: Option<String>,
        /// The message after `PAX: `.
        text: String,
    },
    /// A grsecurity denial, as in `grsec: denied RWX mmap of ... by /usr/bin/x[x:120] ...`.
    GrsecDenial {
        /// What was denied: the text between `denied ` and ` by `, or before ` denied `
        /// in messages such as `use of CAP_SYS_ADMIN denied for ...`.
        action: String,
        /// The denied task's executable, as in `/usr/bin/x`.
        task: Option<String>,
        /// The denied task's command name.
        comm: Option<String>,
        /// The denied task's pid.
        pid: Option<u32>,
        /// The denied task's real uid.
        uid: Option<u32>,
        /// The denied task's effective uid.
        euid: Option<u32>,
        /// The message after `grsec: `.
        text: String,
    },
    /// An oops, BUG, WARNING or general protection fault.
    KernelFault {
        /// The message that opened the report.
        headline: String,
        /// The taint flags of the `CPU: ... Tainted: G W ...` message that followed, with
        /// runs of spaces made one; empty for `Not tainted`; `None` if no such message came
        /// within [`PENDING_WINDOW`] messages.
        taint: Option<String>,
    },
}

/// Folds kernel log messages into [`KernelEvent`]s.
///
/// A kill is reported when its `terminating task` message arrives, a fault when its
/// `CPU:` taint message arrives. A kill or fault still waiting after [`PENDING_WINDOW`]
/// further messages, an execution attempt followed by another one, and whatever is waiting
/// at [`KernelLog::finish`] are reported incomplete, as [`KernelEvent`] describes. One taint
/// message completes every fault waiting for it, so a `BUG:` and the `Oops:` after it
/// both get its flags. Events come out as they complete, so a fault still waiting for its
/// taint message comes out after a kill that began later.
#[derive(Debug, Default)]
pub struct KernelLog {
    pending: Vec<Pending>,
}

impl KernelLog {
    /// A log at the start of a boot.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one message and returns the events it completed, in order.
    pub fn push(&mut self, message: &str) -> Vec<KernelEvent> {
        let message = Message::parse(message.trim_end());
        let mut events = self.settle(&message);

        match message {
            Message::Exec(attempt) => self.pending.push(Pending::Exec { attempt, age: 0 }),
            Message::Exit(exit) => {
                let attempt = self.take_attempt().unwrap_or_default();
                events.push(pax_kill(attempt, exit));
            }
            Message::Headline(headline) => self.pending.push(Pending::Fault { headline, age: 0 }),
            Message::Event(event) => events.push(event),
            Message::Taint(_) | Message::Other => {}
        }
        events
    }

    /// Ends the log: reports everything still waiting, incomplete, and starts afresh.
    pub fn finish(&mut self) -> Vec<KernelEvent> {
        self.pending.drain(..).map(Pending::into_event).collect()
    }

    /// Lets every waiting item see `message`, returning those it completed or expired.
    fn settle(&mut self, message: &Message) -> Vec<KernelEvent> {
        let mut events = Vec::new();
        for item in std::mem::take(&mut self.pending) {
            match item.settle(message) {
                Settled::Wait(item) => self.pending.push(item),
                Settled::Done(event) => events.push(event),
            }
        }
        events
    }

    /// Removes the waiting execution attempt, if there is one.
    fn take_attempt(&mut self) -> Option<ExecAttempt> {
        let index = self
            .pending
            .iter()
            .position(|item| matches!(item, Pending::Exec { .. }))?;
        match self.pending.remove(index) {
            Pending::Exec { attempt, .. } => Some(attempt),
            Pending::Fault { .. } => None,
        }
    }
}

/// Reads a whole log at once: every event, complete or not, in the order [`KernelLog`]
/// gives them.
pub fn parse_all<'a>(messages: impl IntoIterator<Item = &'a str>) -> Vec<KernelEvent> {
    let mut log = KernelLog::new();
    let mut events: Vec<_> = messages.into_iter().flat_map(|m| log.push(m)).collect();
    events.extend(log.finish());
    events
}

/// The `execution attempt in:` half of a `PaX` kill.
#[derive(Debug, Default)]
struct ExecAttempt {
    mapping: String,
    start: Option<u64>,
    end: Option<u64>,
    address: Option<u64>,
    source: Option<String>,
}

impl ExecAttempt {
    /// Reads `<mapping>, <start>-<end> <address>` from the end, so a mapping path may hold
    /// `, `. Without a readable range the whole text is the mapping.
    fn parse(text: &str, source: Option<String>) -> Self {
        let split = text
            .rsplit_once(", ")
            .and_then(|(mapping, tail)| Some((mapping, address_range(tail)?)));
        match split {
            Some((mapping, (start, end, address))) => Self {
                mapping: mapping.to_owned(),
                start: Some(start),
                end: Some(end),
                address,
                source,
            },
            None => Self {
                mapping: text.to_owned(),
                source,
                ..Self::default()
            },
        }
    }
}

/// The `terminating task:` half of a `PaX` kill.
#[derive(Debug, Default)]
struct TaskExit {
    task: TaskId,
    uid: Option<u32>,
    euid: Option<u32>,
    source: Option<String>,
}

impl TaskExit {
    /// Reads `<path>(<comm>):<pid>, uid/euid: <uid>/<euid>, PC: ..., SP: ...`. If the
    /// task part does not read, it is kept whole as the path.
    fn parse(text: &str, source: Option<String>) -> Self {
        let (head, tail) = split_before_any(text, &[", uid/euid:", ", PC:"]);
        let (uid, euid) = ids_after(tail, "uid/euid:");
        let task = pax_task(head).unwrap_or_else(|| TaskId {
            path: head.to_owned(),
            ..TaskId::default()
        });
        Self {
            task,
            uid,
            euid,
            source,
        }
    }
}

/// A task as the kernel names it: executable path, command name and pid.
#[derive(Debug, Default)]
struct TaskId {
    path: String,
    comm: String,
    pid: u32,
}

/// A kill or fault waiting for the message that completes it.
#[derive(Debug)]
enum Pending {
    /// An execution attempt waiting for its terminating task.
    Exec { attempt: ExecAttempt, age: usize },
    /// A fault headline waiting for its taint message.
    Fault { headline: String, age: usize },
}

/// What became of a waiting item after one message.
enum Settled {
    /// Still waiting.
    Wait(Pending),
    /// Completed or given up on.
    Done(KernelEvent),
}

impl Pending {
    /// Completes, keeps or expires this item in the light of the next message.
    fn settle(self, message: &Message) -> Settled {
        match (self, message) {
            (Pending::Fault { headline, .. }, Message::Taint(taint)) => {
                Settled::Done(KernelEvent::KernelFault {
                    headline,
                    taint: Some(taint.clone()),
                })
            }
            // The caller takes the attempt out and completes it with this message.
            (item @ Pending::Exec { .. }, Message::Exit(_)) => Settled::Wait(item),
            (item @ Pending::Exec { .. }, Message::Exec(_)) => Settled::Done(item.into_event()),
            (item, _) => item.aged(),
        }
    }

    /// Counts one more message; expires the item once it has waited the whole window.
    fn aged(mut self) -> Settled {
        let (Pending::Exec { age, .. } | Pending::Fault { age, .. }) = &mut self;
        *age = age.saturating_add(1);
        if *age >= PENDING_WINDOW {
            Settled::Done(self.into_event())
        } else {
            Settled::Wait(self)
        }
    }

    /// The incomplete event this item stands for.
    fn into_event(self) -> KernelEvent {
        match self {
            Pending::Exec { attempt, .. } => pax_kill(attempt, TaskExit::default()),
            Pending::Fault { headline, .. } => KernelEvent::KernelFault {
                headline,
                taint: None,
            },
        }
    }
}

/// Joins the two halves of a `PaX` kill.
fn pax_kill(attempt: ExecAttempt, exit: TaskExit) -> KernelEvent {
    KernelEvent::PaxKill {
        mapping: attempt.mapping,
        start: attempt.start,
        end: attempt.end,
        address: attempt.address,
        task: exit.task.path,
        comm: exit.task.comm,
        pid: exit.task.pid,
        uid: exit.uid,
        euid: exit.euid,
        source: attempt.source.or(exit.source),
    }
}

/// What one message means to a [`KernelLog`].
enum Message {
    /// `PAX: execution attempt in: ...`.
    Exec(ExecAttempt),
    /// `PAX: terminating task: ...`.
    Exit(TaskExit),
    /// The first message of a fault report.
    Headline(String),
    /// A `CPU: ... Tainted: ...` message, with its flags.
    Taint(String),
    /// A message that is an event on its own.
    Event(KernelEvent),
    /// Anything else.
    Other,
}

impl Message {
    /// Recognises one message, already stripped of trailing space.
    fn parse(message: &str) -> Self {
        if let Some(text) = message.strip_prefix("PAX: ") {
            return pax_message(text.trim());
        }
        if let Some(text) = message.strip_prefix("grsec: ") {
            return grsec_denial(text.trim()).map_or(Self::Other, Self::Event);
        }
        if let Some(flags) = taint_flags(message) {
            return Self::Taint(flags);
        }
        if FAULT_HEADLINES
            .iter()
            .any(|start| message.starts_with(start))
        {
            return Self::Headline(message.to_owned());
        }
        Self::Other
    }
}

/// Recognises the text after `PAX: `.
fn pax_message(text: &str) -> Message {
    let (source, body) = split_source(text);
    if let Some(rest) = body.strip_prefix("execution attempt in:") {
        return Message::Exec(ExecAttempt::parse(rest.trim(), source));
    }
    if let Some(rest) = body.strip_prefix("terminating task:") {
        return Message::Exit(TaskExit::parse(rest.trim(), source));
    }
    if body.starts_with("bytes at ") {
        return Message::Other;
    }
    if let Some(rest) = body.strip_prefix("size overflow detected in function") {
        return Message::Event(size_overflow(rest, text));
    }
    Message::Event(KernelEvent::PaxMode {
        feature: pax_feature(text).to_owned(),
        text: text.to_owned(),
    })
}

/// Splits off a `From <address>: ` prefix.
fn split_source(text: &str) -> (Option<String>, &str) {
    text.strip_prefix("From ")
        .and_then(|rest| rest.split_once(": "))
        .filter(|(address, _)| !address.is_empty() && !address.contains(char::is_whitespace))
        .map_or((None, text), |(address, rest)| {
            (Some(address.to_owned()), rest)
        })
}

/// The feature a `PaX` mode message is about, by keyword.
fn pax_feature(text: &str) -> &'static str {
    let text = text.to_ascii_lowercase();
    if text.contains("uderef") {
        "uderef"
    } else if text.contains("sanitiz") {
        "sanitize-slab"
    } else if text.contains("size_overflow") || text.contains("size overflow") {
        "size-overflow"
    } else {
        "other"
    }
}

/// A size overflow report from what follows `in function`.
fn size_overflow(rest: &str, text: &str) -> KernelEvent {
    let mut words = rest.split_whitespace();
    KernelEvent::SizeOverflow {
        function: words.next().unwrap_or_default().to_owned(),
        location: words.next().map(str::to_owned),
        text: text.to_owned(),
    }
}

/// Reads `<start>-<end>` and an optional `<address>`, all hex, and nothing more.
fn address_range(text: &str) -> Option<(u64, u64, Option<u64>)> {
    let mut words = text.split_whitespace();
    let (start, end) = words.next()?.split_once('-')?;
    let address = match words.next() {
        Some(word) => Some(hex(word)?),
        None => None,
    };
    if words.next().is_some() {
        return None;
    }
    Some((hex(start)?, hex(end)?, address))
}

/// A hex number with or without `0x`.
fn hex(word: &str) -> Option<u64> {
    let digits = word.strip_prefix("0x").unwrap_or(word);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Splits `text` before the first of `separators` found; the tail is empty if none is.
fn split_before_any<'t>(text: &'t str, separators: &[&str]) -> (&'t str, &'t str) {
    separators
        .iter()
        .filter_map(|separator| text.find(separator))
        .min()
        .map_or((text, ""), |at| text.split_at(at))
}

/// Reads `<uid>/<euid>` after the first `key` in `text`, with or without a space.
fn ids_after(text: &str, key: &str) -> (Option<u32>, Option<u32>) {
    let Some((_, rest)) = text.split_once(key) else {
        return (None, None);
    };
    let word = rest
        .trim_start()
        .split([',', ' ', '\t'])
        .next()
        .unwrap_or_default();
    let (uid, euid) = word.split_once('/').unwrap_or((word, ""));
    (uid.parse().ok(), euid.parse().ok())
}

/// Reads `PaX`'s `<path>(<comm>):<pid>`.
fn pax_task(text: &str) -> Option<TaskId> {
    let (left, pid) = text.rsplit_once(':')?;
    let pid = pid.trim().parse().ok()?;
    let (path, comm) = split_comm(left.strip_suffix(')')?, '(')?;
    Some(TaskId {
        path: path.to_owned(),
        comm: comm.to_owned(),
        pid,
    })
}

/// Reads grsecurity's `<path>[<comm>:<pid>` (the `]` already cut off).
fn grsec_task(text: &str) -> Option<TaskId> {
    let (left, pid) = text.rsplit_once(':')?;
    let pid = pid.parse().ok()?;
    let (path, comm) = split_comm(left, '[')?;
    Some(TaskId {
        path: path.to_owned(),
        comm: comm.to_owned(),
        pid,
    })
}

/// Splits `<path><open><comm>` where either may hold `open`: prefers the split whose comm
/// begins the path's file name, as the kernel's (truncated) comm does, else the last one.
fn split_comm(text: &str, open: char) -> Option<(&str, &str)> {
    let split = |at: usize| (&text[..at], &text[at + open.len_utf8()..]);
    text.match_indices(open)
        .map(|(at, _)| split(at))
        .find(|(path, comm)| !comm.is_empty() && file_name(path).starts_with(comm))
        .or_else(|| text.rfind(open).map(split))
}

/// The last component of a path.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A grsecurity denial from the text after `grsec: `; `None` for other grsec messages.
fn grsec_denial(text: &str) -> Option<KernelEvent> {
    let body = strip_role(split_source(text).1);
    let (action, found) = denial_parts(body)?;
    let (uid, euid) = found
        .as_ref()
        .map_or((None, None), |(_, after)| ids_after(after, "uid/euid:"));
    let task = found.map(|(task, _)| task);
    Some(KernelEvent::GrsecDenial {
        action: action.trim().to_owned(),
        comm: task.as_ref().map(|task| task.comm.clone()),
        pid: task.as_ref().map(|task| task.pid),
        task: task.map(|task| task.path),
        uid,
        euid,
        text: text.to_owned(),
    })
}

/// Strips an RBAC role prefix such as `(default:D:/) `.
fn strip_role(body: &str) -> &str {
    body.strip_prefix('(')
        .and_then(|rest| rest.split_once(") "))
        .filter(|(role, _)| role.contains(':'))
        .map_or(body, |(_, rest)| rest)
}

/// The denied action and, if one reads, the task with the text after it.
fn denial_parts(body: &str) -> Option<(&str, Option<(TaskId, &str)>)> {
    if let Some(rest) = body.strip_prefix("denied ") {
        return Some(match find_task(rest) {
            Some((action, task, after)) => (action, Some((task, after))),
            None => (
                rest.split_once(" by ").map_or(rest, |(action, _)| action),
                None,
            ),
        });
    }
    let (action, _) = body.split_once(" denied ")?;
    Some((
        action,
        find_task(body).map(|(_, task, after)| (task, after)),
    ))
}

/// Finds the first ` by <task>` or ` for <task>` with a readable task: the text before
/// it, the task, and the text after it.
fn find_task(text: &str) -> Option<(&str, TaskId, &str)> {
    text.match_indices(' ').find_map(|(at, _)| {
        let (before, rest) = text.split_at(at);
        let rest = rest
            .strip_prefix(" by ")
            .or_else(|| rest.strip_prefix(" for "))?;
        let (task, after) = bracketed_task(rest)?;
        Some((before, task, after))
    })
}

/// Reads `<path>[<comm>:<pid>]` at the start of `text`, and the text after it.
fn bracketed_task(text: &str) -> Option<(TaskId, &str)> {
    text.match_indices(']').find_map(|(at, _)| {
        let (task, after) = text.split_at(at);
        Some((grsec_task(task)?, after.get(1..).unwrap_or_default()))
    })
}

/// The taint flags of a `CPU: 0 PID: 1 Comm: x Tainted: G W 6.1.0 #1` message (older
/// kernels: `Pid: 1, comm: x ...`): the upper-case words after `Tainted: `, joined by one
/// space; empty for `Not tainted`. `None` for other messages.
fn taint_flags(message: &str) -> Option<String> {
    if !message.starts_with("CPU: ") && !message.starts_with("Pid: ") {
        return None;
    }
    if let Some((_, after)) = message.rsplit_once(" Tainted: ") {
        let flags: Vec<_> = after
            .split_whitespace()
            .take_while(|word| word.bytes().all(|b| b.is_ascii_uppercase()))
            .collect();
        return Some(flags.join(" "));
    }
    message.contains(" Not tainted").then(String::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: &str =
        "PAX: execution attempt in: <anonymous mapping>, 3054df44000-3054e047000 3054df44000";
    const EXIT: &str = "PAX: terminating task: /usr/bin/player(player):7933, uid/euid: \
                        1000/1000, PC: 000003054e044000, SP: 0000030534126388";
    const BYTES: &str = "PAX: bytes at PC: 55 48 89 e5 48 83 ec 10";
    const GRSEC: &str = "grsec: denied RWX mmap of <anonymous mapping> by /usr/bin/x[x:120] \
                         uid/euid:1000/1000";
    const TAINTED: &str = "CPU: 0 PID: 1 Comm: swapper/0 Tainted: G        W          \
                           6.1.0-57-cloud-amd64 #1 Debian 6.1.192-3";
    const NOT_TAINTED: &str = "CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1";
    const NULL_DEREF: &str = "BUG: kernel NULL pointer dereference, address: 0000000000000000";
    const SIZE_OVERFLOW: &str = "PAX: size overflow detected in function nfs_readdir \
                                 fs/nfs/dir.c:1234 cicus.85_123 max, count: 18, decl: foo; \
                                 num: 0; context: bar;";

    /// The mapping half of an expected kill: name and optional start, end, address.
    type Mapping<'a> = (&'a str, Option<(u64, u64, Option<u64>)>);

    /// An expected kill: task path, comm, pid, optional uid/euid, optional source.
    fn kill(
        (mapping, range): Mapping,
        (task, comm, pid): (&str, &str, u32),
        ids: Option<(u32, u32)>,
        source: Option<&str>,
    ) -> KernelEvent {
        KernelEvent::PaxKill {
            mapping: mapping.into(),
            start: range.map(|r| r.0),
            end: range.map(|r| r.1),
            address: range.and_then(|r| r.2),
            task: task.into(),
            comm: comm.into(),
            pid,
            uid: ids.map(|i| i.0),
            euid: ids.map(|i| i.1),
            source: source.map(Into::into),
        }
    }

    /// The kill K1 describes, with an optional source.
    fn k1_kill(source: Option<&str>) -> KernelEvent {
        kill(K1_MAPPING, PLAYER, Some((1000, 1000)), source)
    }

    const K1_START: u64 = 0x0305_4df4_4000;
    const K1_MAPPING: Mapping = (
        "<anonymous mapping>",
        Some((K1_START, 0x0305_4e04_7000, Some(K1_START))),
    );
    const PLAYER: (&str, &str, u32) = ("/usr/bin/player", "player", 7933);
    const NO_TASK: (&str, &str, u32) = ("", "", 0);

    fn fault(headline: &str, taint: Option<&str>) -> KernelEvent {
        KernelEvent::KernelFault {
            headline: headline.into(),
            taint: taint.map(Into::into),
        }
    }

    fn mode(feature: &str, text: &str) -> KernelEvent {
        KernelEvent::PaxMode {
            feature: feature.into(),
            text: text.into(),
        }
    }

    fn check(cases: &[(&str, Vec<&str>, Vec<KernelEvent>)]) {
        for (name, lines, want) in cases {
            assert_eq!(&parse_all(lines.iter().copied()), want, "case {name}");
        }
    }

    #[test]
    fn k1_kills_give_their_fields() {
        let from = "PAX: From 10.1.2.3: execution attempt in: <anonymous mapping>, \
                    3054df44000-3054e047000 3054df44000";
        let cases = [
            ("k1", vec![EXEC, EXIT, BYTES], vec![k1_kill(None)]),
            ("without bytes", vec![EXEC, EXIT], vec![k1_kill(None)]),
            (
                "from",
                vec![from, EXIT, BYTES],
                vec![k1_kill(Some("10.1.2.3"))],
            ),
            (
                "null mapping",
                vec!["PAX: execution attempt in: (null), 1000-2000 1000", EXIT],
                vec![kill(
                    ("(null)", Some((0x1000, 0x2000, Some(0x1000)))),
                    PLAYER,
                    Some((1000, 1000)),
                    None,
                )],
            ),
            (
                "path with comma",
                vec![
                    "PAX: execution attempt in: /opt/a, b/lib.so, 7f00-7f10 7f08 ",
                    EXIT,
                ],
                vec![kill(
                    ("/opt/a, b/lib.so", Some((0x7f00, 0x7f10, Some(0x7f08)))),
                    PLAYER,
                    Some((1000, 1000)),
                    None,
                )],
            ),
            (
                "no address",
                vec!["PAX: execution attempt in: /lib/x.so, 0x10-0x20", EXIT],
                vec![kill(
                    ("/lib/x.so", Some((0x10, 0x20, None))),
                    PLAYER,
                    Some((1000, 1000)),
                    None,
                )],
            ),
            (
                "unreadable range",
                vec!["PAX: execution attempt in: foo, zz-1 2", EXIT],
                vec![kill(
                    ("foo, zz-1 2", None),
                    PLAYER,
                    Some((1000, 1000)),
                    None,
                )],
            ),
            (
                "orphan terminating task",
                vec![EXIT],
                vec![kill(("", None), PLAYER, Some((1000, 1000)), None)],
            ),
            (
                "attempt without task",
                vec![EXEC, BYTES],
                vec![kill(K1_MAPPING, NO_TASK, None, None)],
            ),
        ];
        check(&cases);
    }

    #[test]
    fn terminating_task_variants_read() {
        let line = |task: &str| format!("PAX: terminating task: {task}");
        let cases = [
            (
                "/usr/bin/a(b)(a(b)):12, uid/euid: 0/5, PC: 1",
                ("/usr/bin/a(b)", "a(b)", 12),
            ),
            (
                "/bin/x (y)(x (y)):3, PC: 1, SP: 2",
                ("/bin/x (y)", "x (y)", 3),
            ),
            ("/bin/sh(other):4", ("/bin/sh", "other", 4)),
            (
                "/bin/sh(sh):notapid, uid/euid: 1/1",
                ("/bin/sh(sh):notapid", "", 0),
            ),
        ];
        for (task, (path, comm, pid)) in cases {
            let events = parse_all([line(task).as_str()]);
            let KernelEvent::PaxKill {
                task: t,
                comm: c,
                pid: p,
                ..
            } = &events[0]
            else {
                panic!("no kill for {task:?}: {events:?}");
            };
            assert_eq!(
                (t.as_str(), c.as_str(), *p),
                (path, comm, pid),
                "task {task:?}"
            );
        }
        let events = parse_all([line("/bin/sh(sh):1, uid/euid: 0/5, PC: 1").as_str()]);
        assert!(matches!(
            events[..],
            [KernelEvent::PaxKill {
                uid: Some(0),
                euid: Some(5),
                ..
            }]
        ));
    }

    #[test]
    fn kills_pair_up_across_other_lines() {
        let exit2 = "PAX: From 10.0.0.9: terminating task: /bin/b(b):2, uid/euid: 0/0, PC: 1";
        let exec2 = "PAX: execution attempt in: /lib/b.so, 10-20 18";
        let b_kill = kill(
            ("/lib/b.so", Some((0x10, 0x20, Some(0x18)))),
            ("/bin/b", "b", 2),
            Some((0, 0)),
            Some("10.0.0.9"),
        );
        let mut expired = vec![EXEC];
        expired.extend(["eth0: link up"; PENDING_WINDOW]);
        expired.push(EXIT);
        let cases = [
            (
                "two kills",
                vec![
                    EXEC,
                    "random: crng init done",
                    EXIT,
                    BYTES,
                    "x",
                    exec2,
                    BYTES,
                    exit2,
                ],
                vec![k1_kill(None), b_kill.clone()],
            ),
            (
                "attempt replaced by the next one",
                vec![EXEC, exec2, exit2],
                vec![kill(K1_MAPPING, NO_TASK, None, None), b_kill],
            ),
            (
                "attempt expired before its task",
                expired,
                vec![
                    kill(K1_MAPPING, NO_TASK, None, None),
                    kill(("", None), PLAYER, Some((1000, 1000)), None),
                ],
            ),
        ];
        check(&cases);
    }

    #[test]
    fn events_come_out_when_completed() {
        let mut log = KernelLog::new();
        assert_eq!(log.push(EXEC), vec![]);
        assert_eq!(log.push(EXIT), vec![k1_kill(None)]);
        assert_eq!(log.push(BYTES), vec![]);
        assert_eq!(log.push(NULL_DEREF), vec![]);
        assert_eq!(log.push(TAINTED), vec![fault(NULL_DEREF, Some("G W"))]);
        assert_eq!(log.finish(), vec![]);
    }

    /// An expected denial: action, optional task (path, comm, pid), optional uid/euid, text.
    fn denial(
        action: &str,
        task: Option<(&str, &str, u32)>,
        ids: Option<(u32, u32)>,
        text: &str,
    ) -> KernelEvent {
        KernelEvent::GrsecDenial {
            action: action.into(),
            task: task.map(|t| t.0.into()),
            comm: task.map(|t| t.1.into()),
            pid: task.map(|t| t.2),
            uid: ids.map(|i| i.0),
            euid: ids.map(|i| i.1),
            text: text.into(),
        }
    }

    #[test]
    fn grsec_denials_give_their_fields() {
        let role = "From 10.1.2.3: (default:D:/) denied chroot() to /srv by /usr/sbin/d[d:9] \
                    uid/euid:0/0 gid/egid:0/0, parent /sbin/init[init:1] uid/euid:1/1";
        let role_line = format!("grsec: {role}");
        let cases = [
            (
                "k1",
                vec![GRSEC],
                vec![denial(
                    "RWX mmap of <anonymous mapping>",
                    Some(("/usr/bin/x", "x", 120)),
                    Some((1000, 1000)),
                    &GRSEC["grsec: ".len()..],
                )],
            ),
            (
                "role and source",
                vec![role_line.as_str()],
                vec![denial(
                    "chroot() to /srv",
                    Some(("/usr/sbin/d", "d", 9)),
                    Some((0, 0)),
                    role,
                )],
            ),
            (
                "denied for",
                vec!["grsec: use of CAP_SYS_ADMIN denied for /bin/a[a b:7] uid/euid:5/6"],
                vec![denial(
                    "use of CAP_SYS_ADMIN",
                    Some(("/bin/a", "a b", 7)),
                    Some((5, 6)),
                    "use of CAP_SYS_ADMIN denied for /bin/a[a b:7] uid/euid:5/6",
                )],
            ),
            (
                "no task",
                vec!["grsec: denied mount of /dev/sda by somebody"],
                vec![denial(
                    "mount of /dev/sda",
                    None,
                    None,
                    "denied mount of /dev/sda by somebody",
                )],
            ),
            (
                "not a denial",
                vec!["grsec: exec of /bin/ls by /bin/sh[sh:1] uid/euid:0/0"],
                vec![],
            ),
        ];
        check(&cases);
    }

    #[test]
    fn pax_messages_are_classified() {
        let overflow =
            |function: &str, location: Option<&str>, text: &str| KernelEvent::SizeOverflow {
                function: function.into(),
                location: location.map(Into::into),
                text: text.into(),
            };
        let cases = [
            (
                "uderef",
                vec!["PAX: UDEREF disabled"],
                vec![mode("uderef", "UDEREF disabled")],
            ),
            (
                "sanitize",
                vec!["PAX: slab sanitization: full"],
                vec![mode("sanitize-slab", "slab sanitization: full")],
            ),
            (
                "size overflow mode",
                vec!["PAX: Size_Overflow plugin enabled"],
                vec![mode("size-overflow", "Size_Overflow plugin enabled")],
            ),
            (
                "other",
                vec!["PAX: refcount overflow detected in: a:1"],
                vec![mode("other", "refcount overflow detected in: a:1")],
            ),
            (
                "bytes only",
                vec![BYTES, "PAX: bytes at SP-8: 00 00"],
                vec![],
            ),
            (
                "size overflow",
                vec![SIZE_OVERFLOW],
                vec![overflow(
                    "nfs_readdir",
                    Some("fs/nfs/dir.c:1234"),
                    &SIZE_OVERFLOW["PAX: ".len()..],
                )],
            ),
            (
                "size overflow without location",
                vec!["PAX: size overflow detected in function foo"],
                vec![overflow(
                    "foo",
                    None,
                    "size overflow detected in function foo",
                )],
            ),
        ];
        check(&cases);
    }

    #[test]
    fn faults_carry_their_taint() {
        let oops = "Oops: 0000 [#1] PREEMPT SMP NOPTI";
        let warning = "WARNING: CPU: 0 PID: 1 at kernel/foo.c:12 foo+0x1/0x2";
        let gpf = "general protection fault, probably for non-canonical address 0x1: 0000";
        let mut late = vec![NULL_DEREF];
        late.extend(["Call Trace:"; PENDING_WINDOW]);
        late.push(TAINTED);
        let mut last_chance = vec![NULL_DEREF];
        last_chance.extend(["Call Trace:"; PENDING_WINDOW - 1]);
        last_chance.push(NOT_TAINTED);
        let cases = [
            (
                "tainted",
                vec![NULL_DEREF, "#PF: x", TAINTED],
                vec![fault(NULL_DEREF, Some("G W"))],
            ),
            (
                "not tainted",
                vec![warning, NOT_TAINTED],
                vec![fault(warning, Some(""))],
            ),
            (
                "no cpu line",
                vec![gpf, "Call Trace:"],
                vec![fault(gpf, None)],
            ),
            ("cpu line too late", late, vec![fault(NULL_DEREF, None)]),
            (
                "cpu line just in time",
                last_chance,
                vec![fault(NULL_DEREF, Some(""))],
            ),
            (
                "bug then oops",
                vec![
                    NULL_DEREF,
                    "PGD 0 P4D 0",
                    oops,
                    "CPU: 1 PID: 7 Comm: k Tainted: P  OE 6.1",
                ],
                vec![fault(NULL_DEREF, Some("P OE")), fault(oops, Some("P OE"))],
            ),
            (
                "old kernel",
                vec![
                    "kernel BUG at mm/slub.c:3",
                    "Pid: 1, comm: swapper Not tainted 3.2.0 #1",
                ],
                vec![fault("kernel BUG at mm/slub.c:3", Some(""))],
            ),
            (
                "cpu line alone",
                vec![TAINTED, "CPU: Physical Processor ID: 0"],
                vec![],
            ),
        ];
        check(&cases);
    }

    #[test]
    fn events_serialize_with_their_kind() {
        let value = serde_json::to_value(k1_kill(None)).unwrap();
        assert_eq!(value["kind"], "pax-kill");
        assert_eq!(value["pid"], 7933);
        assert_eq!(value["source"], serde_json::Value::Null);
        let value = serde_json::to_value(fault(NULL_DEREF, Some(""))).unwrap();
        assert_eq!(value["kind"], "kernel-fault");
        assert_eq!(value["taint"], "");
    }

    /// A deterministic xorshift64 generator.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            usize::try_from(self.0 % n as u64).unwrap()
        }
    }

    /// A random run of whole characters from `line`.
    fn fragment<'a>(rng: &mut XorShift, line: &'a str) -> &'a str {
        let bounds: Vec<usize> = line
            .char_indices()
            .map(|(at, _)| at)
            .chain([line.len()])
            .collect();
        let from = bounds[rng.below(bounds.len())];
        let to = bounds[rng.below(bounds.len())];
        &line[from.min(to)..from.max(to)]
    }

    #[test]
    fn random_messages_never_panic() {
        let lines = [
            EXEC,
            EXIT,
            BYTES,
            GRSEC,
            TAINTED,
            NOT_TAINTED,
            NULL_DEREF,
            SIZE_OVERFLOW,
            "PAX: From 10.1.2.3: execution attempt in: (null), 1000-2000 1000",
            "grsec: (r:U:/) denied ptrace of /bin/ü[ü:1] by /bin/é(é)[é:2] uid/euid:0/0",
            "PAX: UDEREF disabled",
            "PAX: ",
            "grsec: ",
            "):]([, - : / 0x ffffffffffffffffff 99999999999",
        ];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut log = KernelLog::new();
        let mut events = Vec::new();
        for _ in 0..2000 {
            let mut message = String::new();
            for _ in 0..=rng.below(3) {
                let line = lines[rng.below(lines.len())];
                message.push_str(if rng.below(4) == 0 {
                    line
                } else {
                    fragment(&mut rng, line)
                });
            }
            events.extend(log.push(&message));
            assert!(
                log.pending.len() <= PENDING_WINDOW + 1,
                "pending grows without bound"
            );
        }
        events.extend(log.finish());
        assert!(!events.is_empty());
        for event in &events {
            serde_json::to_string(event).unwrap();
        }
    }
}
