"""The logger against a real daemon: the loop never waits on the network, a daemon down at start
or gone mid-run loses nothing, heartbeats keep long epochs alive, data errors raise with the
daemon's words, mistakes raise at once, a logger that logged nothing leaves no run."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pytest

import strata_client
from strata_client import StrataError, StrataLogger
from strata_client.spool import read as read_spool

from .conftest import free_port, torch_or_skip
from .helpers import tiny, train_epoch


def new_logger(addr: str, spool_dir: Path, **options) -> StrataLogger:
    torch_or_skip()
    model, optimizer = tiny()
    options.setdefault("retry_s", 0.2)
    logger = StrataLogger(addr, name=options.pop("name", "test"), optimizer=optimizer, model=model,
                          task="classification", classes=3, spool_dir=spool_dir, **options)
    logger.model, logger.optimizer = model, optimizer
    return logger


def epochs_of(daemon, run_id: str) -> list:
    shown = daemon.strata("show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    import json

    return [e["epoch"] for e in json.loads(shown.stdout)["epochs"]]


class BlackHole:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.addr = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


def test_the_loop_never_waits_on_a_daemon_that_does_not_answer(spool_dir):
    hole = BlackHole()
    # A call would wait an hour for an answer: only a queue keeps the loop going.
    logger = new_logger(hole.addr, spool_dir, request_timeout_s=3600)
    done = threading.Event()

    def loop():
        step = 0
        for _ in range(5):
            figures = train_epoch(logger.model, logger.optimizer, logger, step)
            step += 4
            logger.log_epoch(**figures)
        done.set()

    threading.Thread(target=loop, daemon=True).start()
    assert done.wait(120), "the loop waited on the network"
    report = logger.close(timeout_s=1)
    hole.close()
    assert not report.complete
    assert (report.spooled.epochs, report.spooled.steps) == (5, 20)
    assert report.finish_spooled and report.spool_path == logger.spool_path
    entries, problem = read_spool(logger.spool_path)
    assert problem is None
    kinds = [e.WhichOneof("entry") for e in entries]
    assert kinds[0] == "header" and kinds[-1] == "finish"
    assert entries[0].header.create.client_key == logger.client_key
    assert sum(len(e.epochs.epochs) for e in entries if e.WhichOneof("entry") == "epochs") == 5
    assert "strata sync" in str(report)


def test_a_daemon_down_at_start_gets_every_record_once_it_is_up(start_daemon, spool_dir, caplog):
    port = free_port()
    logger = new_logger(f"127.0.0.1:{port}", spool_dir)
    step = 0
    with caplog.at_level(logging.WARNING, logger="strata_client"):
        for _ in range(3):
            logger.log_epoch(**train_epoch(logger.model, logger.optimizer, logger, step))
            step += 4
        assert logger.flush(30)
        assert logger.run_id is None, "no daemon: no run yet"
        assert logger.spool_path.exists()
        daemon = start_daemon(listen=f"127.0.0.1:{port}")
        for _ in range(3):
            logger.log_epoch(**train_epoch(logger.model, logger.optimizer, logger, step))
            step += 4
        report = logger.close()
    offline = [r for r in caplog.records if "cannot reach stratad" in r.getMessage()]
    assert len(offline) == 1, "one warning"
    assert str(logger.spool_path) in offline[0].getMessage()
    assert report.complete, str(report)
    assert not logger.spool_path.exists(), "a spool sent is removed"
    assert epochs_of(daemon, logger.run_id) == [1, 2, 3, 4, 5, 6]
    run = strata_client.run(logger.run_id, daemon.addr)
    assert run.status == "completed"
    assert len(run.steps()) == 24


def test_a_daemon_restarted_mid_run_continues_the_same_run(start_daemon, spool_dir, tmp_path):
    daemon = start_daemon("--external-timeout", "30")
    logger = new_logger(daemon.addr, spool_dir)
    logger.log_epoch(**train_epoch(logger.model, logger.optimizer))
    assert logger.wait_for_run_id(30)
    daemon.stop()
    logger.log_epoch(**train_epoch(logger.model, logger.optimizer))
    assert logger.flush(30)
    again = start_daemon("--external-timeout", "30", data_dir=daemon.data_dir, listen=daemon.addr)
    logger.log_epoch(**train_epoch(logger.model, logger.optimizer))
    report = logger.close()
    assert report.complete, str(report)
    assert epochs_of(again, logger.run_id) == [1, 2, 3]
    run = strata_client.run(logger.run_id, again.addr)
    assert (run.status, len(strata_client.runs(again.addr))) == ("completed", 1)


def test_heartbeats_keep_a_run_with_epochs_longer_than_the_timeout_alive(start_daemon, spool_dir):
    daemon = start_daemon("--external-timeout", "2")
    logger = new_logger(daemon.addr, spool_dir)
    logger.log_epoch(**train_epoch(logger.model, logger.optimizer))
    assert logger.wait_for_run_id(30)
    time.sleep(6)  # an epoch three times the daemon's silence timeout
    shown = strata_client.run(logger.run_id, daemon.addr)
    assert shown.status == "running"
    logger.log_epoch(**train_epoch(logger.model, logger.optimizer))
    assert logger.close().complete
    run = strata_client.run(logger.run_id, daemon.addr)
    assert (run.status, len(run.epochs)) == ("completed", 2)


def test_the_daemons_refusal_of_the_data_raises_with_its_message(daemon, spool_dir):
    logger = new_logger(daemon.addr, spool_dir)
    logger.log_epoch(train_loss=1.0, val_loss=1.0, val_accuracy=1.5)
    logger._sender.flush(30)
    with pytest.raises(StrataError) as refused:
        logger.log_epoch(train_loss=0.9, val_loss=0.9, val_accuracy=0.5)
    assert refused.value.code == "INVALID_ARGUMENT"
    assert "val_accuracy is 1.5; it is from 0 to 1" in refused.value.message
    report = logger.close()
    assert report.error is not None and "1.5" in str(report)


def test_mistakes_raise_at_the_call_without_the_network(spool_dir):
    logger = new_logger(f"127.0.0.1:{free_port()}", spool_dir)
    logger.log(step=5, train_loss=1.0)
    for call, says in [
        (lambda: logger.log(step=5, train_loss=1.0), "steps increase strictly"),
        (lambda: logger.log(step=6, **{"train loss": 1.0}), "cannot name a scalar"),
        (lambda: logger.log_epoch(train_loss=1.0, val_loss=1.0, val_r2=0.5), "val_accuracy"),
        (lambda: logger.log_epoch(train_loss=1.0, val_accuracy=0.5), "needs its val_loss"),
        (lambda: logger.log_epoch(train_loss="high"), "give a number"),
    ]:
        with pytest.raises(ValueError, match=says):
            call()
    logger.close(timeout_s=1)


def test_a_logger_that_logged_nothing_leaves_no_run(daemon, spool_dir):
    logger = new_logger(daemon.addr, spool_dir)
    report = logger.close()
    assert report.run_id is None and report.complete
    assert strata_client.runs(daemon.addr) == []


def test_epochs_without_validation_and_steps_are_read_back(daemon, spool_dir):
    logger = new_logger(daemon.addr, spool_dir, name="no validation")
    step = 0
    for epoch in range(4):
        figures = train_epoch(logger.model, logger.optimizer, logger, step)
        step += 4
        if epoch % 2:
            logger.log_epoch(**figures, train_accuracy=0.5)
        else:
            logger.log_epoch(train_loss=figures["train_loss"])
    logger.close()
    run = strata_client.run(logger.run_id, daemon.addr)
    assert [e["val_loss"] is None for e in run.epochs] == [True, False, True, False]
    assert run.epochs[1]["train_accuracy"] == 0.5
    assert run.verdict_reason.startswith("judged on the 2 of 4 epochs that were validated")
    steps = run.steps()
    assert [s["step"] for s in steps] == list(range(1, 17))
    assert [s["epoch"] for s in steps][:5] == [1, 1, 1, 1, 2]


def test_a_spool_that_cannot_be_written_drops_records_but_never_the_loop(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the spool folder should be")
    logger = new_logger(f"127.0.0.1:{free_port()}", blocked / "spool")
    for _ in range(2):
        logger.log_epoch(**train_epoch(logger.model, logger.optimizer))
    report = logger.close(timeout_s=1)
    assert report.dropped_epochs == 2 and not report.complete
    assert "dropped" in str(report)
