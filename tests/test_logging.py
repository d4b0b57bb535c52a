"""Library code logs (the ``enhancer`` logger) instead of printing; the CLI shows that log as its
own lines on stderr: ``warning: ...``, ``error: ...``, and with -v the INFO lines (ffmpeg commands)."""
from __future__ import annotations

import logging

import pytest

from enhancer.batch import plan_batch
from enhancer.infer.engine import EnhanceOptions
from enhancer.infer.restorer import ClassicalUpscaler
from enhancer.io.muxer import EncodeOptions
from enhancer.state import RECORDS


@pytest.fixture
def cli_log():
    """The CLI's set-up, taken down again (tests share one process)."""
    from enhancer import cli

    log = logging.getLogger("enhancer")
    level, handlers = log.level, list(log.handlers)
    yield cli._log_to_stderr
    log.handlers[:] = handlers
    log.setLevel(level)


def test_a_batch_logs_its_warnings_and_prints_nothing(tmp_path, caplog, capsys):
    (tmp_path / RECORDS).mkdir()
    (tmp_path / RECORDS / "x.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="enhancer"):
        plan_batch([], ClassicalUpscaler("lanczos", 2), EncodeOptions(), EnhanceOptions(), folder=tmp_path)
    assert [(r.name, r.levelno) for r in caplog.records] == [("enhancer.batch", logging.WARNING)]
    assert "the record x.json could not be read" in caplog.records[0].getMessage()
    assert capsys.readouterr() == ("", "")  # the log is the only way out


def test_the_cli_shows_the_log_as_its_lines(cli_log, capsys):
    log = logging.getLogger("enhancer.somewhere")
    for verbose in (False, True, False):
        cli_log(verbose)
        cli_log(verbose)  # set up twice: still one handler, one line each
        log.info("$ ffmpeg -i a.mp4")
        log.warning("a.mp4: a warning")
        log.error("a.mp4: an error")
        err = capsys.readouterr().err
        assert err == ("$ ffmpeg -i a.mp4\n" if verbose else "") + "warning: a.mp4: a warning\nerror: a.mp4: an error\n"
