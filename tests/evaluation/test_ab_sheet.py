"""Blind A/B sheets: export, the filled-sheet round trip, bad sheets, win rate and agreement."""
from __future__ import annotations

import csv
import io
import json

import pytest

from ftkit.errors import DataError
from ftkit.evaluation import ab_sheet
from ftkit.evaluation.ab_sheet import PairItem
from ftkit.evaluation.agreement import agreement, band, cohen_kappa


def _items(n: int = 12) -> list[PairItem]:
    # Example 0 has identical outputs: it cannot be rated and must be left out of the sheet.
    return [PairItem(f"ex{i}", f"ticket <b>{i}</b>: where is my order?", f"old answer {i}",
                     "old answer 0" if i == 0 else f'{{"category": "shipping", "n": {i}}}') for i in range(n)]


@pytest.fixture
def sheet(tmp_path):
    rows, key = ab_sheet.build_sheet(_items(), n_items=8, seed=3, context={"training_run": "r1"})
    paths = ab_sheet.write_sheet(tmp_path / "ab", rows, key)
    return rows, key, paths


def _fill(path, rows, choices: dict, header=ab_sheet.SHEET_COLUMNS, delimiter=","):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        values = {**row, "choice": choices.get(row["item_id"], row.get("choice", ""))}
        writer.writerow([values.get(c, "") for c in header])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _prefer(key, system: str, rows) -> dict:
    """The choice ('1'/'2') that picks ``system`` for every row, using the key."""
    first = {it["item_id"]: it["first"] for it in key["items"]}
    return {r["item_id"]: "1" if first[r["item_id"]] == system else "2" for r in rows}


def test_export_is_blind_seeded_and_leaves_out_identical_outputs(sheet):
    rows, key, paths = sheet
    assert len(rows) == 8 and key["n_identical_excluded"] == 1
    assert "ex0" not in {it["example_id"] for it in key["items"]}
    assert {it["first"] for it in key["items"]} == {"baseline", "fine_tuned"}  # both orders occur
    text = paths["csv"].read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == ",".join(ab_sheet.SHEET_COLUMNS)
    assert "baseline" not in text and "fine_tuned" not in text and "ex1" not in text  # the key stays separate
    again, key2 = ab_sheet.build_sheet(_items(), n_items=8, seed=3, context={"training_run": "r1"})
    assert key2["sheet_id"] == key["sheet_id"] and again == rows
    other_model = [PairItem(i.example_id, i.input, i.baseline, i.fine_tuned + " v2") for i in _items()]
    assert ab_sheet.build_sheet(other_model, 8, seed=3)[1]["sheet_id"] != key["sheet_id"]
    assert json.loads(paths["key"].read_text())["items"] == key["items"]


def test_html_form_is_self_contained_and_escapes_inputs(sheet):
    rows, key, paths = sheet
    page = paths["html"].read_text()
    assert "<script src" not in page and "http://" not in page and "https://" not in page
    assert "ticket &lt;b&gt;1&lt;/b&gt;" in page and "<b>1</b>" not in page
    assert all(f'data-id="{r["item_id"]}"' in page for r in rows)
    assert "item_id,choice,comment,rater" in page  # the CSV the form downloads, which read_sheet accepts


def test_round_trip_two_raters_win_rate_and_kappa(sheet, tmp_path):
    rows, key, _ = sheet
    ratings = tmp_path / "ratings"
    ratings.mkdir()
    ann = _prefer(key, "fine_tuned", rows)  # Ann prefers the fine-tuned answer every time
    bob = dict(_prefer(key, "fine_tuned", rows))
    ids = [r["item_id"] for r in rows]
    bob[ids[0]] = _prefer(key, "baseline", rows)[ids[0]]  # Bob disagrees on two items: one loss, one tie
    bob[ids[1]] = "TIE"
    _fill(ratings / "ann.csv", rows, ann)
    _fill(ratings / "bob.csv", rows, bob, delimiter=";")  # Excel in many locales saves with ';'
    (ratings / "ab_sheet_other.csv").write_text("item_id,choice\nffffffff-001,1\n")  # another model's sheet
    collected, used, others = ab_sheet.collect(ratings, key)
    assert sorted(collected) == ["ann", "bob"] and others == ["ab_sheet_other.csv"]
    assert [p.name for p in used] == ["ann.csv", "bob.csv"]
    res = ab_sheet.analyse(collected, key, n_boot=300, seed=1)
    per = {r["rater"]: r for r in res["per_rater"]}
    assert (per["ann"]["wins"], per["ann"]["losses"], per["ann"]["ties"]) == (8, 0, 0)
    assert (per["bob"]["wins"], per["bob"]["losses"], per["bob"]["ties"]) == (6, 1, 1)
    # Item scores (mean over raters): 6 items 1.0, one item (1 + 0) / 2, one item (1 + 0.5) / 2.
    assert res["win_rate"] == pytest.approx((6 + 0.5 + 0.75) / 8)
    assert res["ci"][0] <= res["win_rate"] <= res["ci"][1] <= 1.0
    assert (res["items_won"], res["items_lost"], res["items_tied"]) == (7, 0, 1)
    # Kappa by hand: Ann says fine_tuned 8/8, so p_e = p_bob(fine_tuned) = 6/8 and p_o = 6/8: kappa = 0.
    assert res["agreement"]["kappa"] == pytest.approx(0.0) and res["agreement"]["method"] == "cohen"


