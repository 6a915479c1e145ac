"""script_context: what a failing workflow script leaves in its log and on the terminal."""

from types import SimpleNamespace

import pytest

from liverseg.errors import InputError
from liverseg.workflow.scripting import script_context


def _job(tmp_path):
    return SimpleNamespace(log=[str(tmp_path / "job.log")])


def test_input_error_is_one_line_in_log_and_terminal(tmp_path, capsys):
    job = _job(tmp_path)
    with pytest.raises(SystemExit) as stop:
        with script_context(job):
            print("reading")
            raise InputError("lb3.nii.gz: label value 3 outside {0, 1, 2}")
    assert stop.value.code == 1
    log = (tmp_path / "job.log").read_text()
    assert log.splitlines() == ["reading", "liverseg: lb3.nii.gz: label value 3 outside {0, 1, 2}"]
    assert capsys.readouterr().err.strip() == "liverseg: lb3.nii.gz: label value 3 outside {0, 1, 2}"


def test_a_bug_keeps_its_traceback_in_the_log(tmp_path):
    job = _job(tmp_path)
    with pytest.raises(ZeroDivisionError):
        with script_context(job):
            1 / 0  # noqa: B018 (the error under test)
    log = (tmp_path / "job.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert "ZeroDivisionError: division by zero" in log
