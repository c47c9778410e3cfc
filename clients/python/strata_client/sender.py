"""The logger's background thread: everything a training loop logs goes through a bounded queue
to this thread, which alone talks to the daemon, so the loop never waits on the network.

What it does with the queue, in order:

- creates the run with the first record (CreateRun with the logger's client key, so a retry, a
  reconnect or `strata sync` finds the same run again);
- sends epochs (LogEpochs), steps (LogSteps) and the finish (FinishRun) in batches;
- keeps the run alive while nothing else is sent: a heartbeat (LogEpochs with no epochs) every
  quarter of the daemon's silence timeout;
- when the daemon cannot be reached, warns once and appends what it could not send to the spool
  file, then tries again every `retry_s`: on success it sends the spool (the daemon skips what it
  already holds) and removes it;
- when the daemon says the data is wrong, keeps its error for the logger to raise at the next
  call, and sends nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Deque, List, Optional, Tuple

from ._proto import enum_value, label, pb
from .client import StrataClient, StrataError
from .spool import SpoolFile, read as read_spool

log = logging.getLogger("strata_client")

#: The most epochs and steps one request carries, and the most bytes (the daemon takes 1 MiB).
MAX_EPOCHS_PER_CALL = 1000
MAX_STEPS_PER_CALL = 5000
MAX_CALL_BYTES = 512 * 1024
#: Steps are synced to the spool file at most this long after they are written.
SPOOL_STEP_SYNC_S = 1.0
#: Steps wait in the queue until this many are there, or the oldest waited this long (or an
#: epoch comes): waking the thread for every step would cost the loop more than the step's log.
STEPS_PER_WAKE = 500
STEP_WAIT_S = 1.0


@dataclass
class Item:
    """One thing the loop logged: `epoch` and `step` hold a record (dict, numbers maybe still
    0-d tensors) to turn into a message here; `finish` holds (status, reason)."""

    kind: str
    payload: Any


@dataclass
class Counts:
    epochs: int = 0
    steps: int = 0

    def add(self, kind: str, n: int = 1) -> None:
        if kind == "epoch":
            self.epochs += n
        elif kind == "step":
            self.steps += n


@dataclass
class CloseReport:
    """What `close()` achieved: the run, what was sent, what is left in the spool file (to be
    sent by `strata sync SPOOL_DIR`), what was dropped, and the daemon's error if it refused."""

    run_id: Optional[str]
    status: str
    sent: Counts = field(default_factory=Counts)
    spooled: Counts = field(default_factory=Counts)
    spool_path: Optional[Path] = None
    finish_spooled: bool = False
    dropped_steps: int = 0
    #: Epochs lost because neither the daemon nor the spool file could take them.
    dropped_epochs: int = 0
    error: Optional[StrataError] = None

    @property
    def complete(self) -> bool:
        """Everything logged reached the daemon."""
        return (
            self.spooled.epochs == 0
            and self.spooled.steps == 0
            and not self.finish_spooled
            and self.error is None
            and self.dropped_epochs == 0
        )

    def __str__(self) -> str:
        run = f"run {self.run_id}" if self.run_id else "the run (not created yet)"
        if self.error is not None:
            return f"strata: {run}: the daemon refused it: {self.error}"
        dropped = ""
        if self.dropped_epochs or self.dropped_steps:
            dropped = f" ({self.dropped_epochs} epoch(s) and {self.dropped_steps} step(s) dropped: neither stratad nor the spool could take them)"
        if self.complete:
            return f"strata: {run} {self.status}: {self.sent.epochs} epoch(s) and {self.sent.steps} step(s) sent{dropped}"
        left = f"{self.spooled.epochs} epoch(s) and {self.spooled.steps} step(s)"
        if self.finish_spooled:
            left += f" and its end ({self.status})"
        folder = self.spool_path.parent if self.spool_path else "the spool folder"
        if self.spool_path is None:
            return f"strata: {run}: nothing reached stratad{dropped}"
        return (
            f"strata: {run}: {left} left in the spool file {self.spool_path}: send them with "
            f"`strata sync {folder}` once stratad is reachable{dropped}"
        )


