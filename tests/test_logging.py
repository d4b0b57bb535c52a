"""Library code logs (the ``enhancer`` logger) instead of printing; the CLI shows that log as its
own lines on stderr: ``warning: ...``, ``error: ...``, and with -v the INFO lines (ffmpeg commands)."""
from __future__ import annotations

import logging

import pytest

from enhancer.batch.runner import plan_batch
from enhancer.pipeline.engine import EnhanceOptions
from enhancer.restore.restorer import ClassicalUpscaler
from enhancer.media.encode import EncodeOptions
from enhancer.batch.state import RECORDS


@pytest.fixture
def cli_log():
    """The CLI's set-up, taken down again (tests share one process)."""
    from enhancer.cli import common

    log = logging.getLogger("enhancer")
    level, handlers = log.level, list(log.handlers)
    yield common.log_to_stderr
    log.handlers[:] = handlers
    log.setLevel(level)


def test_a_batch_logs_its_warnings_and_prints_nothing(tmp_path, caplog, capsys, monkeypatch):
    (tmp_path / RECORDS).mkdir()
    (tmp_path / RECORDS / "x.json").write_text("{not json")
    # as a library user has it: no handler of the CLI's (an in-process CLI test may have set one up)
    monkeypatch.setattr(logging.getLogger("enhancer"), "handlers", [])
    with caplog.at_level(logging.WARNING, logger="enhancer"):
        plan_batch([], ClassicalUpscaler("lanczos", 2), EncodeOptions(), EnhanceOptions(), folder=tmp_path)
    assert [(r.name, r.levelno) for r in caplog.records] == [("enhancer.batch.runner", logging.WARNING)]
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


def test_a_bug_of_ours_is_one_line_and_with_verbose_its_traceback(tmp_path, caplog):
    from conftest import make_clip
    from enhancer.batch.runner import Job, run_batch
    from enhancer.errors import InternalError

    class Broken(ClassicalUpscaler):
        def restore(self, images):
            raise InternalError("a restorer that returns nothing")

    src = make_clip(tmp_path / "a.mp4", seconds=0.2, audio=False)
    for verbose in (False, True):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="enhancer"):
            summary = run_batch([Job(str(src), str(tmp_path / f"{verbose}.mp4"))], Broken("lanczos", 2),
                                EncodeOptions(preset="ultrafast"), EnhanceOptions(progress=False), verbose=verbose)
        res = summary.files[0]
        assert res.status == "failed" and "internal error: a restorer that returns nothing" in res.error
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == verbose and all(r.exc_info and r.exc_info[0] is InternalError for r in errors)
