//! `runtime-core-monitor`: the per-container monitor process (see
//! `runtime_core::monitor`). The daemon starts one per container; it is not meant to be
//! run by hand.

fn main() -> std::process::ExitCode {
    runtime_core::monitor::process::main()
}