class Sender(threading.Thread):
    """Sends a run's records in order; see the module's docs."""

    def __init__(
        self,
        client: StrataClient,
        create: Any,
        spool_path: Path,
        *,
        heartbeat_s: Optional[float],
        retry_s: float,
        request_timeout_s: float,
        max_queued_steps: int,
        spool_max_bytes: int,
    ) -> None:
        super().__init__(name="strata-logger", daemon=True)
        self.client = client
        self.create = create
        self.spool_path = Path(spool_path)
        self.heartbeat_s = heartbeat_s
        self.retry_s = retry_s
        self.request_timeout_s = request_timeout_s
        self.max_queued_steps = max_queued_steps
        self.spool_max_bytes = spool_max_bytes

        self._cv = threading.Condition()
        self._queue: Deque[Item] = deque()
        self._queued_steps = 0
        self._oldest_step_at = 0.0
        self._flushing = 0
        self._busy = False
        self._deadline: Optional[float] = None

        self.run_id: Optional[str] = None
        self.error: Optional[StrataError] = None
        self.ended: Optional[str] = None
        self.sent = Counts()
        self.spooled = Counts()
        self.finish_spooled = False
        self.dropped_steps = 0
        self.dropped_epochs = 0
        self._steps_refused = False
        self._offline = False
        self._spool: Optional[SpoolFile] = None
        self._spool_synced_at = 0.0
        self._next_retry = 0.0
        self._last_call = time.monotonic()
        self._silence_s: Optional[float] = None
        self._warned: set = set()

    # The loop's side: never blocks on the network.

    def put(self, item: Item) -> None:
        with self._cv:
            if item.kind == "step":
                if self._queued_steps >= self.max_queued_steps:
                    self.dropped_steps += 1
                    self._warn_once(
                        "queue",
                        f"strata: {self.max_queued_steps} steps are waiting to be sent; further steps are dropped until they go (epochs never are)",
                    )
                    return
                if self._queued_steps == 0:
                    self._oldest_step_at = time.monotonic()
                self._queued_steps += 1
                self._queue.append(item)
                if self._queued_steps >= STEPS_PER_WAKE:
                    self._cv.notify_all()
                return
            self._queue.append(item)
            self._cv.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Waits until everything queued so far was sent or spooled; False on timeout."""
        end = time.monotonic() + timeout_s
        with self._cv:
            self._flushing += 1
            self._cv.notify_all()
            try:
                while self._queue or self._busy:
                    left = end - time.monotonic()
                    if left <= 0 or not self.is_alive():
                        return False
                    self._cv.wait(min(left, 0.1))
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout_s: float) -> None:
        """Sends (or spools) what is queued within `timeout_s`, then stops the thread."""
        with self._cv:
            self._deadline = time.monotonic() + timeout_s
            self._cv.notify_all()
        self.join(timeout_s)
        if self.is_alive():
            # A call still waits on a daemon that does not answer: end it; what is left goes to
            # the spool.
            self.client.abort()
            self.join(10.0)

    # The thread.

    def run(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._ready():
                        if not self._queue and self._deadline is not None and not self._waiting_to_close():
                            break
                        wait = self._idle_wait()
                        if self._queue:  # steps only, fewer than a wake's worth
                            wait = min(wait, self._oldest_step_at + STEP_WAIT_S - time.monotonic())
                        if self._deadline is not None:
                            wait = min(wait, self._deadline - time.monotonic())
                        if wait <= 0:
                            break
                        self._cv.wait(wait)
                    items = self._take()
                    closing = self._deadline is not None
                    self._busy = bool(items)
                try:
                    if items:
                        self._handle(items)
                    elif closing and not self._waiting_to_close():
                        break
                    else:
                        self._idle()
                finally:
                    with self._cv:
                        self._busy = False
                        self._cv.notify_all()
        except Exception as e:  # never let the thread die silently: the logger reports it
            self.error = StrataError("INTERNAL", f"the logger's thread stopped: {e!r}")
            log.exception("strata: the logger's thread stopped")
        finally:
            self._finish_spool()

    def _ready(self) -> bool:
        """Whether the queue is worth a send now: an epoch or an end waits in it, enough steps,
        steps that waited long enough, or someone waits for it to empty."""
        if not self._queue:
            return False
        if self._deadline is not None or self._flushing or len(self._queue) > self._queued_steps:
            return True
        return self._queued_steps >= STEPS_PER_WAKE or time.monotonic() - self._oldest_step_at >= STEP_WAIT_S

    def _waiting_to_close(self) -> bool:
        """Closing, with records in the spool and time left to send them: the daemon is retried
        until the deadline."""
        left = self._closing_left()
        return self._offline and self.error is None and left is not None and left > 0

    def _take(self) -> List[Item]:
        """Up to a few batches' worth of the queue, in order."""
        items: List[Item] = []
        while self._queue and len(items) < 4 * MAX_STEPS_PER_CALL:
            item = self._queue.popleft()
            if item.kind == "step":
                self._queued_steps -= 1
            items.append(item)
        return items

    def _idle_wait(self) -> float:
        now = time.monotonic()
        if self._offline and self.error is None:
            return self._next_retry - now
        beat = self._heartbeat_interval()
        if beat is not None and self.run_id is not None and self.ended is None and self.error is None:
            return self._last_call + beat - now
        return 3600.0

    def _heartbeat_interval(self) -> Optional[float]:
        if self.heartbeat_s is not None:
            return self.heartbeat_s
        if self._silence_s is None:
            return None
        return min(60.0, max(0.2, self._silence_s / 4))

    def _closing_left(self) -> Optional[float]:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _timeout(self) -> float:
        left = self._closing_left()
        if left is None:
            return self.request_timeout_s
        return max(0.5, min(self.request_timeout_s, left))

    # What it does with records.

    def _handle(self, items: List[Item]) -> None:
        if self.error is not None or self.ended is not None:
            self._drop(items)
            return
        left = self._closing_left()
        if left is not None and left <= 0:
            # Out of time: what is left goes to the spool, for `strata sync`.
            self._to_spool(items)
            return
        if self._offline:
            due = time.monotonic() >= self._next_retry
            if not (due and self._reconnect()):
                self._to_spool(items)
                return
        try:
            self._send(items)
        except _Unsent as unsent:
            self._go_offline(unsent.error, unsent.items)
        except StrataError as e:
            self._refused(e)

    def _drop(self, items: List[Item]) -> None:
        if self.ended is not None and any(i.kind in ("epoch", "step") for i in items):
            self._warn_once(
                "ended",
                f"strata: run {self.run_id} is {self.ended}; what is logged after that is not sent",
            )

    def _idle(self) -> None:
        if self._offline:
            if self.error is None and time.monotonic() >= self._next_retry:
                self._reconnect()
            return
        if self.run_id is None or self.ended is not None or self.error is not None:
            return
        try:
            self._call(lambda t: self.client.log_epochs(self.run_id, [], timeout_s=t), retry_ended=True)
        except _Unsent as unsent:
            self._go_offline(unsent.error, [])
        except StrataError as e:
            self._refused(e)

    def _refused(self, error: StrataError) -> None:
        if self.error is None:
            self.error = error
            log.error("strata: the daemon refused what was logged: %s", error)

    def _ensure_run(self) -> None:
        if self.run_id is not None:
            return
        try:
            response = self.client.create_run(self.create, timeout_s=self._timeout())
        except StrataError as e:
            if e.unreachable:
                raise _Unsent(e, []) from None
            raise
        self._created(response)

    def _created(self, response: Any) -> None:
        run = response.run
        self.run_id = run.id
        if response.silence_timeout_ms:
            self._silence_s = response.silence_timeout_ms / 1000.0
        self._last_call = time.monotonic()
        status = label("RunStatus", run.status)
        if status != "running":
            self.ended = status

    def _call(self, call: Any, retry_ended: bool) -> Any:
        """Makes one call (`call(timeout_s)`); a run the daemon interrupted while it heard nothing
        is found again (and continued) by its key, and the call made once more."""
        try:
            result = call(self._timeout())
        except StrataError as e:
            if e.unreachable:
                raise _Unsent(e, []) from None
            if not (retry_ended and e.code == "FAILED_PRECONDITION" and self._reattach()):
                raise
            try:
                result = call(self._timeout())
            except StrataError as e:
                if e.unreachable:
                    raise _Unsent(e, []) from None
                raise
        self._last_call = time.monotonic()
        return result

    def _reattach(self) -> bool:
        """CreateRun again with the key: true when the run is running (again)."""
        try:
            response = self.client.create_run(self.create, timeout_s=self._timeout())
        except StrataError as e:
            if e.unreachable:
                raise _Unsent(e, []) from None
            raise
        self._created(response)
        return self.ended is None

    def _send(self, items: List[Item]) -> None:
        """Sends the items in order, in batches; on a failure to reach the daemon raises
        `_Unsent` with what is left (the failed batch included: resent, it is skipped)."""
        try:
            self._ensure_run()
        except _Unsent as unsent:
            raise _Unsent(unsent.error, items) from None
        for start, end, kind in _runs_of(items):
            batch = items[start:end]
            try:
                self._send_batch(kind, batch)
            except _Unsent as unsent:
                raise _Unsent(unsent.error, items[start:]) from None

    def _send_batch(self, kind: str, batch: List[Item]) -> None:
        if self.ended is not None:
            self._drop(batch)
            return
        if kind == "epoch":
            for chunk in _chunks([_epoch_message(i.payload) for i in batch], MAX_EPOCHS_PER_CALL):
                response = self._call(lambda t: self.client.log_epochs(self.run_id, chunk, timeout_s=t), True)
                self.sent.add("epoch", response.stored)
                if label("RunStatus", response.status) == "diverged":
                    self.ended = "diverged"
                    log.warning("strata: run %s diverged (a non-finite loss): the daemon takes no more epochs", self.run_id)
                    return
        elif kind == "step":
            if self._steps_refused:
                return
            for chunk in _chunks([_step_message(i.payload) for i in batch], MAX_STEPS_PER_CALL):
                try:
                    response = self._call(lambda t: self.client.log_steps(self.run_id, chunk, timeout_s=t), True)
                except _Unsent as unsent:
                    if unsent.error.code != "RESOURCE_EXHAUSTED":
                        raise
                    self._steps_refused = True
                    log.warning("strata: %s; steps are no longer sent (epochs are)", unsent.error.message)
                    return
                self.sent.add("step", response.stored)
        else:
            status, reason = batch[-1].payload
            self._call(lambda t: self.client.finish_run(self.run_id, status, reason, timeout_s=t), True)
            self.ended = status

    # Offline: the spool.

    def _go_offline(self, error: StrataError, items: List[Item]) -> None:
        if not self._offline:
            self._offline = True
            self._warn_once(
                "offline",
                f"strata: cannot reach stratad at {self.client.addr} ({error.code}: {error.message}); "
                f"training goes on, and what is logged is kept in {self.spool_path} and sent when it is "
                f"back (tried every {self.retry_s:g} s)",
            )
        self._next_retry = time.monotonic() + self.retry_s
        self._to_spool(items)

    def _open_spool(self) -> SpoolFile:
        if self._spool is None:
            header = pb.SpoolHeader(
                create=self.create,
                addr=self.client.addr,
                tls_ca=self.client.tls_ca or "",
                created_at_ms=int(time.time() * 1000),
            )
            self._spool = SpoolFile(self.spool_path, header)
        return self._spool

    def _to_spool(self, items: List[Item]) -> None:
        """Appends the items to the spool file; if it cannot be written (a full disk, a folder
        not writable), they are dropped, counted, and said once — the loop goes on."""
        if not items:
            return
        try:
            self._write_spool(items)
        except OSError as e:
            for item in items:
                if item.kind == "epoch":
                    self.dropped_epochs += 1
                elif item.kind == "step":
                    self.dropped_steps += 1
            self._warn_once(
                "spool-unwritable",
                f"strata: cannot write the spool file {self.spool_path} ({e}); what stratad cannot take now is dropped (counted in close()'s report)",
            )

    def _write_spool(self, items: List[Item]) -> None:
        spool = self._open_spool()
        sync = False
        for start, end, kind in _runs_of(items):
            batch = items[start:end]
            if kind == "epoch":
                for chunk in _chunks([_epoch_message(i.payload) for i in batch], MAX_EPOCHS_PER_CALL):
                    spool.append(pb.SpoolEntry(epochs=pb.LogEpochsRequest(epochs=chunk)), sync=False)
                self.spooled.add("epoch", len(batch))
                sync = True
            elif kind == "step":
                if spool.size >= self.spool_max_bytes:
                    self.dropped_steps += len(batch)
                    self._warn_once(
                        "spool-full",
                        f"strata: the spool file {self.spool_path} holds {spool.size} bytes, its limit: further steps are dropped while stratad is away (epochs never are)",
                    )
                    continue
                for chunk in _chunks([_step_message(i.payload) for i in batch], MAX_STEPS_PER_CALL):
                    spool.append(pb.SpoolEntry(steps=pb.LogStepsRequest(steps=chunk)), sync=False)
                self.spooled.add("step", len(batch))
            else:
                status, reason = batch[-1].payload
                finish = pb.FinishRunRequest(
                    status=enum_value("RunStatus", f"RUN_STATUS_{status.upper()}"), reason=reason
                )
                spool.append(pb.SpoolEntry(finish=finish), sync=False)
                self.finish_spooled = True
                sync = True
        now = time.monotonic()
        if sync or now - self._spool_synced_at >= SPOOL_STEP_SYNC_S:
            spool.sync()
            self._spool_synced_at = now

    def _reconnect(self) -> bool:
        """Sends the spool (or just finds the run again); true when back online."""
        try:
            if self._spool is not None:
                self._spool.sync()
                entries, _ = read_spool(self.spool_path)
                result = replay(self.client, entries, self._timeout())
                self.run_id = result.run_id
                self._silence_s = result.silence_s or self._silence_s
                self.sent.epochs += self.spooled.epochs
                self.sent.steps += self.spooled.steps
                if self.finish_spooled:
                    self.ended = result.status
                self.spooled = Counts()
                self.finish_spooled = False
                self._spool.close(remove=True)
                self._spool = None
            else:
                response = self.client.create_run(self.create, timeout_s=self._timeout())
                self._created(response)
        except StrataError as e:
            if e.unreachable:
                self._next_retry = time.monotonic() + self.retry_s
                return False
            self._offline = False
            self._refused(e)
            return False
        self._offline = False
        self._last_call = time.monotonic()
        log.info("strata: stratad at %s is back; run %s is up to date", self.client.addr, self.run_id)
        return True

    def _finish_spool(self) -> None:
        if self._spool is not None:
            self._spool.close(remove=False)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)