def test_html_download_format_with_rater_column_is_accepted(sheet, tmp_path):
    rows, key, _ = sheet
    choices = _prefer(key, "baseline", rows)
    path = _fill(tmp_path / "ab_ratings_x.csv", [{**r, "rater": "Carol"} for r in rows], choices,
                 header=("item_id", "choice", "comment", "rater"))
    rater, got = ab_sheet.read_sheet(path, key)
    assert rater == "Carol" and set(got.values()) <= {1, 2}
    assert set(ab_sheet.unblind(got, key).values()) == {"baseline"}


@pytest.mark.parametrize("mutate, expected", [
    (lambda rows: rows[:-2], ["2 item(s) of sheet", "have no row"]),
    (lambda rows: rows + [{**rows[0], "item_id": "zzz-999"}], ["unknown item id 'zzz-999'"]),
    (lambda rows: rows + [dict(rows[3])], ["appears twice (first on line 5)"]),
    (lambda rows: [{**r, "choice": "maybe"} if i == 2 else r for i, r in enumerate(rows)],
     ["line 4", "'maybe' is not valid"]),
    (lambda rows: [{**r, "choice": ""} if i == 5 else r for i, r in enumerate(rows)], ["line 7", "has no choice"]),
])
def test_bad_sheets_name_the_rows_to_fix(sheet, tmp_path, mutate, expected):
    rows, key, _ = sheet
    filled = [{**r, "choice": c} for r, c in zip(rows, _prefer(key, "fine_tuned", rows).values())]
    path = _fill(tmp_path / "bad.csv", mutate(filled), {})
    with pytest.raises(DataError) as info:
        ab_sheet.read_sheet(path, key)
    assert all(e in str(info.value) for e in expected), str(info.value)
    assert "row(s) to fix" in str(info.value)


def test_every_problem_is_listed_at_once_and_partial_sheets_can_be_allowed(sheet, tmp_path):
    rows, key, _ = sheet
    bad = [{**rows[0], "choice": "3"}, {**rows[1], "choice": ""}, {**rows[1], "choice": "1"}]
    path = _fill(tmp_path / "bad.csv", bad, {})
    with pytest.raises(DataError) as info:
        ab_sheet.read_sheet(path, key)
    text = str(info.value)
    assert "4 row(s) to fix" in text and "line 2" in text and "line 3" in text and "line 4" in text
    partial = _fill(tmp_path / "partial.csv", [{**rows[0], "choice": "2"}, {**rows[1], "choice": ""}], {})
    rater, got = ab_sheet.read_sheet(partial, key, allow_partial=True)
    assert rater == "partial" and got == {rows[0]["item_id"]: 2}


def test_wrong_columns_and_duplicate_raters(sheet, tmp_path):
    rows, key, _ = sheet
    path = _fill(tmp_path / "cols.csv", rows, {}, header=("item", "input", "preferred"))
    with pytest.raises(DataError, match="missing column.*item_id.*choice"):
        ab_sheet.read_sheet(path, key)
    folder = tmp_path / "dup"
    folder.mkdir()
    for name in ("a.csv", "b.csv"):
        _fill(folder / name, [{**r, "rater": "Dana"} for r in rows], _prefer(key, "fine_tuned", rows),
              header=("item_id", "choice", "rater"))
    with pytest.raises(DataError, match="both ratings by 'Dana'"):
        ab_sheet.collect(folder, key)


def test_cohen_kappa_textbook_example_and_bands():
    # 50 items: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == 1.0 and band(0.4) == "moderate"
    three = agreement({"x": {"1": "a", "2": "b"}, "y": {"1": "a", "2": "b"}, "z": {"1": "b", "2": "a"}})
    assert three["method"] == "mean pairwise cohen" and len(three["pairs"]) == 3
