//! Writing to stdout without panicking.
//!
//! `println!` panics when stdout is a closed pipe (`strata list | head`); these helpers return
//! the error instead, and [`crate::exit::CliError`] turns a broken pipe into a quiet exit.

use std::io::{self, Write};

/// Stdout, written line by line. Rust's stdout is line-buffered, so each line reaches a pipe
/// (`strata watch | tee log`) as soon as it is written.
pub struct Out {
    stdout: io::Stdout,
}

impl Out {
    pub fn new() -> Out {
        Out {
            stdout: io::stdout(),
        }
    }

    /// Writes `text` and a newline.
    pub fn line(&mut self, text: &str) -> io::Result<()> {
        let mut lock = self.stdout.lock();
        writeln!(lock, "{text}")?;
        lock.flush()
    }

    /// Writes `text` as it is (it brings its own newlines).
    pub fn text(&mut self, text: &str) -> io::Result<()> {
        let mut lock = self.stdout.lock();
        lock.write_all(text.as_bytes())?;
        lock.flush()
    }

    /// Writes `value` as compact JSON on one line, so streams of objects are valid NDJSON.
    pub fn json(&mut self, value: &serde_json::Value) -> io::Result<()> {
        self.line(&value.to_string())
    }
}

/// A line on stderr, for notes that must not mix with the data on stdout. A failure to write
/// it is ignored: there is nowhere left to report it.
pub fn note(text: &str) {
    let _ = writeln!(io::stderr(), "{text}");
}
