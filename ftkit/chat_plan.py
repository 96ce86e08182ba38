"""How an engagement's chats are rendered: which chat template every phase uses, and what it does with a
system prompt. Decided once per tokenizer **from what the template renders**, never from the model's name.

Probes (short marker strings rendered through the template, ``_PROBE_*``):

- **system prompt**: ``[system S, user U, assistant A]`` and the prompt ``[system S, user U]`` + generation
  prompt. The template either carries S as its own turn (``system_role``), puts it into the first user turn
  itself (``folded_by_template``, e.g. Gemma 3), or cannot carry it consistently: it raises (Gemma 2: "System
  role not supported") or renders S only in the prompt and not when an answer follows (Mistral v0.3 puts it in
  the *last* user turn). Then ftkit folds S into the first user turn (``folded_by_ftkit``) with a short jinja
  prelude (:data:`FOLD_PRELUDE`) in front of the template; that wrapped template is what the audit, baseline,
  training labels, evaluation, the export (``tokenizer_config.json``/``chat_template.jinja``) and the vLLM/TGI
  configs use, so a server that receives a system message renders exactly what training rendered.
- **injected text**: a default system prompt the template writes when none is given (Qwen 2.5: "You are Qwen,
  ..."), and text it adds to the system turn (Llama 3.1's "Cutting Knowledge Date ... Today Date ..." lines).
- **alternation**: whether ``[user, user, assistant]`` renders (Mistral and Gemma raise).

Base models without a template get ``base_model.chat_template`` (a shipped name or a file), or a default: the
family template whose turn tokens the vocabulary already has, else ChatML with its two tokens added (the model's
embeddings are then resized: :func:`fit_embeddings`).

The decision is a :class:`ChatPlan`; ``to_dict()`` goes into the data audit's results, ``prompt.json``, the
training manifest and the reports.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftkit.errors import ConfigError, FtkitError

SHIPPED_TEMPLATES = ("chatml", "llama3", "gemma", "mistral", "phi3")
# Turn tokens each shipped template writes; a base model "has" a family when all are in its vocabulary.
REQUIRED_TOKENS = {
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "llama3": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "gemma": ("<start_of_turn>", "<end_of_turn>"),
    "mistral": ("[INST]", "[/INST]"),
    "phi3": ("<|user|>", "<|assistant|>", "<|system|>", "<|end|>"),
}
DEFAULT_ORDER = ("llama3", "gemma", "phi3", "mistral", "chatml")  # tried in this order for a template-less model

_PROBE_SYSTEM = "ftkit-probe-system-5c1e"
_PROBE_USER = "ftkit-probe-user-5c1e"
_PROBE_USER2 = "ftkit-probe-second-user-5c1e"
_PROBE_ANSWER = "ftkit-probe-answer-5c1e"

# Folds a leading system message into the first user turn ("S\n\nU", Gemma 3's own convention). Written so it
# changes nothing for conversations without a system message.
FOLD_PRELUDE = (
    "{#- ftkit: this template cannot carry a system message, so it is folded into the first user turn #}\n"
    "{%- if messages and messages[0]['role'] == 'system' -%}\n"
    "{%- if messages|length > 1 and messages[1]['role'] == 'user' -%}\n"
    "{%- set messages = [{'role': 'user', 'content': messages[0]['content'] ~ '\\n\\n' ~ messages[1]['content']}]"
    " + messages[2:] -%}\n"
    "{%- else -%}\n"
    "{%- set messages = [{'role': 'user', 'content': messages[0]['content']}] + messages[1:] -%}\n"
    "{%- endif -%}\n"
    "{%- endif -%}\n"
)
_FOLD_MARK = FOLD_PRELUDE.splitlines()[0]

SYSTEM_MODES = {
    "system_role": "as its own system turn",
    "folded_by_template": "folded into the first user turn by the template itself",
    "folded_by_ftkit": "folded into the first user turn by ftkit (the template cannot carry a system message)",
}


@dataclass
class ChatPlan:
    """The chat-template decision of one engagement (see the module docstring)."""

    template: str  # the template every phase renders with (the model's, a shipped one, or wrapped by ftkit)
    template_source: str  # model | shipped:<name> | file:<path> | default:<name>
    template_reason: str
    system_mode: str  # a key of SYSTEM_MODES
    system_reason: str
    end_of_turn: str | None
    end_of_turn_id: int | None
    default_system_prompt: str = ""  # what the template writes when no system message is given
    system_additions: str = ""  # text the template adds to every system turn (e.g. date lines)
    generation_prompt: str = ""  # what follows the last user turn in a prompt (the answer's header)
    alternation_required: bool = False  # the template raises unless roles alternate user/assistant
    added_tokens: list[str] = field(default_factory=list)  # special tokens ftkit added to the vocabulary

    @property
    def template_sha256(self) -> str:
        return hashlib.sha256(self.template.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("template")
        out["template_sha256"] = self.template_sha256
        out["system_prompt_carried"] = SYSTEM_MODES[self.system_mode]
        out["summary"] = self.summary()
        return out

    def summary(self) -> str:
        """One paragraph for reports: where the template came from and what it does with a system prompt."""
        parts = [f"Chat template: {self.template_reason}", f"the system prompt is carried {SYSTEM_MODES[self.system_mode]}"
                 + (f" ({self.system_reason})" if self.system_mode == "folded_by_ftkit" else "")]
        parts.append(f"end of turn: {self.end_of_turn}" if self.end_of_turn else "no end-of-turn token found")
        if self.default_system_prompt:
            parts.append(f"without a system prompt the template injects its own: {self.default_system_prompt[:120]!r}")
        if self.system_additions:
            parts.append(f"it adds to every system turn: {self.system_additions[:120]!r}")
        if self.alternation_required:
            parts.append("roles must alternate user/assistant")
        if self.added_tokens:
            parts.append(f"tokens added to the vocabulary: {', '.join(self.added_tokens)}")
        return "; ".join(parts) + "."


def shipped_template(name: str) -> str:
    """The shipped template ``name`` (``templates/chat/<name>.jinja``)."""
    from ftkit.resources import templates_dir

    if name not in SHIPPED_TEMPLATES:
        raise ConfigError([f"base_model.chat_template: unknown shipped template {name!r}; valid: "
                           f"{', '.join(SHIPPED_TEMPLATES)}, or a .jinja file path"])
    text = (templates_dir() / "chat" / f"{name}.jinja").read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


def _vocab_has(tokenizer, tokens) -> bool:
    vocab = tokenizer.get_vocab()
    return all(t in vocab for t in tokens)


def choose_template(tokenizer, setting: str = "", engagement_dir: str | Path | None = None) -> tuple[str, str, str]:
    """(template text, source, reason) for the engagement's ``base_model.chat_template`` setting."""
    setting = (setting or "").strip()
    if setting in SHIPPED_TEMPLATES:
        return shipped_template(setting), f"shipped:{setting}", f"the shipped {setting} template (base_model.chat_template)"
    if setting:
        path = Path(setting)
        if not path.is_absolute() and engagement_dir is not None:
            path = Path(engagement_dir) / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError([f"base_model.chat_template: cannot read {path} ({err.strerror or err}); give a .jinja "
                               f"file (relative to the engagement folder) or one of {', '.join(SHIPPED_TEMPLATES)}"]) from None
        return (text[:-1] if text.endswith("\n") else text), f"file:{setting}", f"the file {setting} (base_model.chat_template)"
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template, "model", "the base model's own chat template"
    for name in DEFAULT_ORDER[:-1]:
        if _vocab_has(tokenizer, REQUIRED_TOKENS[name]):
            return (shipped_template(name), f"default:{name}",
                    f"the base model has no chat template; its vocabulary has the {name} family's turn tokens "
                    f"({', '.join(REQUIRED_TOKENS[name])}), so that family's instruct template is used")
    return (shipped_template("chatml"), "default:chatml",
            "the base model has no chat template and its vocabulary has no family's turn tokens, so ChatML is used "
            "(its turn tokens are added and the embeddings resized)")


