//! Durable means on the disk: the protocol checked at the system-call level.
//!
//! stratad runs under `strace -f`; a run is started and followed through the real CLI. Then, in the
//! trace, for every epoch the client received:
//! - the epoch's bytes reached sled's log file (`pwrite64` to `db/db`),
//! - an `fsync`/`fdatasync` of that file began after that write and completed before the epoch was
//!   written to the client's TCP socket;
//! - its checkpoint file was synced before it was renamed into place, and the run's folder was
//!   synced after the rename, both before the epoch record was written to the store.
//!
//! The same holds for the run record that `start` acknowledges. Without `strace` (or where this
//! machine forbids tracing) the test says so and skips.

use std::{path::Path, process::Command};

use strata_e2e::{Daemon, TINY_RUN};

/// The system calls that write, sync or rename; everything else runs untraced (seccomp filter).
const TRACED: &str = "trace=fsync,fdatasync,pwrite64,pwritev,pwritev2,write,writev,sendmsg,sendto,\
                      rename,renameat,renameat2";

/// One traced system call: its name, the text of its arguments (strings decoded to raw bytes) and
/// the trace lines where it began and completed.
#[derive(Debug)]
struct Call {
    name: String,
    text: Vec<u8>,
    began: usize,
    ended: usize,
    ok: bool,
}

impl Call {
    fn mentions(&self, needle: &[u8]) -> bool {
        find(&self.text, needle).is_some()
    }

    fn is_socket_write(&self) -> bool {
        matches!(
            self.name.as_str(),
            "write" | "writev" | "sendmsg" | "sendto"
        ) && self.mentions(b"TCP:[")
    }

    fn is_store_write(&self) -> bool {
        self.name.starts_with("pwrite") && self.mentions(b"/db/db>")
    }

    fn is_sync_of(&self, path_suffix: &[u8]) -> bool {
        matches!(self.name.as_str(), "fsync" | "fdatasync") && self.ok && self.mentions(path_suffix)
    }

