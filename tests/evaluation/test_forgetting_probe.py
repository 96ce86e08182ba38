"""The shipped forgetting probe set and its scoring."""
from __future__ import annotations

import pytest

from ftkit.errors import DataError
from ftkit.evaluation import forgetting


def test_shipped_probe_set_is_well_formed():
    probes = forgetting.load_probes()
    assert 25 <= len(probes) <= 40
    assert len({p.id for p in probes}) == len(probes)
    assert {p.kind for p in probes} >= {"fact", "arithmetic", "language", "instruction"}
    # Each reference answer is recognised as right, and a refusal is not.
    for p in probes:
        assert forgetting.is_correct(f"The answer is {p.answers[0]}.", p.answers)
        assert not forgetting.is_correct("I am not sure.", p.answers)


def test_malformed_probe_file_lists_every_bad_line(tmp_path):
    path = tmp_path / "probe.jsonl"
    path.write_text('{"id": "a", "prompt": "q?", "answers": ["x"]}\n'
                    'not json\n'
                    '{"id": "a", "prompt": "q?", "answers": ["x"]}\n'
                    '{"id": "b", "prompt": "", "answers": ["x"]}\n'
                    '{"id": "c", "prompt": "q?", "answers": []}\n')
    with pytest.raises(DataError) as info:
        forgetting.load_probes(path)
    text = str(info.value)
    assert "4 problem(s)" in text
    assert all(f"line {n}" in text for n in (2, 3, 4, 5)) and "line 1:" not in text
    with pytest.raises(DataError, match="not found"):
        forgetting.load_probes(tmp_path / "missing.jsonl")


def test_compare_before_and_after():
    probes = forgetting.load_probes()[:4]
    before = [p.answers[0] for p in probes]
    after = [probes[0].answers[0], "no idea", '{"category": "billing"}', probes[3].answers[0]]
    res = forgetting.compare(probes, before, after)
    assert (res["before"], res["after"], res["drop"]) == (1.0, 0.5, 0.5)
    assert [r["id"] for r in res["lost"]] == [probes[1].id, probes[2].id] and res["gained"] == []
    assert res["mcnemar"]["old_only"] == 2 and res["mcnemar"]["p_value"] == pytest.approx(0.5)