def _render(tokenizer, template: str, messages: list[dict], generation: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=generation)


def _special_between(tokenizer, text: str) -> bool:
    specials = [t for t in list(tokenizer.all_special_tokens) + list(tokenizer.get_added_vocab()) if t]
    return any(t in text for t in specials)


def probe_system(tokenizer, template: str) -> tuple[str, str]:
    """(system mode, why) of ``template``: see :data:`SYSTEM_MODES`; "fold" when it cannot carry one."""
    if template.startswith(_FOLD_MARK):
        return "folded_by_ftkit", "ftkit folded it when this template was prepared"
    system = {"role": "system", "content": _PROBE_SYSTEM}
    user = {"role": "user", "content": _PROBE_USER}
    answer = {"role": "assistant", "content": _PROBE_ANSWER}
    try:
        full = _render(tokenizer, template, [system, user, answer])
        prompt = _render(tokenizer, template, [system, user], generation=True)
    except Exception as err:  # noqa: BLE001 - templates raise anything (TemplateError from raise_exception)
        return "fold", f"the template refuses a system message: {str(err).splitlines()[0][:160]}"
    if _PROBE_SYSTEM not in full:
        return "fold", ("the template drops the system message from a conversation that ends with an answer (it puts "
                        "it only into the last user turn), so training and serving would see different prompts")
    if _PROBE_SYSTEM not in prompt or not full.startswith(prompt.rstrip()):
        return "fold", "the template renders the system message differently in a prompt and in a full conversation"
    between = full[full.index(_PROBE_SYSTEM) + len(_PROBE_SYSTEM):full.find(_PROBE_USER)]
    if _special_between(tokenizer, between):
        return "system_role", "the template renders a system turn"
    return "folded_by_template", "the template writes the system message into the first user turn"


