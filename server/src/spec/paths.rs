//! Which files a client may make the daemon read: only under the directories the operator allows
//! (`--data-root DIR`, repeatable; by default the daemon's working directory), after symlinks are
//! resolved, and only regular files, read up to a byte limit whatever the file claims.
//!
//! A path outside the roots is refused with the same message whether or not it exists, so a
//! client cannot probe the host's files; errors name the path the client sent, never contents.

use std::{
    cell::RefCell,
    fs::File,
    io::{self, Read},
    os::unix::fs::OpenOptionsExt,
    path::{Component, Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use super::{dataset::DataSource, dataset::Validation, model::ModelSpec, RunSpec};
use crate::error::{Result, StrataError};

/// The directories client-named files may be read from, resolved (absolute, symlinks followed).
#[derive(Clone, Debug, Default)]
pub struct DataRoots {
    roots: Vec<PathBuf>,
    /// Whether clients may name TorchScript modules, which are code (see [`DataRoots::confine`]).
    torchscript: bool,
}

impl DataRoots {
    /// Resolves each root; a root that does not exist is an error for the operator.
    pub fn new(roots: &[PathBuf]) -> io::Result<Self> {
        let roots = roots
            .iter()
            .map(|root| {
                std::fs::canonicalize(root).map_err(|e| {
                    io::Error::new(e.kind(), format!("data root {}: {e}", root.display()))
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(DataRoots {
            roots,
            torchscript: false,
        })
    }

    /// Allows (or not) `torchscript:PATH` models under the roots.
    pub fn with_torchscript(self, allowed: bool) -> Self {
        DataRoots {
            torchscript: allowed,
            ..self
        }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Whether a root is `/` itself: every file the daemon may read is then open to clients.
    pub fn allows_everything(&self) -> bool {
        self.roots.iter().any(|root| root.parent().is_none())
    }

    fn describe(&self) -> String {
        if self.roots.is_empty() {
            "no directory is allowed (start stratad with --data-root DIR)".into()
        } else {
            let list: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
            format!("allowed: files under {}", list.join(", "))
        }
    }

    fn under_a_root(&self, path: &Path) -> bool {
        self.roots.iter().any(|root| path.starts_with(root))
    }

    /// The real path of `path` (absolute), if it lies under a root; else the refusal, the same
    /// whether or not the file exists.
    pub fn resolve(&self, field: &str, path: &Path) -> Result<PathBuf> {
        let outside = || {
            StrataError::invalid(
                field,
                format!(
                    "{} is outside the directories stratad may read; {}",
                    super::shown(&path.display().to_string()),
                    self.describe()
                ),
            )
        };
        // First without touching the disk, so nothing is learnt about paths outside the roots.
        let lexical = normalize(path).ok_or_else(outside)?;
        if !self.under_a_root(&lexical) {
            return Err(outside());
        }
        let real = std::fs::canonicalize(&lexical).map_err(|e| {
            StrataError::invalid(
                field,
                format!(
                    "cannot read {}: {e}",
                    super::shown(&path.display().to_string())
                ),
            )
        })?;
        // A symlink under a root may point anywhere; and a root of `/` must still not expose
        // the kernel's own files.
        if !self.under_a_root(&real) || is_special_filesystem(&real) {
            return Err(outside());
        }
        Ok(real)
    }

    /// Replaces every path in `spec` by its real path under a root, or refuses the spec.
    pub fn confine(&self, spec: &mut RunSpec) -> Result<()> {
        match &mut spec.dataset.source {
            DataSource::Csv { path, .. } => *path = self.resolve("dataset", path)?,
            DataSource::Idx { dir } => *dir = self.resolve("dataset", dir)?,
            DataSource::Synthetic(_) => {}
        }
        if let Validation::CsvFile(path) = &mut spec.dataset.validation {
            *path = self.resolve("val_dataset", path)?;
        }
        if let ModelSpec::TorchScript { path } = &mut spec.model {
            *path = self.resolve_torchscript(path)?;
        }
        Ok(())
    }

    /// The real path of a TorchScript module under a root, if TorchScript is allowed at all.
    pub fn resolve_torchscript(&self, path: &Path) -> Result<PathBuf> {
        // A TorchScript module is a program: loading and running it can read and write any
        // file stratad (and its workers) can, or never return. Only an operator who trusts every
        // client (and every file under the roots) turns this on.
        if !self.torchscript {
            return Err(StrataError::invalid(
                "model",
                "TorchScript modules run code with stratad's rights (they can read and write any file it can, or never return), so stratad refuses them unless started with --allow-torchscript",
            ));
        }
        self.resolve("model", path)
    }
}

/// Kernel filesystems whose "regular files" are views of processes, devices and the kernel.
const SPECIAL_FILESYSTEMS: [&str; 3] = ["/proc", "/sys", "/dev"];

fn is_special_filesystem(path: &Path) -> bool {
    SPECIAL_FILESYSTEMS
        .iter()
        .any(|special| path.starts_with(special))
}

/// `path` made absolute with `.` and `..` taken out lexically; `None` for a relative path.
fn normalize(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
        }
    }
    Some(out)
}

thread_local! {
    /// Set while this thread reads files for a request: raised when the request is abandoned.
    static ABANDONED: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// While the returned guard lives, files opened on this thread with [`open_regular`] stop being
/// read (an error) once `abandoned` is raised: a request whose client went away stops reading its
/// dataset instead of finishing work nobody will see. The flag is per thread so the readers deep
/// in the CSV and IDX parsers need no parameter for it.
pub fn abandon_reads_when(abandoned: Arc<AtomicBool>) -> impl Drop {
    struct Scope;
    impl Drop for Scope {
        fn drop(&mut self) {
            ABANDONED.with(|flag| flag.borrow_mut().take());
        }
    }
    ABANDONED.with(|flag| *flag.borrow_mut() = Some(abandoned));
    Scope
}

/// Raises its flag when dropped: held by an async request handler, it tells the blocking work
/// started for the request that nobody waits for it any more.
pub struct RaiseOnDrop(pub Arc<AtomicBool>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Opens a client-named file for reading: only a regular file (never a FIFO, a device or a
/// socket: opened non-blocking and checked on the open descriptor, so a swap after a check cannot
/// make the read block), at most `max_bytes` long. The reader stops at `max_bytes + 1`, so a file
/// that grows, or lies about its size, is still caught by [`LimitedRead::check`].
///
/// The last component must not be a symlink (`O_NOFOLLOW`): paths are resolved and confined when
/// a run is checked, and a link put in place later (or a link inside an `idx:` folder) is refused
/// rather than followed out of the data roots.
pub fn open_regular(path: &Path, max_bytes: u64) -> io::Result<LimitedRead> {
    if is_special_filesystem(path) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a file of /proc, /sys or /dev, which are never read",
        ));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::InvalidInput,
                "a symbolic link, which is not followed here",
            ),
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > max_bytes {
        return Err(too_big(meta.len(), max_bytes));
    }
    Ok(LimitedRead {
        inner: file.take(max_bytes + 1),
        max_bytes,
        abandoned: ABANDONED.with(|flag| flag.borrow().clone()),
    })
}

fn too_big(size: u64, max_bytes: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{size} bytes or more; at most {max_bytes} bytes are read"),
    )
}

/// A file read up to a byte limit; reading past it is an error, and so is reading on after the
/// request it is read for was abandoned.
pub struct LimitedRead {
    inner: io::Take<File>,
    max_bytes: u64,
    abandoned: Option<Arc<AtomicBool>>,
}

impl Read for LimitedRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self
            .abandoned
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            // Not `Interrupted`: `read_line`, `read_exact` and `io::copy` retry on that, forever.
            return Err(io::Error::other("the request was abandoned by its client"));
        }
        let read = self.inner.read(buf)?;
        if self.inner.limit() == 0 {
            return Err(too_big(self.max_bytes + 1, self.max_bytes));
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_roots_are_refused_alike_whether_they_exist_or_not() {
        let allowed = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(allowed.path().join("a.csv"), "x,y\n1,2\n").unwrap();
        std::fs::write(other.path().join("secret.csv"), "k\n").unwrap();
        std::os::unix::fs::symlink(
            other.path().join("secret.csv"),
            allowed.path().join("link.csv"),
        )
        .unwrap();
        let roots = DataRoots::new(&[allowed.path().to_path_buf()]).unwrap();

        let ok = roots
            .resolve("dataset", &allowed.path().join("a.csv"))
            .unwrap();
        assert!(ok.ends_with("a.csv"));
        let refusal = |path: PathBuf| roots.resolve("dataset", &path).unwrap_err().to_string();
        let exists = refusal(other.path().join("secret.csv"));
        let missing = refusal(other.path().join("nothing.csv"));
        assert!(exists.contains("outside the directories"), "{exists}");
        assert_eq!(
            exists.replace("secret", "nothing"),
            missing,
            "the same answer for a file that exists and one that does not"
        );
        assert!(refusal(allowed.path().join("../x/../../etc/passwd")).contains("outside"));
        assert!(refusal(allowed.path().join("link.csv")).contains("outside"));
        assert!(roots
            .resolve("dataset", &allowed.path().join("none.csv"))
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
        let none = DataRoots::new(&[]).unwrap();
        assert!(none
            .resolve("dataset", &allowed.path().join("a.csv"))
            .unwrap_err()
            .to_string()
            .contains("--data-root"));
    }

    #[test]
    fn reading_stops_once_the_request_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![b'a'; 1 << 16]).unwrap();
        let abandoned = Arc::new(AtomicBool::new(false));
        let _scope = abandon_reads_when(abandoned.clone());
        let mut reader = open_regular(&file, 1 << 20).unwrap();
        let mut buf = [0u8; 1024];
        assert_eq!(reader.read(&mut buf).unwrap(), 1024);
        drop(RaiseOnDrop(abandoned));
        let err = reader.read(&mut buf).unwrap_err();
        assert!(err.to_string().contains("abandoned"), "{err}");
        // The readers that retry on `Interrupted` stop too (they used to spin forever).
        let mut line = String::new();
        let err = std::io::BufRead::read_line(&mut std::io::BufReader::new(reader), &mut line)
            .unwrap_err();
        assert!(err.to_string().contains("abandoned"), "{err}");
        // Outside the scope (another thread), files read as usual.
        let other = std::thread::spawn(move || {
            let mut text = Vec::new();
            open_regular(&file, 1 << 20)
                .unwrap()
                .read_to_end(&mut text)
                .map(|_| text.len())
        });
        assert_eq!(other.join().unwrap().unwrap(), 1 << 16);
    }

    #[test]
    fn only_regular_files_are_read_and_only_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![b'a'; 100]).unwrap();
        let mut text = String::new();
        open_regular(&file, 100)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.len(), 100);
        assert!(open_regular(&file, 99).is_err(), "bigger than the limit");
        assert!(open_regular(Path::new("/dev/zero"), 1 << 20).is_err());
        assert!(open_regular(dir.path(), 1 << 20).is_err(), "a directory");
        std::os::unix::fs::symlink(&file, dir.path().join("link")).unwrap();
        let err = open_regular(&dir.path().join("link"), 1 << 20)
            .err()
            .unwrap();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = open_regular(Path::new("/proc/self/environ"), 1 << 20)
            .err()
            .unwrap();
        assert!(err.to_string().contains("/proc"), "{err}");
        let everything = DataRoots::new(&[PathBuf::from("/")]).unwrap();
        assert!(everything.allows_everything());
        assert!(everything
            .resolve("dataset", Path::new("/proc/self/cmdline"))
            .is_err());
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let err = open_regular(&fifo, 1 << 20)
                .err()
                .expect("a FIFO is refused");
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
    }
}
