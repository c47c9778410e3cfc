"""The daemon's three logging calls over gRPC, with its errors as Python exceptions."""

import grpc

from ._generated import strata_pb2, strata_pb2_grpc


class StrataError(Exception):
    """A call the daemon refused or could not answer: `code` is the gRPC status code's name
    (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `NOT_FOUND`, `UNAVAILABLE`, ...), the message is
    the daemon's own."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _channel(addr, tls_ca):
    target = addr.split("://", 1)[-1].rstrip("/")
    if tls_ca is None and not addr.startswith("https://"):
        return grpc.insecure_channel(target)
    root = None
    if tls_ca is not None:
        with open(tls_ca, "rb") as f:
            root = f.read()
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root))


class StrataClient:
    """CreateRun, LogEpochs and FinishRun. `addr` is `HOST:PORT` (or `http://`/`https://HOST:PORT`);
    `token` is sent as `authorization: Bearer TOKEN`; `tls_ca` is a PEM file to trust for TLS."""

    def __init__(self, addr, token=None, tls_ca=None, timeout_s=60.0):
        self._channel = _channel(addr, tls_ca)
        self._stub = strata_pb2_grpc.StrataStub(self._channel)
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._timeout_s = timeout_s

    def _call(self, method, request):
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout_s)
        except grpc.RpcError as e:
            raise StrataError(e.code().name, e.details()) from None

    def create_run(self, *, name, dataset, model, groups, task, classes=None,
                   target_variance=None, tags=(), hyperparameters=None, parameter_count=0,
                   train_rows=0, val_rows=0, steps_per_epoch=0):
        """Creates a running external run; returns its id. `groups` is [(name, lr), ...] in the
        model's order."""
        request = strata_pb2.CreateRunRequest(
            name=name,
            tags=list(tags),
            hyperparameters={str(k): str(v) for k, v in (hyperparameters or {}).items()},
            dataset=dataset,
            model=model,
            groups=[strata_pb2.GroupRate(name=n, lr=float(lr)) for n, lr in groups],
            parameter_count=int(parameter_count),
            train_rows=int(train_rows),
            val_rows=int(val_rows),
            steps_per_epoch=int(steps_per_epoch),
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
        return self._call(self._stub.CreateRun, request).run.id

    def log_epochs(self, run, epochs):
        """Stores epochs (dicts: epoch, train_loss, val_loss, val_accuracy or val_r2,
        duration_ms, groups=[{name, lr, grad_norm, weight_norm, update_ratio}], and optionally
        extra={name: value} for any other named scalar); returns the daemon's LogEpochsResponse
        (stored, epochs_done, status)."""
        records = []
        for e in epochs:
            record = strata_pb2.EpochRecord(
                epoch=int(e["epoch"]),
                train_loss=float(e["train_loss"]),
                val_loss=float(e["val_loss"]),
                duration_ms=float(e.get("duration_ms", 0.0)),
                samples_per_sec=float(e.get("samples_per_sec", 0.0)),
                groups=[strata_pb2.GroupEpochStats(**g) for g in e["groups"]],
                extra={str(k): float(v) for k, v in (e.get("extra") or {}).items()},
            )
            if e.get("val_accuracy") is not None:
                record.val_accuracy = float(e["val_accuracy"])
            elif e.get("val_r2") is not None:
                record.val_r2 = float(e["val_r2"])
            records.append(record)
        return self._call(self._stub.LogEpochs, strata_pb2.LogEpochsRequest(run=run, epochs=records))

    def finish_run(self, run, status="completed", reason=""):
        """Ends the run: `completed`, `failed` or `cancelled`."""
        code = {
            "completed": strata_pb2.RUN_STATUS_COMPLETED,
            "failed": strata_pb2.RUN_STATUS_FAILED,
            "cancelled": strata_pb2.RUN_STATUS_CANCELLED,
        }.get(status)
        if code is None:
            raise ValueError(f"status is 'completed', 'failed' or 'cancelled', not {status!r}")
        request = strata_pb2.FinishRunRequest(run=run, status=code, reason=reason)
        return self._call(self._stub.FinishRun, request).run

    def close(self):
        self._channel.close()


