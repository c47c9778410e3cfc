"""A Hugging Face `transformers` TrainerCallback that logs a `Trainer.train()` into stratad
(needs `transformers`, with `accelerate` as the Trainer requires).

    from strata_client.huggingface import StrataTrainerCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      compute_metrics=accuracy, callbacks=[StrataTrainerCallback(name="sst2")])
    trainer.train()

What is logged: every Trainer log (each `logging_steps`) as a step record — its `loss` as
`train_loss`, `learning_rate` as `lr`, `grad_norm` — and per epoch the mean of those losses as the
training loss, with the evaluation's `eval_loss` and metric (`eval_accuracy` by default, or
`eval_r2` for a regression) when an evaluation ran that epoch; without one the epoch is logged
not validated. Each param group's statistics come from the Trainer's optimizer (its param groups
are the run's groups: the Trainer's own are `group0` with weight decay and `group1` without; pass
`optimizers=(optimizer, scheduler)` with named groups for layer-wise rates). The task comes from
the model's config (`num_labels`, `problem_type`) unless given. Only the main process logs.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Dict, List, Optional

try:
    from transformers import TrainerCallback
except ImportError:
    raise ImportError(
        "strata_client.huggingface needs transformers: pip install transformers accelerate (or strata-client[transformers])"
    ) from None

from .logger import StrataLogger

#: Arguments of the Trainer worth keeping with the run (the rest are plumbing).
_KEPT_ARGUMENTS = (
    "learning_rate",
    "weight_decay",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "optim",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "label_smoothing_factor",
    "seed",
    "fp16",
    "bf16",
)


class StrataTrainerCallback(TrainerCallback):
    """Logs the training to stratad; every keyword not listed here goes to `StrataLogger`
    (`addr`, `token`, `tags`, `spool_dir`, ...)."""

    def __init__(
        self,
        name: str = "",
        *,
        task: Optional[str] = None,
        classes: Optional[int] = None,
        target_variance: Optional[float] = None,
        metric: Optional[str] = None,
        **logger_options: Any,
    ) -> None:
        self.name = name
        self.task = task
        self.classes = classes
        self.target_variance = target_variance
        self.metric = metric
        self.logger_options = logger_options
        self.logger: Optional[StrataLogger] = None
        self._losses: List[float] = []
        self._last_loss: Optional[float] = None
        self._pending: Optional[Dict[str, Any]] = None
        self._eval: Optional[Dict[str, float]] = None
        self._epoch = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.logger is not None:
            return
        optimizer = optimizer or self._trainer_optimizer()
        task, classes = self.task, self.classes
        config = getattr(model, "config", None)
        if task is None:
            labels = getattr(config, "num_labels", None)
            if getattr(config, "problem_type", None) == "regression" or labels == 1:
                task = "regression"
            else:
                task = "classification"
                classes = classes or labels
        self.task = task
        if self.metric is None:
            self.metric = "eval_r2" if task == "regression" else "eval_accuracy"
        # Enums (the scheduler, the optimizer) by their value: `linear`, not `SchedulerType.LINEAR`.
        hyperparameters = {k: getattr(getattr(args, k), "value", getattr(args, k)) for k in _KEPT_ARGUMENTS if hasattr(args, k)}
        options = dict(self.logger_options)
        options.setdefault("hyperparameters", hyperparameters)
        options.setdefault("model_description", type(model).__name__ if model is not None else "")
        if state.max_steps and args.num_train_epochs:
            options.setdefault("steps_per_epoch", max(1, math.ceil(state.max_steps / max(1, math.ceil(args.num_train_epochs)))))
        groups = None
        if optimizer is None:
            groups = [("model", float(args.learning_rate))]
        self.logger = StrataLogger(
            name=self.name or getattr(args, "run_name", "") or "",
            optimizer=optimizer,
            model=model,
            task=task,
            classes=classes,
            target_variance=self.target_variance,
            groups=groups,
            **options,
        )

    def _trainer_optimizer(self) -> Any:
        """The optimizer of the Trainer that calls this callback: the Trainer creates it in
        `train()` and does not hand it to callbacks (only one given to it as `optimizers=`)."""
        frame = inspect.currentframe()
        while frame is not None:
            owner = frame.f_locals.get("self")
            handler = getattr(owner, "callback_handler", None)
            if handler is not None and self in getattr(handler, "callbacks", []):
                return getattr(owner, "optimizer", None)
            frame = frame.f_back
        return None

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._log_pending()

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        if self.logger is None or not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        self._losses.append(loss)
        self._last_loss = loss
        scalars = {"train_loss": loss}
        for key, name in (("learning_rate", "lr"), ("grad_norm", "grad_norm")):
            if isinstance(logs.get(key), (int, float)):
                scalars[name] = float(logs[key])
        if state.global_step > getattr(self, "_last_step", -1):
            self._last_step = state.global_step
            self.logger.log(step=int(state.global_step), epoch=self._epoch + 1, **scalars)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.logger is None:
            return
        self._epoch += 1
        losses = self._losses or ([self._last_loss] if self._last_loss is not None else [])
        self._losses = []
        # The evaluation of this epoch (eval_strategy="epoch") comes right after this call.
        self._pending = {"train_loss": sum(losses) / len(losses) if losses else None}
        if self._eval is not None:
            self._log_pending()

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        if self.logger is None or not metrics:
            return
        self._eval = metrics
        if self._pending is not None:
            self._log_pending()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.logger is None:
            return
        self._log_pending()
        self.logger.close("completed")

    def _log_pending(self) -> None:
        pending, evaluation = self._pending, self._eval
        self._pending = None
        if pending is None or self.logger is None:
            return
        self._eval = None
        if pending["train_loss"] is None:
            return  # nothing logged a loss this epoch (logging_steps longer than an epoch)
        validation: Dict[str, Any] = {}
        extra: Dict[str, float] = {}
        if evaluation is not None and "eval_loss" in evaluation:
            validation["val_loss"] = float(evaluation["eval_loss"])
            metric = evaluation.get(self.metric or "")
            if isinstance(metric, (int, float)):
                validation["val_r2" if self.task == "regression" else "val_accuracy"] = float(metric)
            for key, value in evaluation.items():
                if key not in ("eval_loss", self.metric, "epoch") and isinstance(value, (int, float)):
                    extra[key.replace(" ", "_")[:64]] = float(value)
        self.logger.log_epoch(train_loss=pending["train_loss"], **validation, **dict(list(extra.items())[:64]))
