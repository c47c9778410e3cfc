"""runs(), run(), compare(): the filters of `strata list`, every epoch (paged), the verdict and
the group diagnoses; DataFrames with pandas."""

from __future__ import annotations

import pytest

import strata_client

from .test_logger import new_logger
from .helpers import train_epoch


def log_run(daemon, spool_dir, name, tags, epochs):
    logger = new_logger(daemon.addr, spool_dir, name=name, tags=tags, hyperparameters={"batch": 32})
    step = 0
    for _ in range(epochs):
        logger.log_epoch(**train_epoch(logger.model, logger.optimizer, logger, step), val_f1=0.5)
        step += 4
    logger.close()
    return logger.run_id


def test_runs_run_and_compare_read_what_was_logged(daemon, spool_dir):
    a = log_run(daemon, spool_dir, "a", ["cifar"], 5)
    b = log_run(daemon, spool_dir, "b", ["other"], 3)
    listed = strata_client.runs(daemon.addr)
    assert [r.id for r in listed] == [b, a], "newest first"
    assert [r.id for r in strata_client.runs(daemon.addr, tag="cifar")] == [a]
    assert [r.id for r in strata_client.runs(daemon.addr, status="completed", limit=1)] == [b]
    assert listed[1].hyperparameters["batch"] == "32"

    run = strata_client.run(a[:6], daemon.addr)
    assert (run.id, run.name, run.status, run.external) == (a, "a", "completed", True)
    assert run.verdict in ("good", "slow", "plateaued", "too-short", "unstable", "overfitting", "not-learning")
    assert run.verdict_reason
    assert [g.name for g in run.group_diagnoses] == ["body", "head"]
    assert run.facts["classes"] == 3 and run.config["task"] == "classification"
    assert [e["epoch"] for e in run.epochs] == [1, 2, 3, 4, 5]
    last = run.epochs[-1]
    assert last["val_f1"] == 0.5 and last["lr/head"] == 0.2 and last["update_ratio/body"] > 0
    assert len(run.steps()) == 20

    compared = strata_client.compare([a, b], daemon.addr)
    assert sorted(r.id for r in compared.runs) == sorted([a, b])
    assert compared.runs[0].rank == 1 and compared.summary


def test_dataframes_when_pandas_is_there(daemon, spool_dir):
    pandas = pytest.importorskip("pandas")
    a = log_run(daemon, spool_dir, "framed", [], 3)
    frame = strata_client.run(a, daemon.addr).epochs_frame()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame["epoch"]) == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_accuracy", "val_f1", "grad_norm/body"} <= set(frame.columns)
    assert len(strata_client.runs(daemon.addr).to_pandas()) == 1
    assert list(strata_client.compare([a], daemon.addr).to_pandas()["id"]) == [a]
    steps = strata_client.run(a, daemon.addr).steps_frame()
    assert list(steps.columns) == ["step", "epoch", "train_loss"]
