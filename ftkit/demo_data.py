"""The demo client's data: support-ticket triage with a JSON answer, synthetic and deterministic.

"Northwind Outfitters" (fictional) wants incoming support tickets classified into a category and a priority,
answered as JSON that their ticketing system can ingest. The generator composes tickets from templates so the
file is the same on every machine (seeded), and it deliberately contains the flaws a real delivery has: exact
duplicates, a near-duplicate, contact details (synthetic PII), an empty answer and a conflicting label, so the
data audit has something true to find. ``ftkit/sample_data/support_tickets.jsonl`` is this generator's output
(a test checks they agree); regenerate with ``python -m ftkit.demo_data``.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM_PROMPT = ('Classify the support ticket. Reply with JSON only: {"category": "billing|technical|account|'
                 'shipping|returns", "priority": "low|medium|high"}')

PRODUCTS = ["trail backpack", "rain jacket", "hiking boots", "tent", "sleeping bag", "headlamp", "water filter",
            "camp stove", "fleece", "trekking poles", "gift card", "kayak paddle"]
ORDER = lambda rng: f"NW-{rng.randint(100000, 999999)}"  # noqa: E731  fictional order numbers

# category -> priority -> ticket templates. Priority follows the ticket's urgency cues, so it is learnable.
TEMPLATES = {
    "billing": {
        "high": ["I was charged twice for order {order} and my account is now overdrawn. Please refund the duplicate charge today.",
                 "Your site took {amount} from my card three times for one {product}. I need this reversed immediately.",
                 "Fraud alert from my bank about a {amount} charge from you that I never made. Please help urgently."],
        "medium": ["The invoice for order {order} shows {amount} but the checkout said less. Can you correct it?",
                   "My discount code was not applied to the {product}. I was billed the full price of {amount}.",
                   "I need a VAT invoice for order {order} for my company's expense report."],
        "low": ["Which payment methods do you accept for the {product}?",
                "Do you offer instalment payments on orders over {amount}?",
                "Can I get a copy of an old receipt from last year? No rush."],
    },
    "technical": {
        "high": ["The app crashes every time I try to check out, I cannot place my order for the {product} at all.",
                 "Your website shows an error 500 on payment and I have tried five times. Nothing works.",
                 "The {product} I bought overheated and started smoking during use. Is it safe?"],
        "medium": ["The size guide page for the {product} does not load on my phone.",
                   "I keep getting logged out of the app after a few minutes.",
                   "The tracking link in my email for order {order} gives a page not found."],
        "low": ["Is there a dark mode in the app?",
                "The product photos of the {product} load slowly, just letting you know.",
                "How do I turn off the app notifications?"],
    },
    "account": {
        "high": ["Someone changed the password on my account and placed an order I did not make. Lock it now please.",
                 "I am locked out of my account and my saved payment details are in it. I need access today.",
                 "I received a login alert from another country. Please secure my account immediately."],
        "medium": ["How do I change the email address on my account?",
                   "My loyalty points from order {order} are not showing in my account.",
                   "I want to merge my two accounts into one."],
        "low": ["How do I unsubscribe from the newsletter?",
                "Can I change my display name on reviews?",
                "Where can I see my wish list?"],
    },
    "shipping": {
        "high": ["Order {order} was supposed to arrive before my trip tomorrow and it has not shipped. I need it now.",
                 "The courier marked order {order} as delivered but nothing arrived. It was a {amount} {product}.",
                 "My package for order {order} arrived torn open and the {product} is missing."],
        "medium": ["Order {order} has been in transit for eight days. Can you check where it is?",
                   "Can I change the delivery address for order {order}? It has not shipped yet.",
                   "The {product} was sent to the wrong pickup point."],
        "low": ["Do you ship to Norway?",
                "How long does standard delivery usually take?",
                "Can I choose a delivery day for a {product}?"],
    },
    "returns": {
        "high": ["The {product} broke on the first day of my trip and I am stranded without it. I need a replacement sent urgently.",
                 "I returned the {product} a month ago and still have no refund of {amount}. This is unacceptable.",
                 "You sent a used {product} with someone else's hair on it. I want a refund today."],
        "medium": ["I would like to return the {product} from order {order}, it is too small.",
                   "How do I exchange the {product} for a different colour?",
                   "The {product} does not match the description. Can I send it back?"],
        "low": ["What is your return policy for gift items?",
                "Can I return a {product} I bought in a store online?",
                "Do I have to pay for return shipping?"],
    },
}

OPENERS = ["", "", "Hi, ", "Hello, ", "Hi there. ", "Good morning. ", "Hey, "]
CLOSERS = ["", "", " Thanks.", " Thank you!", " Regards, Sam", " Cheers", " Please advise."]


def _ticket(rng: random.Random, category: str, priority: str) -> str:
    template = rng.choice(TEMPLATES[category][priority])
    text = template.format(order=ORDER(rng), product=rng.choice(PRODUCTS), amount=f"${rng.randint(19, 480)}.{rng.randint(0, 99):02d}")
    opener = rng.choice(OPENERS)
    body = text[0].lower() + text[1:] if opener else text
    return (opener + body + rng.choice(CLOSERS)).strip()


def _record(ticket: str, category: str, priority: str) -> dict:
    answer = json.dumps({"category": category, "priority": priority})
    return {"messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": ticket},
                         {"role": "assistant", "content": answer}]}


WRONG_LABELS = 18  # tickets given a wrong category on purpose (2.5 % of 720); the simulated review fixes them
FLAW_SOURCES = {3, 7, 10, 40, 41, 100}  # records copied into the flaws below: never mislabelled (no extra conflicts)
REVIEW_KEEPS = 6  # right labels the simulated reviewer looked at and kept (a real review sheet has both)
SIMULATED = "SIMULATED REVIEW (ftkit demo)"


def generate(n: int = 720, seed: int = 7) -> list[dict]:
    """``n`` clean-looking tickets plus ~10 deliberate flaws, in a shuffled but seeded order."""
    return generate_with_truth(n, seed)[0]


def generate_with_truth(n: int = 720, seed: int = 7) -> tuple[list[dict], list[dict]]:
    """(records, the review a client would return): the review rows are the mislabelled tickets (decision
    fix, with the true answer) and a few right ones (decision keep), by their line in the written file."""
    rng = random.Random(seed)
    weights = {"high": 0.25, "medium": 0.45, "low": 0.30}
    records = []
    for i in range(n):
        category = list(TEMPLATES)[i % len(TEMPLATES)]
        priority = rng.choices(list(weights), weights=list(weights.values()))[0]
        records.append(_record(_ticket(rng, category, priority), category, priority))
    # Flaws a real delivery has (the data audit should find each of them):
    records += [json.loads(json.dumps(records[i])) for i in (3, 40, 41, 100)]  # exact duplicates
    near = json.loads(json.dumps(records[10]))
    near["messages"][1]["content"] += " Thanks again"  # near-duplicate
    records.append(near)
    records.append(_record("Please call me back on +44 20 7946 0958 or write to jane.doe@example.com about order "
                           "NW-482913, the tent arrived damaged.", "returns", "medium"))  # contact details (PII)
    records.append(_record("My card 4111 1111 1111 1111 was charged twice, please refund.", "billing", "high"))
    empty = _record("Where is my order NW-555123?", "shipping", "medium")
    empty["messages"][2]["content"] = " "  # empty answer
    records.append(empty)
    conflict = json.loads(json.dumps(records[7]))
    conflict["messages"][2]["content"] = json.dumps({"category": "other", "priority": "low"})  # conflicting label
    records.append(conflict)
    wrong = _mislabel(records, n, seed)
    kept = [records[i] for i in sorted(random.Random(seed + 2).sample(
        [i for i in range(n) if i not in FLAW_SOURCES and all(records[i] is not w for w, _ in wrong)], REVIEW_KEEPS))]
    rng.shuffle(records)
    line = {id(r): i + 1 for i, r in enumerate(records)}
    review = [_review_row(r, line[id(r)], "fix", true) for r, true in wrong] + \
        [_review_row(r, line[id(r)], "keep", "") for r in kept]
    review.sort(key=lambda row: row["line"])
    for rank, row in enumerate(review, start=1):
        row["rank"] = rank
    return records, review


def _mislabel(records: list[dict], n: int, seed: int) -> list[tuple[dict, str]]:
    """Give WRONG_LABELS tickets another category (priority kept); (record, true answer) for each, in place."""
    rng = random.Random(seed + 1)  # its own stream: the tickets and the shuffle stay as they were
    picked = rng.sample([i for i in range(n) if i not in FLAW_SOURCES], WRONG_LABELS)
    out = []
    for i in sorted(picked):
        record = records[i]
        true = record["messages"][2]["content"]
        answer = json.loads(true)
        answer["category"] = rng.choice([c for c in TEMPLATES if c != answer["category"]])
        record["messages"][2]["content"] = json.dumps(answer)
        out.append((record, true))
    return out


REVIEW_COLUMNS = ["rank", "file", "line", "split", "input", "given_answer", "model_answer", "score", "score_kind",
                  "decision", "new_answer", "reviewer", "comment"]  # suspect_labels.csv's columns


def _review_row(record: dict, line: int, decision: str, true_answer: str) -> dict:
    return {"rank": 0, "file": "support_tickets.jsonl", "line": line, "split": "", "input": record["messages"][1]["content"],
            "given_answer": record["messages"][2]["content"], "model_answer": "", "score": "", "score_kind": "simulated",
            "decision": decision, "new_answer": true_answer, "reviewer": SIMULATED,
            "comment": ("the category is wrong (planted by ftkit.demo_data)" if decision == "fix"
                        else "checked: the label is right")}


def write_review(path: Path, n: int = 720, seed: int = 7) -> Path:
    """The demo client's simulated review sheet (``sample_data/simulated_review.csv``), in suspect_labels.csv's
    columns; every row says it is simulated."""
    from ftkit.safe_values import csv_text

    Path(path).write_text(csv_text(REVIEW_COLUMNS, generate_with_truth(n, seed)[1]), encoding="utf-8")
    return Path(path)


def write(path: Path, n: int = 720, seed: int = 7) -> Path:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generate(n, seed))
    Path(path).write_text(lines, encoding="utf-8")
    return Path(path)


DEMO_SETTINGS = {
    "client.name": "Northwind Outfitters (demo)",
    "client.contact": "support-ops@northwind.example",
    "client.industry": "outdoor retail (fictional demo client)",
    "objective": "Triage incoming support tickets into a category and priority, answered as JSON for the "
                 "ticketing system, cheaply enough to run on every ticket.",
    "task.type": "structured_output",
    "task.system_prompt": SYSTEM_PROMPT,
    "task.label_field": "category",
    "task.json_schema": {"type": "object", "required": ["category", "priority"],
                         "properties": {"category": {"enum": list(TEMPLATES)},
                                        "priority": {"enum": ["low", "medium", "high"]}}},
    "suitability.prompt_engineering_tried": True,
    "suitability.prompt_engineering_notes": "A zero-shot prompt on a hosted model was tried; JSON was inconsistent.",
    "suitability.strict_output_format": True,
    "suitability.high_volume": True,
    "suitability.narrow_task": True,
    "compliance.frameworks": ["gdpr"],
    "budget.gpu_memory_gb": 24.0,
    "deployment.monthly_requests": 300000,
    # Zero-shot baseline: the model is trained, evaluated and served on the zero-shot conversation, so the
    # paired comparison measures both in the serving format (the client already tried prompting; see above).
    "baseline.shots": 0,
    # Sized for ~4 minutes of LoRA on 2 CPU cores (6 x 135M params x ~20k tokens is ~16 TFLOP at ~50 GFLOP/s,
    # plus validations): 40 steps of 2 packed 256-token sequences at a high LoRA learning rate.
    "training.max_steps": 40,
    "training.batch_size": 2,
    "training.learning_rate": 1e-3,
    "training.lora_dropout": 0.0,
    "training.eval_steps": 10,
    # Validation is a forward pass over the validation set at every eval step (~2 x params FLOP per token):
    # 24 examples (~8 packed sequences) keep each one near 10 s while still showing the loss trend.
    "training.eval_max_examples": 24,
    # What Northwind agreed counts as success: JSON their ticketing system can ingest, most fields right,
    # a significant gain over the base model, and few tickets made worse.
    "evaluation.acceptance": [{"metric": "json_validity", "min": 0.95}, {"metric": "field_accuracy", "min": 0.6},
                              {"metric": "p_value", "max": 0.05}, {"metric": "regressions", "max": 3}],
    # Suspect labels on 2 CPU cores: SmolLM2 scores ~100 examples in ~30 s (one teacher-forced pass each), and the
    # listed train/validation rows' answers are generated (~20 in ~25 s); sized to keep the demo under 10 minutes.
    "evaluation.suspect_labels.max_examples": 100,
    "evaluation.suspect_labels.listed": 20,
}


if __name__ == "__main__":
    target = Path(__file__).resolve().parent / "sample_data" / "support_tickets.jsonl"
    target.parent.mkdir(exist_ok=True)
    print(write(target))
    print(write_review(target.parent / "simulated_review.csv"))
