"""StrataLogger: one external run for a PyTorch training loop, measuring each parameter group's
rate, gradient norm, weight norm and update ratio by itself at every `log_epoch`."""

import time

from .client import StrataClient, StrataError



def _group_name(group, index):
    return str(group.get("name") or f"group{index}")


class StrataLogger:
    """Creates the run at construction, logs one epoch per `log_epoch`, ends it with `finish`
    (or on leaving a `with` block: completed, or failed with the exception, or cancelled on
    Ctrl-C).

    Each param group of `optimizer` is a group of the run (named by its `name` key, else
    `group0`, `group1`, ...). At each epoch: its current `lr`; the L2 norm of the gradients its
    parameters hold now (those with a `.grad`); the L2 norm of its parameters; and
    ‖w − w_prev‖ / ‖w_prev‖ since the previous `log_epoch` (since construction, for the first).
    """

    def __init__(self, addr, name="", optimizer=None, model=None, task="classification",
                 classes=None, target_variance=None, token=None, tls_ca=None, tags=(),
                 hyperparameters=None, dataset="", model_description="", train_rows=0,
                 val_rows=0, steps_per_epoch=0):
        if optimizer is None:
            raise ValueError("StrataLogger needs optimizer=... (its param groups are the run's groups)")
        self._optimizer = optimizer
        self._client = StrataClient(addr, token=token, tls_ca=tls_ca)
        groups = [(_group_name(g, i), float(g["lr"])) for i, g in enumerate(optimizer.param_groups)]
        params = [p for g in optimizer.param_groups for p in g["params"]]
        hp = {"optimizer": type(optimizer).__name__}
        hp.update(hyperparameters or {})
        self.run_id = self._client.create_run(
            name=name,
            dataset=dataset or "(not described)",
            model=model_description or (type(model).__name__ if model is not None else "(not described)"),
            groups=groups,
            task=task,
            classes=classes,
            target_variance=target_variance,
            tags=tags,
            hyperparameters=hp,
            parameter_count=sum(p.numel() for p in params if p.requires_grad),
            train_rows=train_rows,
            val_rows=val_rows,
            steps_per_epoch=steps_per_epoch,
        )
        self._previous = self._snapshot()
        self._epoch = 0
        self._since = time.monotonic()
        self.finished = False
        self.status = "running"

    def _snapshot(self):
        import torch

        with torch.no_grad():
            return [
                [p.detach().clone() for p in g["params"]] for g in self._optimizer.param_groups
            ]

    def _group_stats(self):
        import torch

        stats = []
        with torch.no_grad():
            for i, (group, before) in enumerate(zip(self._optimizer.param_groups, self._previous)):
                grad_sq = sum(
                    float(p.grad.detach().double().pow(2).sum())
                    for p in group["params"]
                    if p.grad is not None
                )
                weight_sq = sum(float(p.detach().double().pow(2).sum()) for p in group["params"])
                moved_sq = sum(
                    float((p.detach().double() - b.double()).pow(2).sum())
                    for p, b in zip(group["params"], before)
                )
                before_sq = sum(float(b.double().pow(2).sum()) for b in before)
                stats.append({
                    "name": _group_name(group, i),
                    "lr": float(group["lr"]),
                    "grad_norm": grad_sq ** 0.5,
                    "weight_norm": weight_sq ** 0.5,
                    "update_ratio": (moved_sq ** 0.5) / (before_sq ** 0.5) if before_sq > 0 else 0.0,
                    "frozen": not any(p.requires_grad for p in group["params"]),
                })
        return stats

    def log_epoch(self, train_loss, val_loss, val_accuracy=None, val_r2=None, **extra):
        """Logs the next epoch (numbered from 1). Any other keyword is an extra named scalar of
        the epoch (`log_epoch(..., val_f1=0.8, lr_warmup=0.1)`: names of letters, digits and
        _ . / -, at most 64, values finite). A NaN or infinite loss is how divergence is reported:
        the daemon ends the run as diverged, and this logger logs nothing more."""
        if self.finished:
            raise StrataError("FAILED_PRECONDITION", f"run {self.run_id} has ended ({self.status})")
        now = time.monotonic()
        self._epoch += 1
        epoch = {
            "epoch": self._epoch,
            "train_loss": float(train_loss),
            "val_loss": float(val_loss),
            "val_accuracy": val_accuracy,
            "val_r2": val_r2,
            "duration_ms": (now - self._since) * 1000.0,
            "groups": self._group_stats(),
            "extra": {name: float(value) for name, value in extra.items()},
        }
        try:
            response = self._client.log_epochs(self.run_id, [epoch])
        except StrataError:
            self._epoch -= 1
            raise
        self._previous = self._snapshot()
        self._since = now
        if response.status == 6:  # RUN_STATUS_DIVERGED
            self.finished, self.status = True, "diverged"
        return response

    def finish(self, status="completed", reason=""):
        """Ends the run (`completed`, `failed`, `cancelled`); nothing if it has ended already."""
        if self.finished:
            return
        self._client.finish_run(self.run_id, status=status, reason=reason)
        self.finished, self.status = True, status

    def close(self):
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, _traceback):
        try:
            if kind is None:
                self.finish("completed")
            elif issubclass(kind, KeyboardInterrupt):
                self.finish("cancelled", "interrupted (Ctrl-C) in the training loop")
            else:
                self.finish("failed", f"{kind.__name__}: {error}")
        finally:
            self.close()
        return False