class _Unsent(Exception):
    """The daemon could not be reached: `items` were not (all) sent."""

    def __init__(self, error: StrataError, items: List[Item]) -> None:
        super().__init__(str(error))
        self.error, self.items = error, items


def _runs_of(items: List[Item]) -> List[Tuple[int, int, str]]:
    """Consecutive items of one kind: (start, end, kind)."""
    runs: List[Tuple[int, int, str]] = []
    start = 0
    for i in range(1, len(items) + 1):
        if i == len(items) or items[i].kind != items[start].kind or items[i].kind == "finish":
            runs.append((start, i, items[start].kind))
            start = i
    return runs


def _chunks(messages: List[Any], most: int) -> List[List[Any]]:
    """Batches of at most `most` messages and about `MAX_CALL_BYTES`."""
    chunks: List[List[Any]] = []
    chunk: List[Any] = []
    size = 0
    for m in messages:
        n = m.ByteSize() + 8
        if chunk and (len(chunk) >= most or size + n > MAX_CALL_BYTES):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(m)
        size += n
    if chunk:
        chunks.append(chunk)
    return chunks


def _number(value: Any) -> float:
    return float(value)


def _epoch_message(e: dict) -> Any:
    """An `EpochRecord` from what `log_epoch` queued (0-d tensors read now, off the loop)."""
    record = pb.EpochRecord(
        epoch=e["epoch"],
        train_loss=_number(e["train_loss"]),
        duration_ms=_number(e["duration_ms"]),
        samples_per_sec=_number(e.get("samples_per_sec", 0.0)),
        groups=[
            pb.GroupEpochStats(
                name=g["name"],
                lr=_number(g["lr"]),
                grad_norm=_number(g["grad_norm"]),
                weight_norm=_number(g["weight_norm"]),
                update_ratio=_number(g["update_ratio"]),
                frozen=bool(g["frozen"]),
            )
            for g in e["groups"]
        ],
        extra={k: _number(v) for k, v in e["extra"].items()},
    )
    if e.get("val_loss") is None:
        record.no_validation = True
    else:
        record.val_loss = _number(e["val_loss"])
        if e.get("val_accuracy") is not None:
            record.val_accuracy = _number(e["val_accuracy"])
        elif e.get("val_r2") is not None:
            record.val_r2 = _number(e["val_r2"])
    return record


