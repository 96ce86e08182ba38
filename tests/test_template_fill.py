"""Skeleton filling (ftkit.template_fill): only for templates that print content verbatim, same text as jinja."""
from __future__ import annotations

import random

import pytest

import ftkit.chat_format as chat_format
from ftkit.template_fill import TemplateFiller, content_is_only_printed

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' "
          "+ '\n'}}{% endfor %}")


@pytest.mark.parametrize("template, fillable", [
    (CHATML, True),
    ("{% for m in messages %}{{ m.role ~ ': ' ~ m.content }}\n{% endfor %}", True),
    ("{% for m in messages %}{{ m['content'] | trim }}{% endfor %}", False),  # Llama 3 style: content rewritten
    ("{% for m in messages %}{% if '</think>' in m.content %}x{% endif %}{{ m.content }}{% endfor %}", False),
    ("{% for m in messages %}{% set c = m['content'] %}{{ c }}{% endfor %}", False),
    ("{% for m in messages %}{% if m['content'] is string %}{{ m['content'] }}{% endif %}{% endfor %}", False),
    ("{% for m in messages %}{{ m.content if m.role == 'user' else 'x' }}{% endfor %}", False),
    ("{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}", False),  # unknown tag
    ("{{ messages | tojson }}", False),  # content printed JSON-escaped
    ("{% for m in messages %}{{ m }}{% endfor %}", False),  # a message printed whole (its repr)
    ("{% for m in messages %}{{ m.get('content') }}{% endfor %}", False),
    ("{% for m in messages %}{% if loop.first and m.role != 'user' %}{{ raise_exception('x') }}{% endif %}"
     "{{ m.content }}{% endfor %}", True),
])
def test_only_templates_that_print_content_verbatim_are_filled(template, fillable):
    assert content_is_only_printed(template) is fillable


@pytest.fixture
def tok(tiny_model_dir):
    from ftkit.models.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def _random_conversations(n: int, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)
    words = ["hello", "user", "assistant", "\n", " ", "<|im_end|>", "ok", "system", '{"a": 1}', "  x  ", "é", ""]
    convs = []
    for _ in range(n):
        conv = [{"role": "system", "content": "".join(rng.choices(words, k=rng.randint(0, 3)))}] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 3)):
            conv.append({"role": "user", "content": "".join(rng.choices(words, k=rng.randint(0, 4)))})
            conv.append({"role": "assistant", "content": "".join(rng.choices(words, k=rng.randint(0, 4)))})
        convs.append(conv)
    return convs


def test_filled_text_is_the_template_text_and_spans_match_the_normal_path(tok):
    convs = _random_conversations(300)
    filler = TemplateFiller(tok)
    assert filler.usable
    for conv in convs:
        text, starts = filler.fill(conv)
        assert text == tok.apply_chat_template(conv, tokenize=False)
        assert [text[s:s + len(m["content"])] for m, s in zip(conv, starts)] == [m["content"] for m in conv]
    filled = chat_format.render_with_spans(tok, convs)
    chat_format._filler(tok).usable = False  # the normal path: render with jinja, then search each content
    normal = chat_format.render_with_spans(tok, convs)
    assert [(r.text, r.assistant_spans, r.eot_spans, r.error) for r in filled] == \
        [(r.text, r.assistant_spans, r.eot_spans, r.error) for r in normal]


def test_filling_finds_content_the_search_would_find_in_the_header(tok):
    [rendered] = chat_format.render_with_spans(tok, [[{"role": "user", "content": "user"},
                                                       {"role": "assistant", "content": "ok"}]])
    role, start, end = rendered.message_spans[0]
    assert rendered.text[start - len("<|im_start|>user\n"):start] == "<|im_start|>user\n"  # after the header


def test_a_wrong_skeleton_is_caught_and_filling_stops(tok):
    convs = _random_conversations(20, seed=3)
    filler = chat_format._filler(tok)
    for conv in convs:
        filler.fill(conv)
    for shape, parts in filler._skeletons.items():
        if parts:
            filler._skeletons[shape] = [parts[0] + "X", *parts[1:]]  # a skeleton that no longer matches jinja
    rendered = chat_format.render_with_spans(tok, convs)
    assert not filler.usable
    assert [r.text for r in rendered] == [tok.apply_chat_template(c, tokenize=False) for c in convs]
