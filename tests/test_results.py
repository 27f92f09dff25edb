import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from haltfast.certificate import Certificate
from haltfast.cli import main
from haltfast.errors import HaltfastError
from haltfast.journal import ResultsJournal
from haltfast.journal import journal_path

CONFIG = {"model_sha256": "ab" * 32, "sigma": 0.25, "alpha": 0.001, "method": "anytime", "radius": None}


def _cert(index, decision="certified", **kw):
    return Certificate(
        3, 0.4, decision, 120, p_lower=0.95, index=index, label=3, extra={"tested": 119, "selected": 3}, **kw
    )


def _journal_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _rows(path):
    """The certificate rows of a journal (it also holds run, draw and clean lines)."""
    return [line for line in _journal_lines(path)[1:] if "index" in line]


def test_journal_round_trip_and_resume(tmp_path):
    path = tmp_path / "r.csv.journal"
    with ResultsJournal.open(path, CONFIG) as j:
        assert j.finished == {}
        for k in range(3):
            j.append(_cert(k))
        j.append(_cert(7, "error", error="RuntimeError: boom"))
    with ResultsJournal.open(path, CONFIG) as j:
        assert sorted(j.finished) == [0, 1, 2]  # the error row is retried, not kept
        assert json.dumps(j.finished[1].row()) == json.dumps(_cert(1).row())  # NaN log_evalue included
        j.append(_cert(7))
    assert sorted(ResultsJournal.open(path, CONFIG).finished) == [0, 1, 2, 7]


def test_truncated_last_line_is_dropped_and_the_file_repaired(tmp_path):
    path = tmp_path / "r.csv.journal"
    with ResultsJournal.open(path, CONFIG) as j:
        for k in range(3):
            j.append(_cert(k))
    path.write_bytes(path.read_bytes()[:-25])  # killed mid-line
    with ResultsJournal.open(path, CONFIG) as j:
        assert sorted(j.finished) == [0, 1]
        j.append(_cert(2))
    assert [row["index"] for row in _rows(path)] == [0, 1, 2]  # every line parses again


def test_changed_configuration_is_refused_naming_what_changed(tmp_path):
    path = tmp_path / "r.csv.journal"
    with ResultsJournal.open(path, CONFIG) as j:
        j.append(_cert(0))
    for change in ({"sigma": 0.5}, {"alpha": 0.01}, {"method": "cohen"}, {"model_sha256": "cd" * 32}, {"radius": 0.5}):
        with pytest.raises(HaltfastError, match=f"different configuration \\({next(iter(change))}: "):
            ResultsJournal.open(path, {**CONFIG, **change})
    assert sorted(ResultsJournal.open(path, CONFIG).finished) == [0]  # refusing changed nothing


