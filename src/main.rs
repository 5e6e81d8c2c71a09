use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(scopefs::cli::colour_on_stderr())
        .init();
    let cli = scopefs::cli::Cli::parse_from(scopefs::cli::arguments());
    scopefs::cli::hide_arguments();
    if let Err(err) = scopefs::cli::run(cli) {
        eprintln!("scopefs: {err}");
        std::process::exit(err.code as i32);
    }
}
