//! Standard output for every command, written through one checked path instead of `println!`
//! (which panics, exit 101, when stdout is closed or full).
//!
//! - A closed output (`janus gates --json | head -1`: EPIPE) is not an error: the rest of the
//!   output is dropped quietly and the command ends with its own exit code.
//! - Any other write error (a full disk, `/dev/full`: ENOSPC) is kept; [`finish`] reports it and
//!   the command exits 1 (a failure of the run, not of its inputs; see the README's exit codes).
//!
//! Standard error (diagnostics: skipped lines, warnings, the final error) goes through
//! [`write_err`] (`errln!`) instead of `eprintln!`, which panics when stderr is a closed pipe.
//! A diagnostic that cannot be written (closed: EPIPE; absent, `2>&-`: EBADF; full) is
//! dropped quietly: there is nowhere left to report it, and it must not change the command's
//! exit code.

use super::CliError;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write failed (closed pipe or error): nothing more is written.
static STOPPED: AtomicBool = AtomicBool::new(false);
/// The first write error other than a closed pipe.
static FAILURE: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Writes formatted text to standard output (no newline added); see the module comment.
pub fn write(args: std::fmt::Arguments<'_>) {
    if STOPPED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        stop(e);
    }
}

fn stop(e: std::io::Error) {
    STOPPED.store(true, Ordering::Relaxed);
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        let mut first = FAILURE.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
    }
}

/// Flushes standard output; the first write error other than a closed pipe, if any.
pub fn finish() -> Result<(), CliError> {
    if !STOPPED.load(Ordering::Relaxed)
        && let Err(e) = std::io::stdout().lock().flush()
    {
        stop(e);
    }
    match FAILURE.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(e) => Err(CliError::Output(e)),
        None => Ok(()),
    }
}

/// Writes formatted text to standard error (no newline added) and ignores any failure; see
/// the module comment.
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `eprintln!` through [`write_err`]: never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!($($arg)*))
    };
}

/// `println!` through [`write`].
macro_rules! outln {
    () => {
        $crate::cli::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};
