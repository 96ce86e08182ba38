"""LLM-as-judge against a real OpenAI-compatible HTTP server (tests/chat_server.py, tiny model behind it)."""
from __future__ import annotations

from ftkit.config import parse_config
from ftkit.evaluation import ab_sheet, judge
from ftkit.evaluation.ab_sheet import PairItem


def test_parse_choice_accepts_only_one_of_the_three_answers():
    assert [judge.parse_choice(t) for t in ("1", "2.", "Tie", "answer 2", "**1**")] == [1, 2, 0, 2, 1]
    assert [judge.parse_choice(t) for t in ("", "3", "both", "1 or 2?", "10")] == [None, None, None, None, None]


def test_judge_endpoint_falls_back_to_the_baseline_endpoint():
    config = parse_config({"baseline": {"openai": {"base_url": "http://127.0.0.1:9/v1", "model": "base-judge"}}})
    assert judge.client_for(config).model == "base-judge"
    config = parse_config({"baseline": {"openai": {"base_url": "http://127.0.0.1:9/v1", "model": "base-judge"}},
                           "evaluation": {"judge": {"base_url": "http://127.0.0.1:8/v1", "model": "strong"}}})
    assert (judge.client_for(config).model, judge.client_for(config).base_url) == ("strong", "http://127.0.0.1:8/v1")


def test_judge_sees_every_item_blind_with_the_reference_and_records_its_prompt(tiny_model_dir):
    from chat_server import ChatServer
    from ftkit.openai_backend import OpenAIChatClient

    items = [PairItem(f"e{i}", f"ticket {i}", f"base {i}", f"tuned {i}") for i in range(4)]
    rows, key = ab_sheet.build_sheet(items, 4, seed=2)
    refs = {f"e{i}": f"reference {i}" for i in range(4)}
    with ChatServer(tiny_model_dir, model_name="judge") as server:
        client = OpenAIChatClient(server.base_url, "judge", api_key_env="")
        res = judge.run_judge(client, rows, key, refs, "Classify the ticket.", n_boot=100)
    assert res["n_asked"] == 4 == len(server.requests)
    example_of = {it["item_id"]: it["example_id"] for it in key["items"]}
    for request, row in zip(server.requests, rows):
        messages = request["body"]["messages"]
        assert messages[0]["content"] == judge.JUDGE_SYSTEM and request["body"]["max_tokens"] == judge.JUDGE_MAX_TOKENS
        text = messages[1]["content"]
        assert text.index(row["output_1"]) < text.index(row["output_2"])  # the sheet's blind order
        assert f"reference {example_of[row['item_id']][1:]}" in text and "Classify the ticket." in text
    assert res["prompt"] == judge.prompt_record() and len(res["prompt"]["sha256"]) == 64
    # The tiny random model rarely answers 1/2/tie: what it said is kept, and only usable replies count.
    assert len(res["unparsed"]) + res["n_items"] == 4
    assert all(set(u) == {"item_id", "reply"} for u in res["unparsed"])
