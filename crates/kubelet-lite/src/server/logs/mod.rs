//! Container logs: the options of `/containerLogs` ([`LogOptions`]), the CRI log format
//! ([`mod@format`]), finding where `tailLines` starts ([`mod@tail`]), streaming a log
//! file to a client ([`copy_log`]) and the body that carries it (`log_body`).

mod body;
mod copy;
pub mod format;
mod options;
pub mod tail;

pub(crate) use body::log_body;
pub use copy::{LogFile, copy_log};
pub use options::LogOptions;
