//! The `berth` binary: parse the command line, start tracing, hand over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    berth::cli::main()
}
