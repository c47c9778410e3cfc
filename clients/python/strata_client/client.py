"""The daemon's calls over gRPC, with its refusals as Python exceptions.

`StrataClient` is the thin layer: one method per RPC, protobuf messages in and out. The logger
(`StrataLogger`) and the read-back functions (`runs`, `run`, `compare`) are built on it.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import grpc

from ._proto import SERVICE, enum_value, pb

#: The daemon's address when none is given: `STRATA_ADDR`, else stratad's default.
DEFAULT_ADDR = "127.0.0.1:50051"

#: Codes that mean the daemon could not be reached or could not answer now: worth a retry later.
#: Every other code is the daemon's answer about the request itself, and is raised.
_UNREACHABLE = {
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "CANCELLED",
    "UNKNOWN",
    "INTERNAL",
    "ABORTED",
    "RESOURCE_EXHAUSTED",
}


class StrataError(Exception):
    """A call the daemon refused or could not answer: `code` is the gRPC status code's name
    (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `NOT_FOUND`, `UNAVAILABLE`, ...), `message` the
    daemon's own words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def unreachable(self) -> bool:
        """The daemon could not be reached, or could not answer now (a retry may succeed)."""
        return self.code in _UNREACHABLE


def default_addr() -> str:
    """`STRATA_ADDR` (its first address, when it lists several), else `127.0.0.1:50051`."""
    return (os.environ.get("STRATA_ADDR") or DEFAULT_ADDR).split(",")[0].strip()


def _target(addr: str) -> Tuple[str, bool]:
    """`HOST:PORT` and whether the address asks for TLS (`https://`)."""
    secure = addr.startswith("https://")
    return addr.split("://", 1)[-1].rstrip("/"), secure


def _channel(addr: str, tls_ca: Optional[str]) -> grpc.Channel:
    target, secure = _target(addr)
    options = [
        # Back quickly after a daemon restart: the logger retries on its own schedule.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
        ("grpc.enable_retries", 0),
    ]
    if tls_ca is None and not secure:
        return grpc.insecure_channel(target, options=options)
    root = None
    if tls_ca is not None:
        with open(tls_ca, "rb") as f:
            root = f.read()
    return grpc.secure_channel(
        target, grpc.ssl_channel_credentials(root_certificates=root), options=options
    )


