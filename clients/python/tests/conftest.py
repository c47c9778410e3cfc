"""The package's own tests run against a real `stratad` (and `strata` for `strata sync`): the
binaries from `STRATA_BIN_DIR`, else the checkout's `target/debug` when this is a checkout. Each
daemon listens on 127.0.0.1:0 with a fresh data dir; its port is read from its first line."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

HERE = Path(__file__).resolve().parent


def bin_dir() -> Optional[Path]:
    given = os.environ.get("STRATA_BIN_DIR")
    if given:
        return Path(given)
    checkout = HERE.parent.parent.parent / "target" / "debug"
    return checkout if (checkout / "stratad").exists() else None


def binary(name: str) -> Path:
    folder = bin_dir()
    if folder is None or not (folder / name).exists():
        pytest.skip(f"{name} is not built: set STRATA_BIN_DIR to the folder holding stratad and strata")
    return folder / name


class Daemon:
    """A running stratad."""

    def __init__(self, data_dir: Path, args: List[str], listen: str = "127.0.0.1:0") -> None:
        self.data_dir = data_dir
        self.args = args
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
        env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", RUST_LOG="info")
        self.log_path = data_dir.with_suffix(".log")
        self.process = subprocess.Popen(
            [str(binary("stratad")), "--listen", listen, "--data-dir", str(data_dir), "--threads", "1",
             "--dashboard-listen", "off", *args],
            stdout=subprocess.PIPE,
            stderr=open(self.log_path, "ab"),
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith("stratad listening on "):
            self.process.kill()
            raise RuntimeError(f"stratad did not start: {line!r}\n{self.log_path.read_text()}")
        self.port = int(line.rsplit(":", 1)[1])
        self.addr = f"127.0.0.1:{self.port}"
        # Keep reading its stdout so it never blocks on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def strata(self, *args: str, addr: Optional[str] = None, env: Optional[dict] = None) -> subprocess.CompletedProcess:
        """Runs the `strata` CLI against this daemon (or `addr`)."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
        environ.update(env or {})
        return subprocess.run(
            [str(binary("strata")), "--addr", addr or f"http://{self.addr}", *args],
            capture_output=True, text=True, env=environ, timeout=120,
        )


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator:
    """`start_daemon(*args)` → a Daemon on a fresh data dir (or `data_dir=`, `listen=`)."""
    started: List[Daemon] = []

    def start(*args: str, data_dir: Optional[Path] = None, listen: str = "127.0.0.1:0") -> Daemon:
        daemon = Daemon(data_dir or tmp_path / f"data{len(started)}", list(args), listen)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def daemon(start_daemon) -> Daemon:
    return start_daemon()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture(autouse=True)
def _no_strata_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("STRATA_") and key != "STRATA_BIN_DIR":
            monkeypatch.delenv(key)


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch is not installed")


def openssl_or_skip() -> str:
    found = shutil.which("openssl")
    if found is None:
        pytest.skip("openssl is not installed (it makes the TLS test's certificate)")
    return found
