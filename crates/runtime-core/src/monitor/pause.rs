//! The monitor's pause mode (`runtime-core-monitor --pause [SANDBOX DIR]`): the init of a
//! pod's shared PID namespace (see [`crate::sandbox::pid_holder`]).
//!
//! As pid 1 of the namespace it keeps the namespace alive and reaps every orphan the
//! kernel hands to it, forever. It installs no signal handler: the kernel delivers no
//! signal to a namespace's init that it does not handle, save SIGKILL from outside, which
//! is how StopPodSandbox ends it (and with it every process of the namespace). The sandbox
//! directory argument is not used; it names the pod's holder in its command line.

use std::time::Duration;

use rustix::io::Errno;
use rustix::process::WaitOptions;

/// The first argument that selects pause mode.
pub const PAUSE_ARG: &str = "--pause";

/// How long pause waits before looking again when it has no child at all.
const IDLE: Duration = Duration::from_secs(1);

/// Reaps children until killed.
pub fn run() -> ! {
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(_) | Err(Errno::INTR) => {}
            // No child yet: an orphan may come at any time; wait() cannot block for it.
            Err(_) => std::thread::sleep(IDLE),
        }
    }
}
