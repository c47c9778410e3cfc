"""A token and TLS: the logger and the read-back functions use them; a missing token is the
daemon's refusal, raised with its message (not spooled forever)."""

from __future__ import annotations

import subprocess

import pytest

import strata_client
from strata_client import StrataError

from .conftest import openssl_or_skip
from .test_logger import new_logger
from .helpers import train_epoch


def test_a_token_is_sent_and_its_absence_refused(start_daemon, spool_dir, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-for-tests\n")
    daemon = start_daemon("--token-file", str(token_file))
    logger = new_logger(daemon.addr, spool_dir, token="s3cret-token-for-tests")
    logger.log_epoch(**train_epoch(logger.model, logger.optimizer))
    assert logger.close().complete
    assert [r.id for r in strata_client.runs(daemon.addr, token="s3cret-token-for-tests")] == [logger.run_id]

    stranger = new_logger(daemon.addr, spool_dir)
    stranger.log_epoch(**train_epoch(stranger.model, stranger.optimizer))
    with pytest.raises(StrataError) as refused:
        stranger.close()
    assert refused.value.code == "UNAUTHENTICATED"
    with pytest.raises(StrataError, match="UNAUTHENTICATED"):
        strata_client.runs(daemon.addr)


def test_tls_with_a_ca_file(start_daemon, spool_dir, tmp_path):
    openssl = openssl_or_skip()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True, capture_output=True,
    )
    daemon = start_daemon("--tls-cert", str(cert), "--tls-key", str(key))
    addr = f"https://localhost:{daemon.port}"
    logger = new_logger(addr, spool_dir, tls_ca=str(cert))
    logger.log_epoch(**train_epoch(logger.model, logger.optimizer))
    assert logger.close().complete
    run = strata_client.run(logger.run_id, addr, tls_ca=str(cert))
    assert run.status == "completed" and len(run.epochs) == 1
    # Without the CA the certificate is not trusted: the daemon cannot be reached, and what is
    # logged waits in the spool.
    untrusting = new_logger(addr, spool_dir)
    untrusting.log_epoch(**train_epoch(untrusting.model, untrusting.optimizer))
    report = untrusting.close(timeout_s=2)
    assert report.spooled.epochs == 1
