"""A PyTorch Lightning callback that logs a `Trainer.fit` into stratad (needs `pytorch-lightning`
or `lightning`, 2.x).

    from strata_client.lightning import StrataCallback

    trainer = pl.Trainer(max_epochs=10, callbacks=[StrataCallback(name="cifar", classes=10)])
    trainer.fit(model, train_loader, val_loader)

Per training step (every `log_every_n_steps`, default the Trainer's): the step's loss as
`train_loss` and each param group's rate as `lr/GROUP`. Per epoch: the mean training loss (the
metric named `train_loss`, when the module logs it per epoch, else the mean of the steps'
losses), the validation loss and metric when validation ran that epoch (the metrics named
`val_loss` and `val_acc` — or `val_r2` — by default), every other epoch-level metric as an extra
scalar, and each param group's statistics (see `StrataLogger`). The run's groups are the param
groups of the first optimizer (name them with a `"name"` key). Only the global-zero process logs.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

try:
    import pytorch_lightning as pl
except ImportError:  # the unified package
    try:
        import lightning.pytorch as pl  # type: ignore[no-redef]
    except ImportError:
        raise ImportError(
            "strata_client.lightning needs PyTorch Lightning: pip install pytorch-lightning (or strata-client[lightning])"
        ) from None

from .logger import StrataLogger

_SCALAR_NAME = re.compile(r"[^A-Za-z0-9_./-]")


class StrataCallback(pl.Callback):
    """Logs the fit to stratad; every keyword not listed here goes to `StrataLogger` (`addr`,
    `token`, `tags`, `spool_dir`, ...). `task` is `classification` (with `classes`) or
    `regression` (with `target_variance`). The metric names say which of the module's logged
    metrics are the training loss, the validation loss and the validation metric."""

    def __init__(
        self,
        name: str = "",
        *,
        task: str = "classification",
        classes: Optional[int] = None,
        target_variance: Optional[float] = None,
        train_loss: str = "train_loss",
        val_loss: str = "val_loss",
        val_metric: Optional[str] = None,
        log_every_n_steps: Optional[int] = None,
        **logger_options: Any,
    ) -> None:
        super().__init__()
        self.name = name
        self.task = task
        self.classes = classes
        self.target_variance = target_variance
        self.train_loss_key = train_loss
        self.val_loss_key = val_loss
        self.val_metric_key = val_metric or ("val_r2" if task == "regression" else "val_acc")
        self.log_every_n_steps = log_every_n_steps
        self.logger_options = logger_options
        self.logger: Optional[StrataLogger] = None
        self._loss_sum: Any = None
        self._loss_count = 0
        self._validated = False

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero or self.logger is not None:
            return
        optimizer = trainer.optimizers[0]
        hyperparameters: Dict[str, Any] = {k: v for k, v in dict(getattr(pl_module, "hparams", {}) or {}).items()}
        hyperparameters.setdefault("max_epochs", trainer.max_epochs)
        hyperparameters.setdefault("precision", trainer.precision)
        batches = trainer.num_training_batches
        options = dict(self.logger_options)
        options.setdefault("hyperparameters", hyperparameters)
        options.setdefault("model_description", type(pl_module).__name__)
        if isinstance(batches, int) and batches > 0:
            options.setdefault("steps_per_epoch", batches)
        self.logger = StrataLogger(
            name=self.name,
            optimizer=optimizer,
            model=pl_module,
            task=self.task,
            classes=self.classes,
            target_variance=self.target_variance,
            **options,
        )
        if self.log_every_n_steps is None:
            self.log_every_n_steps = max(1, int(getattr(trainer, "log_every_n_steps", 50) or 50))

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._loss_sum, self._loss_count, self._validated = None, 0, False

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.logger is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        loss = loss.detach()
        # Summed on the device: read once an epoch, by the logger's thread.
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._loss_count += 1
        step = int(trainer.global_step)
        if step % (self.log_every_n_steps or 1) == 0 and step != getattr(self, "_last_step", None):
            self._last_step = step
            scalars = {"train_loss": loss}
            for i, group in enumerate(trainer.optimizers[0].param_groups):
                scalars[f"lr/{_scalar_name(str(group.get('name') or f'group{i}'))}"] = float(group["lr"])
            self.logger.log(step=step, epoch=trainer.current_epoch + 1, **scalars)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._validated = True

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.logger is None:
            return
        metrics = dict(trainer.callback_metrics)
        train = _first(metrics, self.train_loss_key, f"{self.train_loss_key}_epoch")
        if train is None:
            if self._loss_sum is None:
                return
            train = self._loss_sum / max(1, self._loss_count)
        validation: Dict[str, Any] = {}
        if self._validated:
            val_loss = _first(metrics, self.val_loss_key, f"{self.val_loss_key}_epoch")
            if val_loss is not None:
                validation["val_loss"] = val_loss
                val_metric = _first(metrics, self.val_metric_key, f"{self.val_metric_key}_epoch")
                if val_metric is not None:
                    validation["val_r2" if self.task == "regression" else "val_accuracy"] = val_metric
        used = {self.train_loss_key, self.val_loss_key, self.val_metric_key}
        extra = {
            _scalar_name(k): v
            for k, v in metrics.items()
            if k.removesuffix("_epoch") not in used and not k.endswith("_step") and _is_number(v)
            and (self._validated or not k.startswith("val"))
        }
        self.logger.log_epoch(train_loss=train, **validation, **dict(list(extra.items())[:64]))

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.logger is not None:
            self.logger.close("completed")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.logger is None or self.logger.report is not None:
            return
        if isinstance(exception, KeyboardInterrupt):
            self.logger.close("cancelled", "interrupted (Ctrl-C)", raise_refusal=False)
        else:
            self.logger.close("failed", f"{type(exception).__name__}: {exception}", raise_refusal=False)


def _first(metrics: Dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in metrics:
            return metrics[name]
    return None


def _is_number(value: Any) -> bool:
    if hasattr(value, "numel"):
        return value.numel() == 1
    return isinstance(value, (int, float))


def _scalar_name(name: str) -> str:
    return _SCALAR_NAME.sub("_", name)[:64] or "_"
