"""A tiny, randomly initialised Llama model with a real tokenizer: for fast tests and demos of the plumbing.

It is a normal transformers folder (config.json, model.safetensors, tokenizer.json, chat template), so
every code path that loads a hub model loads it too. Its weights are random: it produces gibberish, and
every report that uses it must say so (``is_tiny_random(folder)``; the note file and the config attribute
``ftkit_tiny_random`` both carry the flag).

The tokenizer is a byte-level BPE trained on a small built-in corpus (English words and JSON punctuation),
with SmolLM2's special tokens and ChatML template: ``<|im_end|>`` is both eos and pad, exactly like
SmolLM2, so the pad == eos pitfalls show up in tests too.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from ftkit.models.cache import NOTE_FILE, build_cached, model_cache_dir, read_note
from ftkit.models.quiet import quiet_progress

TINY_NAME = "tiny-random"
BUILDER_VERSION = "tiny-random/1"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_NOTE = ("Randomly initialised TEST model (tiny Llama, random weights): its outputs are meaningless "
             "and only exercise the pipeline.")

_WORDS = (
    "the a an and or but if then else of to in on at by for with from as is are was were be been has have had "
    "do does did not no yes this that these those it its we you they he she i me my your our their there here "
    "what which who when where why how all any some each every more most less few many much one two three four "
    "five six seven eight nine ten first last next new old good bad high low big small long short right left "
    "customer account payment card bank loan credit debit balance transfer fee refund order delivery shipping "
    "product price invoice billing support ticket issue problem error request question answer message email "
    "phone address name date time day week month year today tomorrow yesterday morning evening please thanks "
    "thank hello hi dear team service help need want like can could would should will may might must "
    "cancel change update close open reset password login access security fraud dispute charge charged twice "
    "late missing broken damaged wrong received sent return replace exchange complaint urgent priority "
    "category label intent sentiment positive negative neutral summary text result value field type status "
    "true false null none other general technical sales marketing legal compliance risk report data model "
    "user assistant system role content response output input example test train validation score accuracy"
).split()
_JSON_KEYS = ("label", "intent", "category", "priority", "sentiment", "amount", "currency", "reason", "summary")


def _corpus(n_lines: int = 3000, seed: int = 0) -> list[str]:
    """A deterministic mix of English-like sentences, JSON objects and ChatML turns (the BPE's training text)."""
    rng = random.Random(seed)
    lines: list[str] = []
    for i in range(n_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
        sentence = " ".join(words).capitalize() + rng.choice([".", "?", "!", ","])
        kind = i % 3
        if kind == 0:
            lines.append(sentence)
        elif kind == 1:
            obj = {k: rng.choice(_WORDS) for k in rng.sample(_JSON_KEYS, rng.randint(1, 4))}
            if rng.random() < 0.5:
                obj["amount"] = round(rng.uniform(0, 999), 2)
            lines.append(json.dumps(obj))
        else:
            lines.append(f"<|im_start|>user\n{sentence}<|im_end|>\n<|im_start|>assistant\n{sentence}<|im_end|>")
    lines.append("0123456789 {}[]:,\"' -_.!?/\\@#$%&*()+=<>;`~|^\n\t")
    return lines


def build_tokenizer(vocab_size: int = 2048):
    """A byte-level BPE fast tokenizer with SmolLM2's special tokens and ChatML template (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>", padding_side="left",
                                   model_max_length=2048)
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
                     vocab_size: int = 2048, seed: int = 0) -> Path:
    """Write a tiny random Llama model + tokenizer into ``out_dir`` (created) and return it.

    Sizes: hidden 64, 2 layers, 4 heads (head_dim 16), 2 KV heads, MLP 128: about 0.2 M parameters,
    ~1 MB on disk, so loading and generating take milliseconds on CPU.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads,
                         num_key_value_heads=max(1, num_heads // 2), max_position_embeddings=2048,
                         bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"), eos_token_id=eos,
                         pad_token_id=eos, tie_word_embeddings=True)
    config.ftkit_tiny_random = True  # saved into config.json: survives copies that drop the note file
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=eos, bos_token_id=config.bos_token_id)
    with quiet_progress():
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    note = {"builder_version": BUILDER_VERSION, "name": TINY_NAME, "is_tiny_random": True, "note": TINY_NOTE,
            "parameters": sum(p.numel() for p in model.parameters()), "seed": seed}
    (out / NOTE_FILE).write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    return out


def ensure_tiny_model(cache_dir: str | Path | None = None) -> Path:
    """The cached tiny random model folder, built on first use (about 2 s).

    ``cache_dir`` is the ftkit cache root (default ``$FTKIT_CACHE`` or ``~/.cache/ftkit``); the model lives in
    ``<root>/models/tiny-random``.
    """
    return build_cached(model_cache_dir(TINY_NAME, cache_dir), build_tiny_model, BUILDER_VERSION)


def is_tiny_random(folder: str | Path) -> bool:
    """True when ``folder`` holds ftkit's randomly initialised test model (by note file or config flag)."""
    folder = Path(folder)
    note = read_note(folder)
    if note and note.get("is_tiny_random"):
        return True
    try:
        return bool(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("ftkit_tiny_random"))
    except (OSError, ValueError):
        return False
