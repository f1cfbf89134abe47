//! Container logs: the options of `/containerLogs` ([`LogOptions`]), the CRI log format
//! ([`mod@format`]) and copying a log file to a client ([`copy_log`]).

mod copy;
pub mod format;
mod options;

pub use copy::{Sink, copy_log};
pub use options::LogOptions;
