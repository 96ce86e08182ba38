"""Optional LLM-as-judge: a stronger model compares baseline and fine-tuned answers, blind, item by item.

It sees exactly what a human rater sees on the A/B sheet (same items, same seeded order of "Answer 1" and
"Answer 2", see ``ab_sheet.build_sheet``) plus the task instructions and the reference answer, and must reply
``1``, ``2`` or ``tie``. Its choices go through the same analysis as human ratings, so ``judge_win_rate`` and
``win_rate`` are comparable. The prompt (system + template, and its sha256) is recorded in results.json:
a judge is only as trustworthy as its prompt, and an auditor must be able to read it.

Known limits worth telling the client: judges prefer longer answers and the first position (the seeded
random order spreads the position bias evenly over both systems rather than removing it), and a judge from
the same model family as the fine-tuned model may favour it.
"""
from __future__ import annotations

import hashlib
import re

JUDGE_SYSTEM = ("You are a strict, impartial reviewer of answers written by AI assistants. You judge which "
                "answer better does the task for the user, following the task instructions exactly. Length and "
                "style do not matter unless the instructions say so.")
JUDGE_TEMPLATE = """Task instructions the assistant was given:
{instructions}

User input:
{input}

Reference answer (a correct answer; others may also be correct):
{reference}

Answer 1:
{output_1}

Answer 2:
{output_2}

Which answer does the task better? Reply with exactly one word: 1, 2 or tie."""
JUDGE_MAX_TOKENS = 8  # the reply is one word; a few spare tokens for "Answer 1" style replies
# "1.5", "-1" and "1,2" are not a choice of answer 1: no sign before, no decimal part after.
_VERDICT = re.compile(r"^[^\w+\-\u2212]*(?:answer\s*)?(1|2|tie)\b(?![.,]\d)", re.IGNORECASE)
_ANOTHER = re.compile(r"\b(1|2|tie)\b", re.IGNORECASE)


def prompt_record() -> dict:
    """What results.json records about the judge prompt."""
    text = JUDGE_SYSTEM + "\n\n" + JUDGE_TEMPLATE
    return {"system": JUDGE_SYSTEM, "template": JUDGE_TEMPLATE,
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "max_tokens": JUDGE_MAX_TOKENS}


def parse_choice(reply: str) -> int | None:
    """1, 2, 0 (tie) or None when the reply is not one of them (or names more than one, e.g. "1 or 2").

    >>> [parse_choice(t) for t in ("2", " Answer 1.", "TIE", "Both are fine", "12", "1 or 2?")]
    [2, 1, 0, None, None, None]
    >>> [parse_choice(t) for t in ("1.5", "-1", "2,5", "**2**")]
    [None, None, None, 2]
    """
    first_line = (reply or "").strip().split("\n", 1)[0]
    match = _VERDICT.match(first_line)
    if not match or _ANOTHER.search(first_line[match.end():]):
        return None
    word = match.group(1).lower()
    return 0 if word == "tie" else int(word)


def messages_for(row: dict, instructions: str, reference: str) -> list[dict]:
    """The chat messages sent for one sheet row."""
    user = JUDGE_TEMPLATE.format(instructions=instructions or "(none given)", input=row["input"],
                                 reference=reference or "(none)", output_1=row["output_1"], output_2=row["output_2"])
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def run_judge(client, rows: list[dict], key: dict, references: dict[str, str], instructions: str,
              n_boot: int = 1000, seed: int = 0) -> dict:
    """Ask ``client`` (``ftkit.openai_backend.OpenAIChatClient``) about every sheet row; analyse like ratings.

    ``references``: example id -> reference answer. Replies that are not 1/2/tie are counted as
    ``unparsed`` and left out of the win rate (listed, so a consultant can see what the judge said).
    """
    from ftkit.evaluation.ab_sheet import analyse

    example_of = {it["item_id"]: it["example_id"] for it in key["items"]}
    choices, unparsed = {}, []
    for row in rows:
        reply = client.chat(messages_for(row, instructions, references.get(example_of[row["item_id"]], "")),
                            max_tokens=JUDGE_MAX_TOKENS)
        choice = parse_choice(reply.text)
        if choice is None:
            unparsed.append({"item_id": row["item_id"], "reply": reply.text[:200]})
        else:
            choices[row["item_id"]] = choice
    result = analyse({"judge": choices}, key, n_boot=n_boot, seed=seed) if choices else {"n_items": 0}
    return {**result, "model": client.model, "endpoint": client.base_url, "n_asked": len(rows),
            "unparsed": unparsed, "prompt": prompt_record()}


def client_for(config):
    """The judge client: ``evaluation.judge`` when it names an endpoint, else ``baseline.openai``."""
    from ftkit.openai_backend import OpenAIChatClient

    judge = config.evaluation.judge
    settings = judge if (judge.base_url and judge.model) else config.baseline.openai
    return OpenAIChatClient.from_settings(settings)
