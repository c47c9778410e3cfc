"""StrataLogger: one run logged from a PyTorch training loop, which it never slows down or fails.

    with StrataLogger("127.0.0.1:50051", name="cifar", optimizer=opt, model=model,
                      task="classification", classes=10) as log:
        for epoch in range(epochs):
            for batch in loader:
                ...
                log.log(step=global_step, train_loss=loss)       # per step: any scalars
            log.log_epoch(train_loss=tl, val_loss=vl, val_accuracy=acc)
    print(log.run_id)

Each call checks its arguments, measures what it must, queues a record and returns: a background
thread sends it (see `sender`). The run is created with the first record. When stratad cannot be
reached, records go to a spool file (one warning names it) and are sent when it is back — or by
`strata sync SPOOL_DIR` later. `close()` (or leaving the `with` block) waits at most
`close_timeout_s` for the rest to be sent and says what it left in the spool.
"""

from __future__ import annotations

import atexit
import logging
import math
import re
import sys
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .client import StrataClient, StrataError, create_request
from .sender import CloseReport, Item, Sender
from .spool import SUFFIX, default_dir
from .stats import GroupStatistics, group_name

log = logging.getLogger("strata_client")

Number = Union[float, int, Any]  # a Python number, or a 0-d tensor

_NAME = re.compile(r"^[A-Za-z0-9_./-]{1,64}$")
MAX_EXTRA_SCALARS = 64
MAX_STEP_SCALARS = 32
MAX_HYPERPARAMETERS = 64
MAX_HYPERPARAMETER_VALUE_CHARS = 200
MAX_HYPERPARAMETER_KEY_CHARS = 64


