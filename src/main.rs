//! The `flowlab` command line. Each subcommand is a short function in `cli/` that parses its
//! arguments and calls the library.
mod cli;

fn main() {
    flowlab::experiment::keep_freed_memory();
    if let Err(e) = cli::main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
