"""Per family (tiny random models with the real published templates and special tokens): the chat plan decided
from renders, label spans, stop ids, greedy overrides, and that what is exported/served renders what training did."""
from __future__ import annotations

import pytest

from family_models import BASE_FAMILIES, CHAT_FAMILIES

ALL = CHAT_FAMILIES + BASE_FAMILIES
SYSTEM = "Answer in JSON."
CONVS = [
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "my card was charged twice"},
     {"role": "assistant", "content": '{"category": "billing"}'}],
    [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi you"},
     {"role": "user", "content": "more?"}, {"role": "assistant", "content": " ok then\n"}],
]
# What each template does with a system prompt, as its renders show (see ftkit.chat_plan).
EXPECTED_MODE = {"qwen2_5": "system_role", "llama3_1": "system_role", "mistral_v0_3": "folded_by_ftkit",
                 "gemma2": "folded_by_ftkit", "gemma3": "folded_by_template", "phi3": "system_role",
                 "gemma3_base": "folded_by_template", "plain_base": "system_role"}
EXPECTED_EOT = {"qwen2_5": "<|im_end|>", "llama3_1": "<|eot_id|>", "mistral_v0_3": "</s>", "gemma2": "<end_of_turn>",
                "gemma3": "<end_of_turn>", "phi3": "<|end|>", "gemma3_base": "<end_of_turn>", "plain_base": "<|im_end|>"}


def _tokenizer(family_dir, name):
    from ftkit.chat_plan import plan_chat
    from ftkit.models.loading import load_tokenizer

    tok = load_tokenizer(str(family_dir(name)))
    return tok, plan_chat(tok)


@pytest.mark.parametrize("name", ALL)
def test_plan_is_decided_from_what_the_template_renders(family_dir, name):
    tok, plan = _tokenizer(family_dir, name)
    assert plan.system_mode == EXPECTED_MODE[name]
    assert plan.end_of_turn == EXPECTED_EOT[name]
    assert plan.end_of_turn_id == tok.convert_tokens_to_ids(EXPECTED_EOT[name])
    rendered = tok.apply_chat_template(CONVS[0], tokenize=False)
    prompt = tok.apply_chat_template(CONVS[0][:-1], tokenize=False, add_generation_prompt=True)
    assert SYSTEM in rendered and SYSTEM in prompt and rendered.startswith(prompt)  # carried, and consistently
    record = plan.to_dict()
    assert record["summary"] and record["template_sha256"] and "template" not in record


def test_recorded_template_quirks(family_dir):
    assert _tokenizer(family_dir, "qwen2_5")[1].default_system_prompt.startswith("You are Qwen")
    assert "Today Date:" in _tokenizer(family_dir, "llama3_1")[1].system_additions
    assert _tokenizer(family_dir, "mistral_v0_3")[1].alternation_required
    assert "System role not supported" in _tokenizer(family_dir, "gemma2")[1].system_reason
    base = _tokenizer(family_dir, "gemma3_base")[1]
    assert base.template_source == "default:gemma" and "<start_of_turn>" in base.template_reason
    plain = _tokenizer(family_dir, "plain_base")[1]
    assert plain.template_source == "default:chatml" and plain.added_tokens == ["<|im_start|>", "<|im_end|>"]


@pytest.mark.parametrize("name", ALL)
def test_labels_are_each_answer_plus_its_end_of_turn_in_audit_and_training(family_dir, name):
    from ftkit.chat_format import IGNORE_INDEX, label_stats, render_with_spans, tokenize_with_assistant_labels

    tok, plan = _tokenizer(family_dir, name)
    trained = tokenize_with_assistant_labels(tok, CONVS)
    audited = label_stats(tok, render_with_spans(tok, CONVS))
    for conv, row, st in zip(CONVS, trained, audited):
        assert row["has_end_of_turn_label"] and st["has_end_of_turn_label"]  # one rule: both agree
        assert row["n_label_tokens"] == st["n_label_tokens"]
        # label runs, decoded: exactly each answer (the template may trim it) followed by the end-of-turn token
        runs, current = [], []
        for token, label in zip(row["input_ids"], row["labels"]):
            if label != IGNORE_INDEX:
                current.append(token)
            elif current:
                runs, current = runs + [current], []
        runs += [current] if current else []
        answers = [m["content"] for m in conv if m["role"] == "assistant"]
        assert len(runs) == len(answers)
        for run, answer in zip(runs, answers):
            assert run[-1] == plan.end_of_turn_id
            assert tok.decode(run[:-1]).strip() == answer.strip()


@pytest.mark.parametrize("name", ALL)
def test_stop_ids_include_the_end_of_turn_and_the_round_trip_holds(family_dir, name):
    from ftkit.evaluation.stops import round_trip
    from ftkit.generation import stop_token_ids
    from ftkit.models import load_model
    from ftkit.prompting import PromptSpec, build_prompts

    tok, plan = _tokenizer(family_dir, name)
    model = load_model(str(family_dir(name)), device="cpu")
    assert plan.end_of_turn_id in stop_token_ids(tok, model)
    records = [{"id": "a", "messages": CONVS[0]}, {"id": "b", "messages": CONVS[1]}]
    prompts = build_prompts(records, PromptSpec(system_prompt=SYSTEM), tok)
    assert round_trip(tok, prompts, ['{"category": "billing"}', "fine"])["failures"] == []


def test_greedy_scoring_overrides_inherited_generation_settings(family_dir):
    from ftkit.generation.local import greedy_overrides
    from ftkit.models import load_model

    model = load_model(str(family_dir("qwen2_5")), device="cpu")
    kwargs, overridden = greedy_overrides(model)
    assert overridden["repetition_penalty"] == pytest.approx(1.05)  # Qwen2.5's generation_config.json
    assert kwargs["repetition_penalty"] == 1.0
    assert "repetition_penalty" not in greedy_overrides(load_model(str(family_dir("phi3")), device="cpu"))[1]


