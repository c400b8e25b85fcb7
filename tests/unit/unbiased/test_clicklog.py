"""Click logs: format, round trip, bad lines naming file and line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.unbiased.click_models import PositionBasedModel, simulate_sessions
from rankstack.unbiased.clicklog import ClickLog, read_clicklog, write_clicklog

SESSIONS = [
    {"qid": "q1", "docids": ["d1", "d2", "d3"], "clicks": [0, 1, 0], "propensities": [0.68, 0.61, 0.48]},
    {"qid": "q2", "docids": ["e1"], "clicks": [1], "propensities": [0.68]},
]


# ----------------------------------------------------------------------------- log format
def test_round_trip(tmp_path):
    log = ClickLog.from_sessions(SESSIONS)
    path = tmp_path / "c.jsonl"
    write_clicklog(log, path)
    back = read_clicklog(path)
    assert back.sessions() == SESSIONS
    assert back.lengths.tolist() == [3, 1]
    assert back.mask.tolist() == [[True, True, True], [True, False, False]]
    # a log without propensities round-trips too
    plain = [{k: v for k, v in s.items() if k != "propensities"} for s in SESSIONS]
    write_clicklog(ClickLog.from_sessions(plain), path)
    assert read_clicklog(path).propensities is None
    assert read_clicklog(path).sessions() == plain
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file


def test_simulated_log_round_trip(tmp_path):
    docids = np.array([["a", "b", "c"], ["x", "y", ""]])
    log = simulate_sessions(PositionBasedModel(eta=2), ["q1", "q2"], docids, np.array([[2, 0, 1], [1, 0, 0]]),
                            np.array([3, 2]), 500, np.random.default_rng(0))
    write_clicklog(log, tmp_path / "s.jsonl")
    back = read_clicklog(tmp_path / "s.jsonl")
    assert np.array_equal(back.clicks, log.clicks) and np.array_equal(back.docids, log.docids)
    assert np.allclose(back.propensities, log.propensities)


BAD_LINES = [
    ('{"qid": "q", "docids": ["a", "b"], "clicks": [0]}', "2 docids but 1 clicks"),
    ('{"qid": "q", "docids": ["a"], "clicks": [2]}', "clicks must be 0 or 1"),
    ('{"qid": "q", "docids": ["a"], "clicks": [true]}', "clicks must be 0 or 1"),
    ('{"qid": "q", "docids": ["a"], "clicks": [0], "click": [1]}', "did you mean 'clicks'"),
    ('{"qid": "q", "docids": ["a"]}', "missing field(s) clicks"),
    ('{"qid": 7, "docids": ["a"], "clicks": [0]}', "qid must be a non-empty string"),
    ('{"qid": "q", "docids": [], "clicks": []}', "non-empty list"),
    ('{"qid": "q", "docids": ["a", "a"], "clicks": [0, 0]}', "shown twice"),
    ('{"qid": "q", "docids": ["a"], "clicks": [0], "propensities": [1.5]}', "not a number in [0, 1]"),
    ('{"qid": "q", "docids": ["a"], "clicks": [1], "propensities": [0]}', "propensity 0"),
    ('{"qid": "q", "docids": ["a"], "clicks": [0], "propensities": [0.5, 0.4]}', "but propensities 2"),
    ('{"qid": "q", "docids": ["a"], "clicks": [0]', "not valid JSON"),
    ('["q", ["a"], [0]]', "must be a JSON object"),
]


@pytest.mark.parametrize("line,message", BAD_LINES)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"qid": "ok", "docids": ["a"], "clicks": [0]}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_clicklog(path)
    assert message in str(err.value)
    assert err.value.path == str(path) and err.value.line == 3
    assert err.value.fix


def test_mixed_propensities_and_file_level_errors(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(SESSIONS[0]) + "\n" + '{"qid": "q", "docids": ["a"], "clicks": [0]}\n')
    with pytest.raises(InputError, match="some sessions have propensities") as err:
        read_clicklog(path)
    assert err.value.line == 2
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b'{"qid": "q", "docids": ["a"], "clicks": [0]}\r\n')
    with pytest.raises(InputError, match="CRLF"):
        read_clicklog(crlf)
    with pytest.raises(InputError, match="does not exist"):
        read_clicklog(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_clicklog(tmp_path / "empty.jsonl")
