//! What commands print, without ever panicking: stdout may be a pipe that
//! closed (`drtool points | head -1`) and stderr a terminal that went away
//! (SIGHUP); `println!` panics on both. A failed write to stdout is kept so
//! the command can end with the right exit code; stderr is best effort.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// The first error writing to stdout, if any.
static STDOUT_FAILED: Mutex<Option<io::ErrorKind>> = Mutex::new(None);

/// Writes to stdout; remembers the first failure.
pub fn out(args: fmt::Arguments<'_>, newline: bool) {
    let mut o = io::stdout().lock();
    let written = o
        .write_fmt(args)
        .and_then(|()| if newline { o.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = written
        && let Ok(mut failed) = STDOUT_FAILED.lock()
    {
        failed.get_or_insert(e.kind());
    }
}

/// Writes to stderr, ignoring failures (there is nowhere left to say them).
pub fn err(args: fmt::Arguments<'_>, newline: bool) {
    let mut e = io::stderr().lock();
    let _ = e
        .write_fmt(args)
        .and_then(|()| if newline { e.write_all(b"\n") } else { Ok(()) });
}

/// How writing to stdout failed, if it did.
pub fn stdout_failure() -> Option<io::ErrorKind> {
    STDOUT_FAILED.lock().ok().and_then(|f| *f)
}