def _step_message(s: dict) -> Any:
    return pb.StepRecord(step=s["step"], epoch=s["epoch"], scalars={k: _number(v) for k, v in s["scalars"].items()})


@dataclass
class ReplayResult:
    run_id: str
    status: str
    silence_s: Optional[float]
    epochs_stored: int = 0
    steps_stored: int = 0
    finished: bool = False
    created: bool = False


def replay(client: StrataClient, entries: List[Any], timeout_s: Optional[float] = None) -> ReplayResult:
    """Sends a spool's entries (its header first): the run is found again by its client key (or
    created), then its epochs, steps and end go in order; what the daemon holds already is skipped
    by it, so a spool may be replayed any number of times. A run that has ended takes nothing
    more: its spooled epochs must all be stored already (else FAILED_PRECONDITION says so)."""
    if not entries or entries[0].WhichOneof("entry") != "header":
        raise StrataError("INVALID_ARGUMENT", "the spool does not start with its header")
    response = client.create_run(entries[0].header.create, timeout_s=timeout_s)
    run = response.run
    result = ReplayResult(
        run_id=run.id,
        status=label("RunStatus", run.status),
        silence_s=response.silence_timeout_ms / 1000.0 if response.silence_timeout_ms else None,
        created=not response.existing,
    )
    ended = result.status != "running"
    epochs: List[Any] = []
    steps: List[Any] = []

    def send_epochs() -> None:
        for chunk in _chunks(epochs, MAX_EPOCHS_PER_CALL):
            if ended:
                beyond = [e.epoch for e in chunk if e.epoch > run.epochs_done]
                if beyond:
                    raise StrataError(
                        "FAILED_PRECONDITION",
                        f"run {run.id} is {result.status} with {run.epochs_done} epoch(s); the spool holds epochs up to {beyond[-1]}, which it can no longer take",
                    )
                continue
            answer = client.log_epochs(run.id, chunk, timeout_s=timeout_s)
            result.epochs_stored += answer.stored
        epochs.clear()

    def send_steps() -> None:
        if not ended:
            for chunk in _chunks(steps, MAX_STEPS_PER_CALL):
                try:
                    result.steps_stored += client.log_steps(run.id, chunk, timeout_s=timeout_s).stored
                except StrataError as e:
                    if e.code != "RESOURCE_EXHAUSTED":
                        raise
                    break
        steps.clear()

    for entry in entries[1:]:
        kind = entry.WhichOneof("entry")
        if kind != "epochs" and epochs:
            send_epochs()
        if kind != "steps" and steps:
            send_steps()
        if kind == "epochs":
            epochs.extend(entry.epochs.epochs)
        elif kind == "steps":
            steps.extend(entry.steps.steps)
        elif kind == "finish" and not ended:
            finished = client.call("FinishRun", pb.FinishRunRequest(run=run.id, status=entry.finish.status, reason=entry.finish.reason), timeout_s)
            result.status = label("RunStatus", finished.run.status)
            result.finished = ended = True
    send_epochs()
    send_steps()
    return result
