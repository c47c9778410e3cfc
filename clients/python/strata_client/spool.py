"""The spool: what a logger could not send, kept on the disk to be sent later.

One file per run, `CLIENT_KEY.spool` in the spool folder (`spool_dir=`, else `STRATA_SPOOL_DIR`,
else `$XDG_CACHE_HOME/strata/spool`, else `~/.cache/strata/spool`). Its format is the proto's
`SpoolEntry` framing, which `strata sync DIR` reads too: each entry is a 4-byte little-endian
length, a 4-byte little-endian CRC-32 of the payload, then the payload (a `SpoolEntry`). The first
entry is the header (the run's `CreateRunRequest` with its client key, and the daemon's address);
then epochs, steps and at most one finish, in the order they were logged. A reader stops at the
first short or damaged entry: a write torn by a crash loses that write only.

Durable: epochs and the finish are synced to the disk as they are written (steps at most a second
later). A logger holds an exclusive `flock` on its file while it is open, so `strata sync` leaves
a file alone while its logger still writes it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

from ._proto import pb

SUFFIX = ".spool"
_HEADER = struct.Struct("<II")
#: The largest entry a reader accepts (a batch is a few hundred KB at most).
MAX_ENTRY_BYTES = 64 << 20


def default_dir() -> Path:
    """Where spool files go when the logger is not told: `STRATA_SPOOL_DIR`, else the user's
    cache folder."""
    given = os.environ.get("STRATA_SPOOL_DIR")
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "strata" / "spool"


def frame(payload: bytes) -> bytes:
    """One entry: length, CRC-32, payload."""
    return _HEADER.pack(len(payload), zlib.crc32(payload) & 0xFFFFFFFF) + payload


class SpoolBusy(Exception):
    """Another process holds the spool file (its logger is still running)."""


class SpoolFile:
    """A run's spool file, open for appending, locked against other processes."""

    def __init__(self, path: Path, header: Any) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise SpoolBusy(f"{self.path} is held by another process") from None
            raise
        self._fd = fd
        self.size = os.fstat(fd).st_size
        self._unsynced = False
        if self.size == 0:
            self.append(pb.SpoolEntry(header=header), sync=True)
            _sync_dir(self.path.parent)

    def append(self, entry: Any, sync: bool) -> int:
        """Writes one `SpoolEntry`; syncs it to the disk now when `sync`. Returns its bytes."""
        data = frame(entry.SerializeToString())
        os.write(self._fd, data)
        self.size += len(data)
        self._unsynced = True
        if sync:
            self.sync()
        return len(data)

    def sync(self) -> None:
        if self._unsynced:
            os.fsync(self._fd)
            self._unsynced = False

    def close(self, remove: bool = False) -> None:
        """Closes (and unlocks) the file; removes it first when everything in it was sent."""
        if self._fd < 0:
            return
        if remove:
            os.unlink(self.path)
            _sync_dir(self.path.parent)
        else:
            self.sync()
        os.close(self._fd)
        self._fd = -1


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> Tuple[List[Any], Optional[str]]:
    """The entries of a spool file, up to the first short or damaged one, and why reading stopped
    there (None when it read to the end)."""
    entries: List[Any] = []
    data = Path(path).read_bytes()
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            return entries, f"{len(data) - offset} byte(s) at byte {offset} are not a whole entry (a write cut short)"
        length, crc = _HEADER.unpack_from(data, offset)
        if length == 0 or length > MAX_ENTRY_BYTES or offset + _HEADER.size + length > len(data):
            return entries, f"the entry at byte {offset} runs past the end of the file (a write cut short)"
        payload = data[offset + _HEADER.size : offset + _HEADER.size + length]
        if zlib.crc32(payload) & 0xFFFFFFFF != crc:
            return entries, f"the entry at byte {offset} does not match its checksum"
        try:
            entries.append(pb.SpoolEntry.FromString(payload))
        except Exception as e:  # a damaged payload that still matched its CRC: stop here
            return entries, f"the entry at byte {offset} does not decode ({e})"
        offset += _HEADER.size + length
    return entries, None


def files(folder: Path) -> Iterator[Path]:
    """The spool files in a folder, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return iter(())
    found = [p for p in folder.iterdir() if p.name.endswith(SUFFIX) and p.is_file()]
    return iter(sorted(found, key=lambda p: p.stat().st_mtime))


def is_busy(path: Path) -> bool:
    """Whether a logger still holds the file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
