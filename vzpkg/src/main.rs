//! The `vzpkg` binary: picks the front door (see [`vzpkg::cli`]).

fn main() {
    std::process::exit(vzpkg::cli::main(std::env::args_os().collect()));
}
