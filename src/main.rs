//! The `unionmount` command: parse, run, and turn an error into one line and an exit code.

use clap::Parser;

fn main() {
    // fuser warns when its own unmount on exit finds the mount already gone, which is the
    // normal end after `unionmount umount`.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,fuser::session=error"),
    )
    .format_timestamp(None)
    .init();
    let cli = unionmount::cli::Cli::parse();
    if let Err(e) = unionmount::cli::run(cli) {
        eprintln!("unionmount: {e}");
        std::process::exit(e.exit_code());
    }
}
