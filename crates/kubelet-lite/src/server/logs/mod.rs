//! Container logs: the options of `/containerLogs` ([`LogOptions`]), the CRI log format
//! ([`mod@format`]), finding where `tailLines` starts ([`mod@tail`]) and streaming a log
//! file to a client ([`copy_log`]).

mod copy;
pub mod format;
mod options;
pub mod tail;

pub use copy::{LogFile, copy_log};
pub use options::LogOptions;