def _injected(tokenizer, template: str) -> tuple[str, str]:
    """(default system prompt the template injects, text it adds to a system turn), both '' when none."""
    try:
        with_system = _render(tokenizer, template, [{"role": "system", "content": _PROBE_SYSTEM},
                                                    {"role": "user", "content": _PROBE_USER}], generation=True)
        without = _render(tokenizer, template, [{"role": "user", "content": _PROBE_USER}], generation=True)
    except Exception:  # noqa: BLE001 - a template without a system role: nothing injected into one
        return "", ""
    if _PROBE_SYSTEM not in with_system:
        return "", ""
    pre, post = with_system.split(_PROBE_SYSTEM, 1)
    default = ""
    if without.startswith(pre) and without.endswith(post) and len(without) > len(pre) + len(post):
        default = without[len(pre):len(without) - len(post)].strip()
    # What the template writes in the system turn before the content, after its last special token (the turn
    # header), minus the role word: Llama 3.1's date lines; nothing for ChatML or Phi-3.
    cut = max((pre.rfind(t) + len(t) for t in list(tokenizer.all_special_tokens) + list(tokenizer.get_added_vocab())
               if t and t in pre), default=0)
    additions = pre[cut:].strip()
    for word in ("system", "user"):
        if additions.startswith(word):
            additions = additions[len(word):].strip()
    return default, additions


def _needs_alternation(tokenizer, template: str) -> bool:
    try:
        _render(tokenizer, template, [{"role": "user", "content": _PROBE_USER},
                                      {"role": "user", "content": _PROBE_USER2},
                                      {"role": "assistant", "content": _PROBE_ANSWER}])
        return False
    except Exception:  # noqa: BLE001
        return True