def test_a_journal_without_results_is_replaced_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "r.csv.journal"
    ResultsJournal.open(path, CONFIG).close()
    with ResultsJournal.open(path, {**CONFIG, "sigma": 0.5}) as j:  # nothing to lose: start over
        assert j.finished == {}
    assert _journal_lines(path)[0]["config"]["sigma"] == 0.5
    path.write_text("index,label\n1,2\n")
    with pytest.raises(HaltfastError, match="not a haltfast results journal"):
        ResultsJournal.open(path, CONFIG)
    with ResultsJournal.open(path := tmp_path / "b.journal", CONFIG) as j:
        j.append(_cert(0))
        j.append(_cert(1))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{garbage", lines[2]]) + "\n")
    with pytest.raises(HaltfastError, match="corrupt at line 2"):
        ResultsJournal.open(path, CONFIG)


def test_one_process_at_a_time(tmp_path):
    path = tmp_path / "r.csv.journal"
    with ResultsJournal.open(path, CONFIG), pytest.raises(HaltfastError, match="another haltfast run is writing"):
        ResultsJournal.open(path, CONFIG)


def _digits(certify_digits, out, *extra):
    return certify_digits("--skip", "1", "--out", str(out), "--quiet", *extra)


def _same_results(a, b):
    pd.testing.assert_frame_equal(pd.read_csv(a).drop(columns="seconds"), pd.read_csv(b).drop(columns="seconds"))


@pytest.mark.slow
def test_interrupted_anytime_run_resumes_to_the_uninterrupted_result(certify_digits, tmp_path, monkeypatch, capsys):
    # a prior fixed per input keeps the inputs apart: a resumed run keeps the finished ones (the online learner
    # couples them, so its runs are replayed on their journaled labels instead: tests/test_one_run.py)
    opts = ["--max", "16", "--max-samples", "1500", "--alpha", "0.01", "--prior", "jeffreys"]
    assert main(_digits(certify_digits, tmp_path / "whole.csv", *opts)) == 0
    out = tmp_path / "resumed.csv"
    append, written = ResultsJournal.append, []

    def ctrl_c_after_six(self, cert):
        append(self, cert)
        written.append(cert.index)
        if len(written) == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(ResultsJournal, "append", ctrl_c_after_six)
    assert main(_digits(certify_digits, out, *opts)) == 130
    assert not out.exists() and len(_rows(journal_path(out))) == 6
    monkeypatch.setattr(ResultsJournal, "append", append)
    capsys.readouterr()
    assert main(_digits(certify_digits, out, *opts, "--summary-json", str(tmp_path / "s.json"))) == 0
    assert "6 of 16 inputs already finished" in capsys.readouterr().err
    assert json.loads((tmp_path / "s.json").read_text())["resumed"] == 6
    _same_results(tmp_path / "whole.csv", out)
    rows = _rows(journal_path(out))
    assert sorted(r["index"] for r in rows) == sorted(pd.read_csv(out)["index"])  # each input computed once
    # --max grows: the 16 finished inputs are reused; a changed alpha is refused
    assert main(_digits(certify_digits, out, *opts[2:], "--max", "20")) == 0
    assert "16 of 20 inputs already finished" in capsys.readouterr().err
    assert (
        main(_digits(certify_digits, out, "--max", "20", "--max-samples", "1500", "--alpha", "0.001", *opts[-2:])) == 2
    )
    assert "alpha: 0.01 -> 0.001" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_matches_an_uninterrupted_run(certify_digits, tmp_path):
    """The run is killed with SIGKILL once some but not all inputs are journaled; the rerun finishes the rest."""
    opts = ["--method", "cohen", "--max", "20", "--n0", "20", "--n", "3000", "--batch", "100"]
    out = tmp_path / "killed.csv"
    journal = journal_path(out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "haltfast", *_digits(certify_digits, out, *opts)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    rows = 0
    while time.monotonic() < deadline and proc.poll() is None:
        rows = journal.read_bytes().count(b'"index"') if journal.exists() else 0
        if rows >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    before = journal.read_bytes()
    finished = before[: before.rfind(b"\n") + 1].count(b'"index"')
    assert 3 <= finished < 20 and not out.exists()

    assert main(_digits(certify_digits, out, *opts)) == 0
    after = journal.read_bytes()
    assert after.startswith(before[: before.rfind(b"\n") + 1])  # finished rows kept as they were
    indices = [row["index"] for row in _rows(journal)]
    assert len(indices) == len(set(indices)) == 20  # nothing finished was computed again
    assert main(_digits(certify_digits, tmp_path / "whole.csv", *opts)) == 0
    _same_results(tmp_path / "whole.csv", out)


def test_label_cache_holds_each_stream_from_its_start(tmp_path):
    path = tmp_path / "r.csv.journal"
    with ResultsJournal.open(path, CONFIG, knobs={"budget": None}) as j:
        j.start_run({"budget": None})
        j.append_draw([5, 6], [0, 0], [3, 2], np.array([1, 2, 3, 7, 8]), num_classes=10)
        j.append_draw([5, 6], [3, 5], [2, 1], np.array([4, 5, 9]), num_classes=10)  # 6 skips 2..4: not held
        j.append_clean([5], logits=np.array([[0.5, -1.25]]))
    cache = ResultsJournal.open(path, CONFIG, knobs={"budget": None}).labels
    assert (cache.length(5), cache.length(6), cache.length(7)) == (5, 2, 0)
    assert cache.take(5, 1, 4).tolist() == [2, 3, 4, 5] and cache.take(6, 0, 2).tolist() == [7, 8]
    assert cache.clean_logits[5].tolist() == [0.5, -1.25] and cache.evaluations == 5 + 2 + 1