class StrataClient:
    """One connection to a daemon. `addr` is `HOST:PORT` (or `http://`/`https://HOST:PORT`);
    `token` is sent as `authorization: Bearer TOKEN` (default: `STRATA_TOKEN`); `tls_ca` is a PEM
    file to trust for TLS (default: `STRATA_TLS_CA`). Every call waits at most `timeout_s`."""

    def __init__(
        self,
        addr: Optional[str] = None,
        token: Optional[str] = None,
        tls_ca: Optional[str] = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.addr = addr or default_addr()
        token = token if token is not None else os.environ.get("STRATA_TOKEN")
        self.tls_ca = tls_ca if tls_ca is not None else os.environ.get("STRATA_TLS_CA")
        self._channel = _channel(self.addr, self.tls_ca)
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self.timeout_s = timeout_s
        self._methods: dict = {}
        self._lock = threading.Lock()
        self._in_flight: set = set()
        self._aborted = threading.Event()

    def _method(self, name: str, request: str, response: str, stream: bool = False) -> Any:
        if name not in self._methods:
            make = self._channel.unary_stream if stream else self._channel.unary_unary
            self._methods[name] = make(
                SERVICE + name,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=getattr(pb, response).FromString,
            )
        return self._methods[name]

    def call(self, name: str, request: Any, timeout_s: Optional[float] = None) -> Any:
        """Calls RPC `name` (`CreateRun`, ...) with a request message; returns its answer. A call
        in flight when `abort()` is called ends at once, CANCELLED."""
        method = self._method(name, type(request).DESCRIPTOR.name, _RESPONSES[name])
        if self._aborted.is_set():
            raise StrataError("CANCELLED", "the logger gave up on the daemon (its close timeout passed)")
        future = method.future(
            request,
            metadata=self._metadata,
            timeout=self.timeout_s if timeout_s is None else timeout_s,
        )
        with self._lock:
            self._in_flight.add(future)
        try:
            return future.result()
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            details = e.details() if hasattr(e, "details") else str(e)
            raise StrataError(code.name if code is not None else "UNKNOWN", details or "") from None
        except grpc.FutureCancelledError:
            raise StrataError("CANCELLED", "the logger gave up on the daemon (its close timeout passed)") from None
        finally:
            with self._lock:
                self._in_flight.discard(future)

    def abort(self) -> None:
        """Ends the calls in flight (CANCELLED) and refuses new ones: for a logger that must stop
        waiting on a daemon that does not answer."""
        self._aborted.set()
        with self._lock:
            for future in list(self._in_flight):
                future.cancel()

    # Logging a run from outside.

    def create_run(self, request: Any, timeout_s: Optional[float] = None) -> Any:
        """CreateRun: `request` is a `CreateRunRequest` (see `create_request`); returns the
        `CreateRunResponse` (`run`, `existing`, `silence_timeout_ms`)."""
        return self.call("CreateRun", request, timeout_s)

    def log_epochs(self, run: str, epochs: Sequence[Any], timeout_s: Optional[float] = None) -> Any:
        """LogEpochs of `EpochRecord` messages (none: a heartbeat)."""
        return self.call("LogEpochs", pb.LogEpochsRequest(run=run, epochs=list(epochs)), timeout_s)

    def log_steps(self, run: str, steps: Sequence[Any], timeout_s: Optional[float] = None) -> Any:
        """LogSteps of `StepRecord` messages."""
        return self.call("LogSteps", pb.LogStepsRequest(run=run, steps=list(steps)), timeout_s)

    def finish_run(
        self, run: str, status: str = "completed", reason: str = "", timeout_s: Optional[float] = None
    ) -> Any:
        """Ends a run: `completed`, `failed` or `cancelled`; returns the `Run`."""
        request = pb.FinishRunRequest(run=run, status=status_code(status), reason=reason)
        return self.call("FinishRun", request, timeout_s).run

    # Reading back.

    def get_run(self, run: str, from_epoch: int = 0) -> Any:
        return self.call("GetRun", pb.GetRunRequest(run=run, from_epoch=from_epoch))

    def list_runs(self, **filters: Any) -> Any:
        return self.call("ListRuns", pb.ListRunsRequest(**filters)).runs

    def compare_runs(self, runs: Iterable[str]) -> Any:
        return self.call("CompareRuns", pb.CompareRunsRequest(runs=list(runs)))

    def get_run_steps(self, run: str, max_points: int = 0) -> Any:
        return self.call("GetRunSteps", pb.GetRunStepsRequest(run=run, max_points=max_points))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "StrataClient":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


_RESPONSES = {
    "CreateRun": "CreateRunResponse",
    "LogEpochs": "LogEpochsResponse",
    "LogSteps": "LogStepsResponse",
    "FinishRun": "FinishRunResponse",
    "GetRun": "GetRunResponse",
    "ListRuns": "ListRunsResponse",
    "CompareRuns": "CompareRunsResponse",
    "GetRunSteps": "GetRunStepsResponse",
    "GetServerInfo": "ServerInfo",
}


def status_code(status: str) -> int:
    """`completed`, `failed` or `cancelled` as the proto's RunStatus."""
    names = {"completed": "RUN_STATUS_COMPLETED", "failed": "RUN_STATUS_FAILED", "cancelled": "RUN_STATUS_CANCELLED"}
    if status not in names:
        raise ValueError(f"status is 'completed', 'failed' or 'cancelled', not {status!r}")
    return enum_value("RunStatus", names[status])


def create_request(
    *,
    name: str,
    dataset: str,
    model: str,
    groups: List[Tuple[str, float]],
    task: str,
    classes: Optional[int] = None,
    target_variance: Optional[float] = None,
    tags: Iterable[str] = (),
    hyperparameters: Optional[dict] = None,
    parameter_count: int = 0,
    train_rows: int = 0,
    val_rows: int = 0,
    steps_per_epoch: int = 0,
    client_key: str = "",
) -> Any:
    """A `CreateRunRequest`, checking what can be checked here. `groups` is [(name, lr), ...] in
    the model's order."""
    request = pb.CreateRunRequest(
        name=name,
        tags=list(tags),
        hyperparameters={str(k): str(v) for k, v in (hyperparameters or {}).items()},
        dataset=dataset,
        model=model,
        groups=[pb.GroupRate(name=n, lr=float(lr)) for n, lr in groups],
        parameter_count=int(parameter_count),
        train_rows=int(train_rows),
        val_rows=int(val_rows),
        steps_per_epoch=int(steps_per_epoch),
        client_key=client_key,
    )
    if task == "classification":
        if classes is None:
            raise ValueError("task='classification' needs classes=N")
        request.classes = int(classes)
    elif task == "regression":
        if target_variance is None:
            raise ValueError("task='regression' needs target_variance=V (of the validation targets)")
        request.target_variance = float(target_variance)
    else:
        raise ValueError(f"task is 'classification' or 'regression', not {task!r}")
    return request