def _add_tokens(tokenizer, source: str) -> list[str]:
    """Add a shipped template's missing turn tokens as special tokens; returns the ones added."""
    name = source.split(":", 1)[1] if ":" in source else ""
    missing = [t for t in REQUIRED_TOKENS.get(name, ()) if t not in tokenizer.get_vocab()]
    if missing:
        from tokenizers import AddedToken

        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    return missing


def plan_chat(tokenizer, setting: str = "", engagement_dir: str | Path | None = None) -> ChatPlan:
    """Decide the engagement's chat template for ``tokenizer`` and install it (``tokenizer.chat_template``; missing
    turn tokens of a shipped template are added). Idempotent: a prepared tokenizer returns its plan."""
    cached = getattr(tokenizer, "_ftkit_chat_plan", None)
    if cached is not None and cached[0] == (setting or "").strip() and tokenizer.chat_template == cached[1].template:
        return cached[1]
    template, source, reason = choose_template(tokenizer, setting, engagement_dir)
    added = _add_tokens(tokenizer, source) if source != "model" else []
    mode, why = probe_system(tokenizer, template)
    if mode == "fold":
        template = FOLD_PRELUDE + template
        mode2, why2 = probe_system(tokenizer, template.replace(_FOLD_MARK, "{#- probe #}", 1))
        if mode2 == "fold":
            raise FtkitError(f"The chat template ({reason}) cannot carry a system prompt even folded into the first "
                             f"user turn ({why2}). Set base_model.chat_template to a template that can, e.g. chatml.")
        mode = "folded_by_ftkit"
    tokenizer.chat_template = template
    from ftkit.chat_format import template_info

    info = template_info(tokenizer)
    default, additions = _injected(tokenizer, template)
    generation = ""
    try:
        prompt = _render(tokenizer, template, [{"role": "user", "content": _PROBE_USER}], generation=True)
        generation = prompt[prompt.index(_PROBE_USER) + len(_PROBE_USER):] if _PROBE_USER in prompt else ""
    except Exception:  # noqa: BLE001 - recorded as unknown
        pass
    plan = ChatPlan(template, source, reason, mode, why, info.end_of_turn, info.end_of_turn_id, default, additions,
                    generation, _needs_alternation(tokenizer, template), added)
    tokenizer._ftkit_chat_plan = ((setting or "").strip(), plan)
    return plan


def prepare_tokenizer(tokenizer, config, engagement_dir: str | Path | None = None) -> ChatPlan:
    """``plan_chat`` with the engagement's ``base_model.chat_template`` (what every phase calls after loading)."""
    return plan_chat(tokenizer, getattr(config.base_model, "chat_template", ""), engagement_dir)


def fit_embeddings(model, tokenizer) -> bool:
    """Resize the model's token embeddings when ftkit added tokens beyond them; True when it did.

    New rows are initialised to the mean of the old ones (transformers' ``mean_resizing``), so an untrained new
    token starts as an "average" token instead of noise."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= rows:
        return False
    model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return True


def install_template(tokenizer, template: str | None, added_tokens=None) -> None:
    """Put a prepared template (and the tokens ftkit added for it) on a freshly loaded tokenizer: for the
    training worker, which loads the base model's tokenizer again in its own process."""
    if added_tokens:
        from tokenizers import AddedToken

        missing = [t for t in added_tokens if t not in tokenizer.get_vocab()]
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    if template:
        tokenizer.chat_template = template


def with_system(messages: list[dict], system_prompt: str) -> list[dict]:
    """``messages`` with the engagement's system prompt first when they have none (baseline, training and serving
    all add it the same way).

    >>> with_system([{"role": "user", "content": "hi"}], "Be brief.")[0]
    {'role': 'system', 'content': 'Be brief.'}
    >>> len(with_system([{"role": "system", "content": "own"}, {"role": "user", "content": "hi"}], "Be brief."))
    2
    """
    if not system_prompt or any(m.get("role") == "system" for m in messages):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]
