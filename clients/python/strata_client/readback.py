"""Reading runs back: `runs(...)` (the filters of `strata list`), `run(id)` (config, facts,
verdict, reason, group diagnoses, every epoch), `compare(ids)`; each as plain Python objects,
and as pandas DataFrames when pandas is installed.

    import strata_client as strata
    df = strata.runs(tag="cifar").to_pandas()
    r = strata.run("c1cvn7")
    print(r.verdict, r.reason)
    r.epochs_frame().plot(x="epoch", y=["train_loss", "val_loss"])

The daemon is `addr` (default `STRATA_ADDR`, else 127.0.0.1:50051), with `token` (default
`STRATA_TOKEN`) and `tls_ca` (default `STRATA_TLS_CA`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from google.protobuf import json_format

from ._proto import enum_value, label
from .client import StrataClient


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "a DataFrame needs pandas: pip install pandas (or strata-client[pandas]); the records are there without it"
        ) from None
    return pandas


def _dict(message: Any) -> Dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


@dataclass
class RunInfo:
    """A run as `strata list` shows it."""

    id: str
    name: str
    status: str
    reason: str
    tags: List[str]
    external: bool
    dataset: str
    model: str
    epochs_done: int
    created_at_ms: int
    started_at_ms: int
    finished_at_ms: int
    hyperparameters: Dict[str, str]
    client_key: str
    groups: List[Tuple[str, float]]

    @classmethod
    def of(cls, run: Any) -> "RunInfo":
        return cls(
            id=run.id,
            name=run.name,
            status=label("RunStatus", run.status),
            reason=run.reason,
            tags=list(run.tags),
            external=run.external,
            dataset=run.config.dataset,
            model=run.config.model,
            epochs_done=run.epochs_done,
            created_at_ms=run.created_at_ms,
            started_at_ms=run.started_at_ms,
            finished_at_ms=run.finished_at_ms,
            hyperparameters=dict(run.hyperparameters),
            client_key=run.client_key,
            groups=[(g.name, g.lr) for g in run.groups],
        )


class RunList(List[RunInfo]):
    """Runs, newest first."""

    def to_pandas(self) -> Any:
        rows = []
        for r in self:
            row = {k: v for k, v in r.__dict__.items() if k not in ("hyperparameters", "groups")}
            row.update({f"hp/{k}": v for k, v in r.hyperparameters.items()})
            rows.append(row)
        return _pandas().DataFrame(rows)


@dataclass
class GroupDiagnosis:
    name: str
    diagnosis: str
    update_ratio: float
    advice: str


@dataclass
class Run(RunInfo):
    """One run with its analysis and every stored epoch."""

    config: Dict[str, Any] = field(default_factory=dict)
    facts: Dict[str, Any] = field(default_factory=dict)
    verdict: str = ""
    verdict_reason: str = ""
    analysis: Dict[str, Any] = field(default_factory=dict)
    group_diagnoses: List[GroupDiagnosis] = field(default_factory=list)
    #: One flat record per epoch: `epoch`, `train_loss`, `val_loss` (None when not validated),
    #: `val_accuracy` or `val_r2`, `duration_ms`, `samples_per_sec`, the extra scalars by name,
    #: and per group `lr/G`, `grad_norm/G`, `weight_norm/G`, `update_ratio/G`, `frozen/G`.
    epochs: List[Dict[str, Any]] = field(default_factory=list)
    _client: Optional[StrataClient] = field(default=None, repr=False)

    @property
    def reason_text(self) -> str:
        return self.verdict_reason

    def epochs_frame(self) -> Any:
        """The epochs as a pandas DataFrame, one row per epoch."""
        return _pandas().DataFrame(self.epochs)

    def steps(self, max_points: int = 2000) -> List[Dict[str, Any]]:
        """The run's step records (`step`, `epoch`, and each scalar by name): every one up to
        `max_points` (at most 20,000), else an even spread keeping the first and the last."""
        if self._client is None:
            raise RuntimeError("this Run was not read from a daemon")
        answer = self._client.get_run_steps(self.id, max_points)
        return [{"step": s.step, "epoch": s.epoch, **dict(s.scalars)} for s in answer.steps]

    def steps_frame(self, max_points: int = 2000) -> Any:
        return _pandas().DataFrame(self.steps(max_points))


def epoch_record(epoch: Any) -> Dict[str, Any]:
    """An `EpochRecord` as a flat dict."""
    record: Dict[str, Any] = {"epoch": epoch.epoch, "train_loss": epoch.train_loss}
    validated = not epoch.no_validation
    record["val_loss"] = epoch.val_loss if validated else None
    which = epoch.WhichOneof("val_metric")
    if which is not None:
        record[which] = getattr(epoch, which)
    record["duration_ms"] = epoch.duration_ms
    record["samples_per_sec"] = epoch.samples_per_sec
    for name, value in sorted(epoch.extra.items()):
        record[name] = value
    for g in epoch.groups:
        record[f"lr/{g.name}"] = g.lr
        record[f"grad_norm/{g.name}"] = g.grad_norm
        record[f"weight_norm/{g.name}"] = g.weight_norm
        record[f"update_ratio/{g.name}"] = g.update_ratio
        record[f"frozen/{g.name}"] = g.frozen
    return record


def _connect(addr: Optional[str], token: Optional[str], tls_ca: Optional[str]) -> StrataClient:
    return StrataClient(addr, token=token, tls_ca=tls_ca)


def runs(
    addr: Optional[str] = None,
    *,
    status: Optional[str] = None,
    tag: Optional[str] = None,
    verdict: Optional[str] = None,
    sweep: Optional[str] = None,
    limit: Optional[int] = None,
    token: Optional[str] = None,
    tls_ca: Optional[str] = None,
) -> RunList:
    """Runs, newest first, filtered as `strata list` filters them: `status` (`running`,
    `completed`, ...), `tag`, `verdict` (`good`, `overfitting`, ...), `sweep`, `limit`."""
    filters: Dict[str, Any] = {}
    if status:
        filters["status"] = enum_value("RunStatus", "RUN_STATUS_" + status.upper())
    if verdict:
        filters["verdict"] = enum_value("Verdict", "VERDICT_" + verdict.upper().replace("-", "_"))
    if tag:
        filters["tag"] = tag
    if sweep:
        filters["sweep"] = sweep
    if limit:
        filters["limit"] = int(limit)
    with _connect(addr, token, tls_ca) as client:
        return RunList(RunInfo.of(r) for r in client.list_runs(**filters))


def run(
    run_id: str,
    addr: Optional[str] = None,
    *,
    token: Optional[str] = None,
    tls_ca: Optional[str] = None,
) -> Run:
    """One run (an id or a unique prefix): its config, facts, verdict and reason, group
    diagnoses, and every stored epoch (read page by page)."""
    client = _connect(addr, token, tls_ca)
    first = client.get_run(run_id, from_epoch=1)
    epochs = [epoch_record(e) for e in first.epochs]
    page = first
    while page.next_epoch:
        page = client.get_run(first.run.id, from_epoch=page.next_epoch)
        epochs.extend(epoch_record(e) for e in page.epochs)
    info = RunInfo.of(first.run)
    analysis = first.analysis
    return Run(
        **info.__dict__,
        config=_dict(first.run.config),
        facts=_dict(first.run.facts),
        verdict=label("Verdict", analysis.verdict),
        verdict_reason=analysis.reason,
        analysis={k: v for k, v in _dict(analysis).items() if k not in ("groups", "verdict", "reason")},
        group_diagnoses=[
            GroupDiagnosis(g.name, label("Diagnosis", g.diagnosis), g.update_ratio, g.advice)
            for g in analysis.groups
        ],
        epochs=epochs,
        _client=client,
    )


@dataclass
class ComparedRun:
    id: str
    name: str
    rank: int
    status: str
    verdict: str
    reason: str
    best_val_loss: float
    best_epoch: int
    epochs_done: int


@dataclass
class Comparison:
    """Runs ranked by best validation loss, best first, with the daemon's summary."""

    runs: List[ComparedRun]
    best_run: str
    summary: str

    def to_pandas(self) -> Any:
        return _pandas().DataFrame([r.__dict__ for r in self.runs])


def compare(
    run_ids: Iterable[str],
    addr: Optional[str] = None,
    *,
    token: Optional[str] = None,
    tls_ca: Optional[str] = None,
) -> Comparison:
    """Analyses several runs and ranks them by best validation loss (`strata compare`)."""
    with _connect(addr, token, tls_ca) as client:
        answer = client.compare_runs(list(run_ids))
    return Comparison(
        runs=[
            ComparedRun(
                id=r.run.id,
                name=r.run.name,
                rank=r.rank,
                status=label("RunStatus", r.run.status),
                verdict=label("Verdict", r.analysis.verdict),
                reason=r.analysis.reason,
                best_val_loss=r.analysis.best_val_loss,
                best_epoch=r.analysis.best_epoch,
                epochs_done=r.run.epochs_done,
            )
            for r in answer.runs
        ],
        best_run=answer.best_run,
        summary=answer.summary,
    )
