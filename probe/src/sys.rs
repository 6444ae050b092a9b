//! Thin, safe wrappers over the libc calls the probe makes in more than one place.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use crate::names;

/// The page size of x86_64, the only architecture the probe is built for.
pub const PAGE_SIZE: usize = 4096;

/// An errno value left by a failed system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's errno, read right after a call failed.
    pub fn last() -> Self {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The errno carried by an I/O error, or `EIO` when it carries none.
    pub fn from_io(error: &std::io::Error) -> Self {
        Errno(error.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&names::errno_name(self.0))
    }
}

/// Turns the `-1` a system call returns on failure into the errno it left.
pub fn check<T: Into<i64> + Copy>(ret: T) -> Result<T, Errno> {
    if ret.into() == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// `"allowed"` for a call that succeeded, else the name of its errno: how records state
/// whether the kernel let an operation through.
pub fn verdict(result: Result<(), Errno>) -> String {
    match result {
        Ok(()) => "allowed".to_string(),
        Err(errno) => errno.to_string(),
    }
}

/// Which side of a fork the caller is on.
pub enum Fork {
    /// The new process.
    Child,
    /// The original process, holding the child's pid.
    Parent(libc::pid_t),
}

/// Forks the (single-threaded) probe.
pub fn fork() -> Result<Fork, Errno> {
    // SAFETY: the probe never starts threads, so the child inherits no lock held by
    // another thread.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent(pid)
    })
}

/// Ends the process at once, without unwinding or running exit handlers, as a forked
/// child must.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` takes no pointers and does not return.
    unsafe { libc::_exit(code) }
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal with this number killed it.
    Signal(i32),
}

fn decode(status: libc::c_int) -> Exit {
    if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    }
}

/// Waits for a child to end and reaps it.
pub fn wait(pid: libc::pid_t) -> Result<Exit, Errno> {
    loop {
        if let Some(exit) = wait_with(pid, 0)? {
            return Ok(exit);
        }
    }
}

/// Reaps a child if it has ended, without blocking.
pub fn try_wait(pid: libc::pid_t) -> Result<Option<Exit>, Errno> {
    wait_with(pid, libc::WNOHANG)
}

fn wait_with(pid: libc::pid_t, flags: libc::c_int) -> Result<Option<Exit>, Errno> {
    let mut status = 0;
    // SAFETY: `status` is a valid place for waitpid to write.
    match check(unsafe { libc::waitpid(pid, &mut status, flags) }) {
        Ok(0) => Ok(None),
        Ok(_) => Ok(Some(decode(status))),
        Err(Errno(libc::EINTR)) => Ok(None),
        Err(errno) => Err(errno),
    }
}

/// Sends SIGKILL to one process; a process already gone is not an error worth reporting.
pub fn kill(pid: libc::pid_t) {
    // Zero and negative pids would name whole groups, or every process.
    if pid > 0 {
        // SAFETY: kill takes no pointers.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Sends SIGKILL to every process in a process group.
pub fn kill_group(pgid: libc::pid_t) {
    // Group 1 would be init's, and -1 would mean every process.
    if pgid > 1 {
        // SAFETY: kill takes no pointers.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

/// Puts a process in a process group of its own, so that its descendants can be killed
/// together; 0 means the caller. The parent and the child both call it, so the group
/// exists whichever of them runs first.
pub fn own_group(pid: libc::pid_t) {
    // SAFETY: setpgid takes no pointers.
    unsafe { libc::setpgid(pid, pid) };
}

/// Sets a signal back to its default action, undoing handlers the Rust runtime installs.
pub fn default_signal(signal: libc::c_int) {
    // SAFETY: SIG_DFL is a valid disposition for any catchable signal.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
}

/// Stops a process that a check deliberately crashes from writing a core file.
pub fn disable_core_dumps() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `none` is a valid rlimit for the call to read.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
}

/// A pipe whose two ends close on exec.
pub fn pipe() -> Result<(File, File), Errno> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 just opened both descriptors and nothing else owns them.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Waits up to `timeout` for `file` to have data or reach end of file.
pub fn readable(file: &File, timeout: Duration) -> Result<bool, Errno> {
    let mut poll = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `poll` is one valid pollfd.
    match check(unsafe { libc::poll(&mut poll, 1, millis) }) {
        Ok(ready) => Ok(ready > 0),
        Err(Errno(libc::EINTR)) => Ok(false),
        Err(errno) => Err(errno),
    }
}

/// An anonymous private mapping, unmapped when dropped.
pub struct Mapping {
    address: *mut libc::c_void,
    len: usize,
    prot: libc::c_int,
}

impl Mapping {
    /// Maps `len` bytes of zeroed memory with protection `prot`.
    pub fn anonymous(len: usize, prot: libc::c_int) -> Result<Self, Errno> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing
        // cannot overlap memory Rust knows about.
        let address = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, -1, 0) };
        if address == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Mapping { address, len, prot })
    }

    /// The mapping's start address.
    pub fn address(&self) -> u64 {
        self.address as u64
    }

    /// A pointer to the mapping's first byte.
    pub fn as_ptr(&self) -> *const u8 {
        self.address.cast()
    }

    /// Copies `bytes` to the start of the mapping; fails if it is not writable or too
    /// small.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.prot & libc::PROT_WRITE == 0 || bytes.len() > self.len {
            return Err("mapping is not writable or too small".to_string());
        }
        // SAFETY: the mapping is writable and at least `bytes.len()` long, and nothing
        // else refers to it.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.address.cast(), bytes.len()) };
        Ok(())
    }

    /// Changes the mapping's protection with mprotect.
    pub fn protect(&mut self, prot: libc::c_int) -> Result<(), Errno> {
        // SAFETY: the range is exactly the mapping this value owns.
        check(unsafe { libc::mprotect(self.address, self.len, prot) })?;
        self.prot = prot;
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is exactly the mapping this value owns, and no reference
        // into it outlives the value.
        unsafe { libc::munmap(self.address, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_names_the_errno() {
        assert_eq!(verdict(Ok(())), "allowed");
        assert_eq!(verdict(Err(Errno(libc::EPERM))), "EPERM");
        assert_eq!(verdict(Err(Errno(libc::EACCES))), "EACCES");
    }

    #[test]
    fn check_passes_values_through() {
        assert_eq!(check(5i32), Ok(5));
        assert!(check(-1i64).is_err());
    }

    #[test]
    fn mapping_refuses_writes_it_cannot_take() {
        let mut read_only = Mapping::anonymous(PAGE_SIZE, libc::PROT_READ).unwrap();
        assert!(read_only.write(&[1]).is_err());
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let mut writable = Mapping::anonymous(PAGE_SIZE, rw).unwrap();
        assert!(writable.write(&[0; PAGE_SIZE + 1]).is_err());
        assert!(writable.write(&[7; 6]).is_ok());
    }
}