    fn is_rename(&self) -> bool {
        self.name.starts_with("rename") && self.ok
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Undoes strace's `-xx`: every string is printed as `\xHH` escapes.
fn decode_hex_escapes(line: &str) -> Vec<u8> {
    let bytes = line.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 2);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') && i + 3 < bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(digits, 16) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Parses `strace -f -ttt` output, joining `<unfinished ...>` entries with their `resumed` ends.
fn parse_trace(trace: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut pending: std::collections::HashMap<String, usize> = Default::default();
    for (index, line) in trace.lines().enumerate() {
        // PID TIMESTAMP REST; strace pads the pid with spaces to five columns.
        let Some((pid, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Some((_time, rest)) = rest.trim_start().split_once(' ') else {
            continue;
        };
        if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some(open) = pending.remove(pid) else {
                continue;
            };
            let call = &mut calls[open];
            call.ended = index;
            call.ok = !resumed.contains(") = -1 ");
            call.text.extend(decode_hex_escapes(resumed));
            continue;
        }
        let Some(paren) = rest.find('(') else {
            continue;
        };
        let unfinished = rest.ends_with("<unfinished ...>");
        calls.push(Call {
            name: rest[..paren].to_string(),
            text: decode_hex_escapes(&rest[paren..]),
            began: index,
            ended: index,
            ok: !unfinished && !rest.contains(") = -1 "),
        });
        if unfinished {
            pending.insert(pid.to_string(), calls.len() - 1);
        }
    }
    calls
}

/// Checks that `bytes` were written to the store, synced, and only then sent to a client; returns
/// the store write.
fn assert_durable_before_sent<'a>(calls: &'a [Call], bytes: &[u8], what: &str) -> &'a Call {
    let sent = calls
        .iter()
        .find(|c| c.is_socket_write() && c.mentions(bytes))
        .unwrap_or_else(|| panic!("{what} was never written to a client's socket"));
    let stored = calls
        .iter()
        .find(|c| c.is_store_write() && c.mentions(bytes))
        .unwrap_or_else(|| panic!("{what} was never written to the store's log"));
    assert!(
        stored.ended < sent.began,
        "{what} was sent (trace line {}) before it was written to the store (line {})",
        sent.began + 1,
        stored.began + 1
    );
    let synced = calls
        .iter()
        .any(|c| c.is_sync_of(b"/db/db>") && c.began > stored.ended && c.ended < sent.began);
    assert!(
        synced,
        "no fsync/fdatasync of the store's log between writing {what} (trace line {}) and sending it (line {})",
        stored.ended + 1,
        sent.began + 1
    );
    stored
}

fn strace_works() -> Result<(), String> {
    let probe = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "true"])
        .output();
    match probe {
        Err(err) => Err(format!(
            "strace is not installed ({err}); scripts/test.sh installs it as root with apt-get"
        )),
        Ok(out) if !out.status.success() => Err(format!(
            "strace cannot trace here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => Ok(()),
    }
}

#[test]
fn every_streamed_epoch_was_fsynced_and_its_checkpoint_and_folder_synced_first() {
    if let Err(why) = strace_works() {
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let trace_path = tmp.path().join("stratad.trace");
    let trace_arg = trace_path.to_str().unwrap();
    let wrapper = [
        "strace",
        "-f",
        "--seccomp-bpf",
        "-qq",
        "-ttt",
        "-yy",
        "-xx",
        "-s",
        "1048576",
        "-e",
        TRACED,
        "-o",
        trace_arg,
    ];
    let daemon = Daemon::start_wrapped(&data, &[], &[], &wrapper);
    let mut args = vec!["start", "--json", "--follow", "--epochs", "4"];
    args.extend_from_slice(TINY_RUN);
    let out = daemon.strata(&args);
    assert_eq!(out.code, 0, "{out:?}\n{}", daemon.log());
    let events = out.json_lines();
    let run_id = events[0]["run_id"]
        .as_str()
        .expect("the run id")
        .to_string();
    let val_losses: Vec<(u64, f64)> = events
        .iter()
        .filter(|e| e["event"] == "epoch")
        .map(|e| {
            (
                e["epoch"].as_u64().unwrap(),
                e["val_loss"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        val_losses.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "the client received every epoch"
    );
    let status = daemon.stop();
    assert!(status.success(), "stratad (under strace) exits 0: {status}");

    let trace = std::fs::read_to_string(&trace_path).expect("the trace");
    check_trace(&trace, &data, &run_id, &val_losses);
}

fn check_trace(trace: &str, data: &Path, run_id: &str, val_losses: &[(u64, f64)]) {
    // On failure, show the trace (without the data written) so the order can be read.
    let checked = std::panic::catch_unwind(|| check_calls(trace, data, run_id, val_losses));
    if let Err(panic) = checked {
        let outline: Vec<String> = trace
            .lines()
            .enumerate()
            .map(|(i, line)| {
                let short: String = line.chars().take(160).collect();
                format!("{:5} {short}", i + 1)
            })
            .collect();
        eprintln!(
            "the trace, each line cut at 160 characters:\n{}",
            outline.join("\n")
        );
        std::panic::resume_unwind(panic);
    }
}

fn check_calls(trace: &str, data: &Path, run_id: &str, val_losses: &[(u64, f64)]) {
    let calls = parse_trace(trace);
    assert!(
        calls.iter().any(|c| c.is_store_write()),
        "the trace shows no write to the store's log; {} calls traced",
        calls.len()
    );

    // The run record: acknowledged to `start` only once it is on the disk.
    assert_durable_before_sent(&calls, run_id.as_bytes(), "the run record");

    let run_dir = format!("{}/runs/{run_id}>", data.display());
    let mut previous_rename_end = 0;
    for &(epoch, val_loss) in val_losses {
        // Protobuf writes a double as its 8 little-endian bytes, in the store and on the wire.
        let what = format!("epoch {epoch} (validation loss {val_loss})");
        let stored = assert_durable_before_sent(&calls, &val_loss.to_le_bytes(), &what);

        let file = format!("epoch-{epoch:06}.safetensors");
        let renamed = calls
            .iter()
            .find(|c| c.is_rename() && c.mentions(file.as_bytes()))
            .unwrap_or_else(|| panic!("the checkpoint {file} was never renamed into place"));
        assert!(
            renamed.ended < stored.began,
            "{what}: its record was written before its checkpoint was in place"
        );
        let file_synced = calls.iter().any(|c| {
            c.is_sync_of(b"/checkpoint.tmp.safetensors>")
                && c.began > previous_rename_end
                && c.ended < renamed.began
        });
        assert!(
            file_synced,
            "{what}: the checkpoint was renamed (trace line {}) without an fsync of the file first",
            renamed.began + 1
        );
        let dir_synced = calls.iter().any(|c| {
            c.is_sync_of(run_dir.as_bytes()) && c.began > renamed.ended && c.ended < stored.began
        });
        assert!(
            dir_synced,
            "{what}: no fsync of {run_dir} between the rename (trace line {}) and the record (line {})",
            renamed.ended + 1,
            stored.began + 1
        );
        previous_rename_end = renamed.ended;
    }
}

/// The checker itself: a trace where the epoch reaches the socket before the sync is refused.
#[test]
fn the_trace_check_refuses_a_send_before_the_sync() {
    let loss: f64 = 0.123456789;
    let hex: String = loss
        .to_le_bytes()
        .iter()
        .map(|b| format!("\\x{b:02x}"))
        .collect();
    let good = format!(
        "1 0.1 pwrite64(5</d/db/db>, \"{hex}\", 8, 0) = 8\n\
         1     0.2 fdatasync(5</d/db/db>) = 0\n\
         2 0.3 writev(9<TCP:[127.0.0.1:1->127.0.0.1:2]>, [{{iov_base=\"{hex}\", iov_len=8}}], 1) = 8\n"
    );
    let calls = parse_trace(&good);
    assert_durable_before_sent(&calls, &loss.to_le_bytes(), "the epoch");

    let bad = format!(
        "1 0.1 pwrite64(5</d/db/db>, \"{hex}\", 8, 0) = 8\n\
         1 0.2 fdatasync(5</d/db/db> <unfinished ...>\n\
         2 0.3 writev(9<TCP:[127.0.0.1:1->127.0.0.1:2]>, [{{iov_base=\"{hex}\", iov_len=8}}], 1) = 8\n\
         1 0.4 <... fdatasync resumed>) = 0\n"
    );
    let calls = parse_trace(&bad);
    let refused = std::panic::catch_unwind(|| {
        assert_durable_before_sent(&calls, &loss.to_le_bytes(), "the epoch");
    });
    assert!(
        refused.is_err(),
        "a sync that completes after the send must not count"
    );
}