class StrataLogger:
    """Logs one run. The run's groups are the param groups of `optimizer` (named by their `name`
    key, else `group0`, `group1`, ...), or `groups=[(name, lr), ...]` without an optimizer.

    At each `log_epoch`, per group: its current `lr`, the mean L2 norm of its gradients over
    sampled optimizer steps, the L2 norm of its weights, and ‖w − w_prev‖ / ‖w_prev‖ since the
    previous `log_epoch` — measured with no second copy of the weights on the accelerator (see
    `stats`; `statistics=False` measures nothing).

    Where things go: `addr` (default `STRATA_ADDR`, else 127.0.0.1:50051), `token` (default
    `STRATA_TOKEN`), `tls_ca` (default `STRATA_TLS_CA`), `spool_dir` (default `STRATA_SPOOL_DIR`,
    else `~/.cache/strata/spool`). `client_key` names the run for retries and `strata sync` (a
    random one by default).
    """

    def __init__(
        self,
        addr: Optional[str] = None,
        name: str = "",
        optimizer: Any = None,
        model: Any = None,
        task: str = "classification",
        classes: Optional[int] = None,
        target_variance: Optional[float] = None,
        token: Optional[str] = None,
        tls_ca: Optional[str] = None,
        tags: Iterable[str] = (),
        hyperparameters: Optional[Dict[str, Any]] = None,
        dataset: str = "",
        model_description: str = "",
        train_rows: int = 0,
        val_rows: int = 0,
        steps_per_epoch: int = 0,
        *,
        groups: Optional[Sequence[Tuple[str, float]]] = None,
        client_key: Optional[str] = None,
        spool_dir: Union[str, Path, None] = None,
        statistics: bool = True,
        grad_norm_every: int = 8,
        update_ratios: bool = True,
        heartbeat_s: Optional[float] = None,
        retry_s: float = 5.0,
        request_timeout_s: float = 10.0,
        close_timeout_s: float = 15.0,
        max_queued_steps: int = 100_000,
        spool_max_bytes: int = 256 << 20,
    ) -> None:
        if optimizer is None and not groups:
            raise ValueError(
                "StrataLogger needs optimizer=... (its param groups are the run's groups), or groups=[(name, lr), ...]"
            )
        self.task = task
        self._optimizer = optimizer
        if optimizer is not None:
            run_groups = [(group_name(g, i), float(g["lr"])) for i, g in enumerate(optimizer.param_groups)]
            params = [p for g in optimizer.param_groups for p in g["params"]]
            parameter_count = sum(p.numel() for p in params if p.requires_grad)
        else:
            run_groups = [(str(n), float(lr)) for n, lr in (groups or [])]
            parameter_count = 0
        self._groups = run_groups
        hp: Dict[str, Any] = {}
        if optimizer is not None:
            # The optimizer a wrapper (Accelerate's, Lightning's) holds, by its own name.
            inner = optimizer
            while type(inner).__name__ in ("AcceleratedOptimizer", "LightningOptimizer") and hasattr(inner, "optimizer"):
                inner = inner.optimizer
            hp["optimizer"] = type(inner).__name__
        hp.update(hyperparameters or {})
        self.client_key = client_key or uuid.uuid4().hex
        if not re.match(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$", self.client_key):
            raise ValueError("client_key is 1 to 64 letters, digits and _ . - (not starting with .)")
        self._create = create_request(
            name=name,
            dataset=dataset or "(not described)",
            model=model_description or (type(model).__name__ if model is not None else "(not described)"),
            groups=run_groups,
            task=task,
            classes=classes,
            target_variance=target_variance,
            tags=tags,
            hyperparameters=_plain_hyperparameters(hp),
            parameter_count=parameter_count,
            train_rows=train_rows,
            val_rows=val_rows,
            steps_per_epoch=steps_per_epoch,
            client_key=self.client_key,
        )
        self.train_rows = int(train_rows)
        self.spool_dir = Path(spool_dir) if spool_dir is not None else default_dir()
        self.spool_path = self.spool_dir / f"{self.client_key}{SUFFIX}"
        self.close_timeout_s = close_timeout_s
        self._client = StrataClient(addr, token=token, tls_ca=tls_ca, timeout_s=request_timeout_s)
        self._stats = (
            GroupStatistics(optimizer, grad_norm_every=grad_norm_every, update_ratios=update_ratios)
            if optimizer is not None and statistics
            else None
        )
        self._sender = Sender(
            self._client,
            self._create,
            self.spool_path,
            heartbeat_s=heartbeat_s,
            retry_s=retry_s,
            request_timeout_s=request_timeout_s,
            max_queued_steps=max_queued_steps,
            spool_max_bytes=spool_max_bytes,
        )
        self._sender.start()
        self._epoch = 0
        self._last_step: Optional[int] = None
        self._since = time.monotonic()
        self._lock = threading.Lock()
        self._diverged_at: Optional[int] = None
        self._logged_any = False
        self._raised: Optional[StrataError] = None
        self.report: Optional[CloseReport] = None
        self.status = "running"
        _open_loggers.add(self)

    # What is known so far.

    @property
    def run_id(self) -> Optional[str]:
        """The run's id once the daemon created it (None before the first record reached it)."""
        return self._sender.run_id

    @property
    def epochs_logged(self) -> int:
        return self._epoch

    def wait_for_run_id(self, timeout_s: float = 10.0) -> Optional[str]:
        """Waits (at most `timeout_s`) until what was logged so far reached the daemon, and
        returns the run's id (None when it could not be reached)."""
        self._sender.flush(timeout_s)
        return self.run_id

    # Logging.

    def log(self, step: int, epoch: Optional[int] = None, **scalars: Number) -> None:
        """Logs named scalars at a global `step` (strictly increasing): the batch's loss, a rate,
        anything (`train_loss` is drawn under the epoch curves). Names are letters, digits and
        `_ . / -` (at most 64 characters), at most 32 a step; values are numbers or 0-d tensors
        (read later, off the loop). `epoch` (from 1) places the step among the epochs; default:
        the epoch in progress."""
        self._raise_if_refused()
        if self.status != "running":
            raise StrataError("FAILED_PRECONDITION", f"the logger is closed ({self.status})")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step is a whole number >= 0, not {step!r}")
        if len(scalars) > MAX_STEP_SCALARS:
            raise ValueError(f"{len(scalars)} scalars at step {step}; at most {MAX_STEP_SCALARS}")
        values = {_checked_name(k): _value(v, k) for k, v in scalars.items()}
        with self._lock:
            if self._last_step is not None and step <= self._last_step:
                raise ValueError(f"step {step} follows step {self._last_step}; steps increase strictly")
            self._last_step = step
            where = self._epoch + 1 if epoch is None else int(epoch)
        self._logged_any = True
        self._sender.put(Item("step", {"step": step, "epoch": where, "scalars": values}))

    def log_epoch(
        self,
        train_loss: Number,
        val_loss: Optional[Number] = None,
        val_accuracy: Optional[Number] = None,
        val_r2: Optional[Number] = None,
        **extra: Number,
    ) -> None:
        """Logs the next epoch (numbered from 1). Validation is optional: without `val_loss` the
        epoch is not validated (the analysis judges the epochs that were, or the training loss
        alone, and says so); the metric (`val_accuracy` for a classification, `val_r2` for a
        regression) is optional too. Any other keyword is a named scalar of the epoch (at most 64;
        names as in `log`). A NaN or infinite loss reports divergence: the daemon ends the run as
        diverged, and later epochs are not sent."""
        self._raise_if_refused()
        if self.status != "running":
            raise StrataError("FAILED_PRECONDITION", f"the logger is closed ({self.status})")
        if val_accuracy is not None and val_r2 is not None:
            raise ValueError("give val_accuracy (classification) or val_r2 (regression), not both")
        if val_loss is None and (val_accuracy is not None or val_r2 is not None):
            raise ValueError("a validation metric needs its val_loss (leave both out for an epoch not validated)")
        if self.task == "classification" and val_r2 is not None:
            raise ValueError("this run is a classification: its validation metric is val_accuracy")
        if self.task == "regression" and val_accuracy is not None:
            raise ValueError("this run is a regression: its validation metric is val_r2")
        if len(extra) > MAX_EXTRA_SCALARS:
            raise ValueError(f"{len(extra)} extra scalars; at most {MAX_EXTRA_SCALARS}")
        extras = {_checked_name(k): _value(v, k) for k, v in extra.items()}
        now = time.monotonic()
        with self._lock:
            self._epoch += 1
            epoch = self._epoch
            duration = now - self._since
            self._since = now
        if self._diverged_at is not None:
            self._warn_diverged()
            return
        groups = self._stats.take() if self._stats is not None else self._static_groups()
        record = {
            "epoch": epoch,
            "train_loss": _value(train_loss, "train_loss"),
            "val_loss": None if val_loss is None else _value(val_loss, "val_loss"),
            "val_accuracy": None if val_accuracy is None else _value(val_accuracy, "val_accuracy"),
            "val_r2": None if val_r2 is None else _value(val_r2, "val_r2"),
            "duration_ms": duration * 1000.0,
            "samples_per_sec": self.train_rows / duration if self.train_rows and duration > 0 else 0.0,
            "groups": groups,
            "extra": extras,
        }
        if _known_non_finite(record["train_loss"]) or _known_non_finite(record["val_loss"]):
            self._diverged_at = epoch
        self._logged_any = True
        self._sender.put(Item("epoch", record))

    def _static_groups(self) -> List[dict]:
        return [
            {"name": n, "lr": lr, "grad_norm": 0.0, "weight_norm": 0.0, "update_ratio": 0.0, "frozen": False}
            for n, lr in self._groups
        ]

    def _warn_diverged(self) -> None:
        if not getattr(self, "_warned_diverged", False):
            self._warned_diverged = True
            log.warning(
                "strata: epoch %s reported a non-finite loss, which ends the run as diverged; later epochs are not sent",
                self._diverged_at,
            )

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Waits (at most `timeout_s`) until everything logged so far was sent or spooled."""
        self._raise_if_refused()
        return self._sender.flush(timeout_s)

    def _raise_if_refused(self) -> None:
        error = self._sender.error
        if error is not None and self._raised is None:
            self._raised = error
            raise error

    # The end.

    def finish(self, status: str = "completed", reason: str = "") -> CloseReport:
        """Ends the run (`completed`, `failed`, `cancelled`) and closes the logger."""
        return self.close(status, reason)

    def close(
        self, status: str = "completed", reason: str = "", timeout_s: Optional[float] = None, raise_refusal: bool = True
    ) -> CloseReport:
        """Ends the run as `status` and waits at most `timeout_s` (default `close_timeout_s`) for
        everything to be sent; what could not be is left in the spool file. Says so (a warning
        naming the file and the `strata sync` command), and returns what happened. Raises the
        daemon's refusal of what was logged, if it refused and that was not raised yet. A second
        call returns the first one's report."""
        if self.report is not None:
            return self.report
        if status not in ("completed", "failed", "cancelled"):
            raise ValueError(f"status is 'completed', 'failed' or 'cancelled', not {status!r}")
        self.status = status
        _open_loggers.discard(self)
        # A logger that logged nothing leaves no run behind.
        if self._logged_any and self._diverged_at is None and self._sender.error is None:
            self._sender.put(Item("finish", (status, reason[:1024])))
        self._sender.close(self.close_timeout_s if timeout_s is None else timeout_s)
        if self._stats is not None:
            self._stats.close()
        sender = self._sender
        report = CloseReport(
            run_id=sender.run_id,
            status="diverged" if self._diverged_at is not None else status,
            sent=sender.sent,
            spooled=sender.spooled,
            spool_path=self.spool_path if (sender.spooled.epochs or sender.spooled.steps or sender.finish_spooled) else None,
            finish_spooled=sender.finish_spooled,
            dropped_steps=sender.dropped_steps,
            dropped_epochs=sender.dropped_epochs,
            error=sender.error,
        )
        if sender.is_alive() and not report.spool_path:
            log.warning("strata: the logger's thread did not finish within the timeout; the run may miss its last records")
        self.report = report
        if report.complete:
            log.info("%s", report)
        else:
            log.warning("%s", report)
        self._client.close()
        if raise_refusal:
            self._raise_if_refused()
        return report

    def __enter__(self) -> "StrataLogger":
        return self

    def __exit__(self, kind: Any, error: Any, _traceback: Any) -> bool:
        if kind is None:
            self.close("completed")
        elif issubclass(kind, KeyboardInterrupt):
            self.close("cancelled", "interrupted (Ctrl-C) in the training loop", raise_refusal=False)
        else:
            # The training loop's own error is the one that propagates.
            self.close("failed", f"{kind.__name__}: {error}", raise_refusal=False)
        return False


_known_names: set = set()


def _checked_name(name: str) -> str:
    if name in _known_names:
        return name
    if not _NAME.match(name):
        raise ValueError(
            f"{name!r} cannot name a scalar: 1 to 64 letters, digits and _ . / - (e.g. 'val_f1', 'lr/head')"
        )
    _known_names.add(name)
    return name


def _value(value: Any, name: str) -> Any:
    """A number, or a 0-d tensor cloned (so a later in-place change does not alter it), read by
    the background thread."""
    if value is None:
        raise ValueError(f"{name} is None; give a number")
    if hasattr(value, "detach") and hasattr(value, "numel"):
        if value.numel() != 1:
            raise ValueError(f"{name} is a tensor of {value.numel()} values; give one number")
        return value.detach().reshape(()).clone()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is {value!r}; give a number") from None


def _known_non_finite(value: Any) -> bool:
    """A loss known here to be NaN or infinite (a tensor is not read: that would wait on it)."""
    return isinstance(value, float) and not math.isfinite(value)


def _plain_hyperparameters(given: Dict[str, Any]) -> Dict[str, str]:
    """What the daemon takes: at most 64, keys of at most 64 printable characters, values of at
    most 200 (longer ones cut, with a warning)."""
    plain: Dict[str, str] = {}
    cut = []
    for key, value in given.items():
        key = "".join(c for c in str(key) if c.isprintable())[:MAX_HYPERPARAMETER_KEY_CHARS]
        text = "".join(c if c.isprintable() else " " for c in str(value))
        if len(text) > MAX_HYPERPARAMETER_VALUE_CHARS:
            text = text[: MAX_HYPERPARAMETER_VALUE_CHARS - 1] + "…"
            cut.append(key)
        if key:
            plain[key] = text
    if len(plain) > MAX_HYPERPARAMETERS:
        log.warning("strata: %d hyperparameters; the first %d are kept", len(plain), MAX_HYPERPARAMETERS)
        plain = dict(list(plain.items())[:MAX_HYPERPARAMETERS])
    if cut:
        log.warning("strata: hyperparameter values longer than %d characters were cut: %s", MAX_HYPERPARAMETER_VALUE_CHARS, ", ".join(cut))
    return plain


# Loggers a script left open: closed at exit, as completed — or failed, when the script ended
# with an exception nothing caught (a Trainer that raised, say).
_open_loggers: "weakref.WeakSet[StrataLogger]" = weakref.WeakSet()
_uncaught: List[BaseException] = []
_previous_hook = sys.excepthook


def _note_uncaught(kind: Any, error: Any, traceback: Any) -> None:
    _uncaught.append(error)
    _previous_hook(kind, error, traceback)


sys.excepthook = _note_uncaught


@atexit.register
def _close_open_loggers() -> None:
    for logger in list(_open_loggers):
        try:
            if _uncaught and isinstance(_uncaught[-1], KeyboardInterrupt):
                logger.close("cancelled", "interrupted (Ctrl-C)", raise_refusal=False)
            elif _uncaught:
                error = _uncaught[-1]
                logger.close("failed", f"{type(error).__name__}: {error}", raise_refusal=False)
            else:
                logger.close("completed", raise_refusal=False)
        except Exception as e:  # at exit: report, never raise
            log.warning("strata: could not close a logger at exit: %s", e)
