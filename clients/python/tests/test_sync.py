"""`strata sync DIR` sends a spool a logger left behind, once, and again changes nothing."""

from __future__ import annotations

import json

import strata_client

from .conftest import free_port
from .test_logger import epochs_of, new_logger
from .helpers import train_epoch


def test_strata_sync_sends_a_spool_left_behind_exactly_once(start_daemon, spool_dir):
    port = free_port()
    logger = new_logger(f"127.0.0.1:{port}", spool_dir, name="offline")
    step = 0
    for _ in range(4):
        logger.log_epoch(**train_epoch(logger.model, logger.optimizer, logger, step))
        step += 4
    report = logger.close(timeout_s=2)
    assert (report.spooled.epochs, report.spooled.steps, report.finish_spooled) == (4, 16, True)
    assert f"strata sync {spool_dir}" in str(report)

    daemon = start_daemon()
    # The spool names the daemon it was for; --addr sends it elsewhere.
    sent = daemon.strata("sync", str(spool_dir), "--json")
    assert sent.returncode == 0, sent.stderr
    answer = json.loads(sent.stdout)
    [synced] = answer["synced"]
    assert (synced["epochs_stored"], synced["steps_stored"], synced["status"], synced["created"]) == (4, 16, "completed", True)
    assert not logger.spool_path.exists()
    assert epochs_of(daemon, synced["run_id"]) == [1, 2, 3, 4]
    run = strata_client.run(synced["run_id"], daemon.addr)
    assert run.verdict and run.client_key == logger.client_key

    again = daemon.strata("sync", str(spool_dir))
    assert again.returncode == 0 and "nothing to send" in again.stdout


def test_a_spool_sent_twice_or_after_its_logger_stores_each_epoch_once(start_daemon, spool_dir):
    port = free_port()
    logger = new_logger(f"127.0.0.1:{port}", spool_dir)
    for _ in range(2):
        logger.log_epoch(**train_epoch(logger.model, logger.optimizer))
    report = logger.close(timeout_s=2)
    copy = spool_dir / "copy"
    copy.mkdir()
    (copy / logger.spool_path.name).write_bytes(logger.spool_path.read_bytes())
    daemon = start_daemon()
    for folder in (spool_dir, copy):
        sent = daemon.strata("sync", str(folder), "--json")
        assert sent.returncode == 0, sent.stderr
    [synced] = json.loads(sent.stdout)["synced"]
    assert (synced["epochs_stored"], synced["status"], synced["created"]) == (0, "completed", False)
    assert epochs_of(daemon, synced["run_id"]) == [1, 2]
    assert report.run_id is None


def test_a_spool_still_held_by_its_logger_is_left_alone(start_daemon, spool_dir):
    port = free_port()
    logger = new_logger(f"127.0.0.1:{port}", spool_dir, retry_s=3600)
    logger.log_epoch(**train_epoch(logger.model, logger.optimizer))
    assert logger.flush(30) and logger.spool_path.exists()
    daemon = start_daemon()
    sent = daemon.strata("sync", str(spool_dir))
    assert sent.returncode == 0, sent.stderr
    assert "left alone (a running logger holds it)" in sent.stdout
    assert logger.spool_path.exists()
    logger.close(timeout_s=1)


def test_a_refused_spool_is_kept_and_the_reason_said(start_daemon, spool_dir):
    port = free_port()
    logger = new_logger(f"127.0.0.1:{port}", spool_dir)
    logger.log_epoch(train_loss=1.0, val_loss=1.0, val_accuracy=1.5)
    logger.close(timeout_s=2)
    daemon = start_daemon()
    sent = daemon.strata("sync", str(spool_dir))
    assert sent.returncode == 1
    assert "val_accuracy is 1.5" in sent.stderr and "the file is kept" in sent.stderr
    assert logger.spool_path.exists()