@pytest.mark.parametrize("name", ALL)
def test_exported_and_served_template_renders_what_training_rendered(family_dir, name, tmp_path):
    """tokenizer_config.json (vLLM, TGI, transformers read it) and serving/chat_template.jinja (passed to vLLM
    with --chat-template) render a client's [system, user] request exactly as training rendered it."""
    from ftkit.chat_format import render_with_spans
    from ftkit.deployment.serving_configs import ServingContext, write_configs
    from ftkit.models.loading import load_tokenizer

    tok, plan = _tokenizer(family_dir, name)
    trained_text = render_with_spans(tok, [CONVS[0]])[0].text
    tok.save_pretrained(tmp_path / "export")
    exported = load_tokenizer(str(tmp_path / "export"))
    assert exported.apply_chat_template(CONVS[0], tokenize=False) == trained_text
    ctx = ServingContext(client="c", model_name="m", chat_template=tok.chat_template, stop_strings=[plan.end_of_turn],
                         system_prompt=SYSTEM, dtype="bf16", export_dtype="bf16", context_length=512,
                         max_input_tokens=256, max_tokens=64, concurrency=1, n_gpus=1, gpu_label="L4",
                         merged_dir="export/merged")
    write_configs(ctx, tmp_path, [])
    served = (tmp_path / ctx.chat_template_file).read_text(encoding="utf-8")
    assert exported.apply_chat_template(CONVS[0], chat_template=served, tokenize=False) == trained_text


def test_a_record_the_template_cannot_render_gets_one_sentence_with_the_fix(family_dir):
    from ftkit.chat_format import render_with_spans

    tok, _ = _tokenizer(family_dir, "gemma2")
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]
    error = render_with_spans(tok, [bad])[0].error
    assert "alternate" in error and "merge consecutive turns" in error


@pytest.mark.parametrize("name", ALL)
def test_ollama_template_renders_what_training_rendered(family_dir, name):
    """The Modelfile's TEMPLATE is derived from the training template's renders; its control flow (mirrored by
    render_segments, no Go engine here) reproduces the training prompt for single and multi-turn chats, with and
    without a system prompt, Llama 3.1's date lines, Qwen's default system prompt and folded system prompts included."""
    from ftkit.deployment.serving_configs import derived_go_template, render_segments

    tok, plan = _tokenizer(family_dir, name)
    go, notes = derived_go_template(tok)
    assert go.startswith("{{- $sys") and "{{ .Content }}" in go
    system, user, answer = CONVS[0]
    for conv in ([system, user], [user], [system, user, answer, {"role": "user", "content": "and then?"}]):
        expected = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        bos = tok.bos_token if any("BOS" in n for n in notes) else ""
        assert bos + _fill(go, conv) == expected


def _fill(go: str, messages) -> str:
    """Read the segments back out of the Go template text and render with the mirror (checks the text itself)."""
    import re

    from ftkit.deployment.serving_configs import GO_TEMPLATE, render_segments

    pattern = re.escape(GO_TEMPLATE).replace(re.escape("%(seg0)s"), "(?P<seg0>.*?)")
    for key in ("seg1", "n0", "seg3", "seg2", "seg4"):
        pattern = pattern.replace(re.escape(f"%({key})s"), f"(?P<{key}>.*?)")
    match = re.fullmatch(pattern, go, flags=re.S)
    assert match, "the TEMPLATE does not have the expected control flow"
    return render_segments(match.groupdict(), messages)


@pytest.mark.parametrize("shipped,published", [("llama3", "llama3_1"), ("gemma", "gemma3"), ("mistral", "mistral_v0_3"),
                                               ("phi3", "phi3"), ("chatml", None)])
def test_shipped_templates_are_the_published_ones_and_work_on_a_plain_base_model(family_dir, shipped, published):
    from family_models import template_text

    from ftkit.chat_format import tokenize_with_assistant_labels
    from ftkit.chat_plan import REQUIRED_TOKENS, plan_chat, shipped_template
    from ftkit.models.loading import load_tokenizer

    if published:
        assert shipped_template(shipped) == template_text(published)
    tok = load_tokenizer(str(family_dir("plain_base")))
    plan = plan_chat(tok, shipped)
    assert plan.template_source == f"shipped:{shipped}"
    assert set(plan.added_tokens) == set(REQUIRED_TOKENS[shipped])  # the plain vocabulary has none of them
    row = tokenize_with_assistant_labels(tok, [CONVS[0]])[0]
    assert row["has_end_of_turn_label"] and SYSTEM in tok.decode(row["input_ids"])


def test_chat_template_setting_errors_name_the_field(tmp_path, family_dir):
    from ftkit.chat_plan import plan_chat
    from ftkit.config import BaseModelSettings
    from ftkit.errors import ConfigError
    from ftkit.models.loading import load_tokenizer

    with pytest.raises(ValueError, match="chat_template must be one of chatml"):
        BaseModelSettings(chat_template="vicuna")
    tok = load_tokenizer(str(family_dir("plain_base")))
    with pytest.raises(ConfigError, match="base_model.chat_template: cannot read"):
        plan_chat(tok, str(tmp_path / "missing.jinja"))
    own = tmp_path / "own.jinja"
    own.write_text("{% for m in messages %}<|endoftext|>{{ m.role }}: {{ m.content }}{% endfor %}"
                   "{% if add_generation_prompt %}<|endoftext|>assistant: {% endif %}\n", encoding="utf-8")
    plan = plan_chat(tok, str(own))
    assert plan.template_source == f"file:{own}" and tok.chat_template.endswith("{% endif %}")
