//! vmgate boots built Linux kernels in QEMU once per scenario case, drives each
//! guest over QMP and SSH, and compares what it sees with golden snapshots.
//!
//! The flow: [`scenario`] files expand into cases; a [`kernel::Kernel`] and an
//! [`image`] make the guest; [`host`] picks the accelerator; [`runner`] boots
//! each case on a [`machine::Machine`], watched by [`watch`]; the
//! [`observation`] is judged against its [`snapshot`]; [`report`] explains.

#![deny(missing_docs)]

pub mod accel;
pub mod bisect;
pub mod bisect_run;
pub mod boot_group;
pub mod cache;
pub mod console;
pub mod debian;
pub mod doctor;
pub mod error;
pub mod event_expect;
pub mod guest_probe;
pub mod guest_script;
pub mod host;
pub mod image;
pub mod initramfs;
pub mod interrupt;
pub mod junit;
pub mod kernel;
pub mod kernel_log;
pub mod machine;
pub mod modules;
pub mod observation;
pub mod paxtest;
pub mod probe;
pub mod progress;
pub mod report;
pub mod repro;
pub mod run;
pub mod runner;
pub mod scenario;
pub mod shard;
pub mod snapshot;
pub mod sysctl_expect;
pub mod sysctl_write;
pub mod tree;
pub mod watch;
