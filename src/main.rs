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
    let cli = unionmount::cli::Cli::parse_from(unionmount::cli::helper_argv(std::env::args_os()));
    if let Err(e) = unionmount::cli::run(cli) {
        if matches!(e, unionmount::cli::CliError::Reported) {
            std::process::exit(e.exit_code());
        }
        eprintln!("unionmount: {}", one_line(&e.to_string()));
        std::process::exit(e.exit_code());
    }
}

/// Errors quote names and causes from outside (tar headers, paths); a control character in
/// them must not break the one-line message scripts parse.
fn one_line(message: &str) -> String {
    message
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
