"""Serving configurations from the engagement: vLLM (merged, or base + LoRA), Ollama, TGI, plain Python.

Each generator in ``GENERATORS`` renders a jinja2 template from ``templates/serving/`` with one
:class:`ServingContext` and returns :class:`ServingConfig` rows carrying the file and the exact command to run.
All of them use the chat template the model was trained and evaluated with (written next to them as
``chat_template.jinja``) and its end-of-turn stop tokens: template drift between training and serving is the
usual cause of answers that never stop.

Ollama needs the chat template as a Go template; ``CHAT_FAMILIES`` recognises the common template families
by their markers and carries the Go form and stop strings of each.

>>> detect_family("{{ '<|im_start|>' + message['role'] }}").name
'chatml'
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ftkit.fsutil import atomic_write_text

TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.0.1"
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # --max-lora-rank must be one of these
VLLM_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "int8": "bfloat16", "int4": "bfloat16", "fp32": "float32"}
# In-flight quantisation flags per engine for int8/int4 (the export itself stays 16-bit).
QUANTIZATION = {
    "vllm": {"int8": "--quantization fp8", "int4": "--quantization bitsandbytes"},
    "tgi": {"int8": "--quantize eetq", "int4": "--quantize bitsandbytes-nf4"},
}


@dataclass(frozen=True)
class ChatFamily:
    name: str
    marker: str  # text that identifies the family in a Jinja chat template
    go_template: str  # Ollama TEMPLATE
    stops: tuple[str, ...]


CHAT_FAMILIES = (
    ChatFamily("chatml", "<|im_start|>",
               "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
               ("<|im_end|>", "<|im_start|>")),
    ChatFamily("llama3", "<|start_header_id|>",
               "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
               "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
               ("<|eot_id|>", "<|start_header_id|>")),
    ChatFamily("gemma", "<start_of_turn>",
               "{{- range .Messages }}<start_of_turn>{{ if eq .Role \"assistant\" }}model{{ else }}{{ .Role }}{{ end }}\n"
               "{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n",
               ("<end_of_turn>",)),
    ChatFamily("phi3", "<|end|>",
               "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n",
               ("<|end|>", "<|user|>", "<|assistant|>")),
    ChatFamily("mistral", "[INST]",
               "{{- range .Messages }}{{ if eq .Role \"user\" }}[INST] {{ .Content }}[/INST]"
               "{{ else if eq .Role \"assistant\" }} {{ .Content }}</s>{{ end }}{{ end }}",
               ("[INST]", "</s>")),
)


def detect_family(chat_template: str) -> ChatFamily | None:
    """The first family whose marker appears in the Jinja template; None when none does."""
    return next((f for f in CHAT_FAMILIES if f.marker in (chat_template or "")), None)


# -- Ollama's TEMPLATE derived from the training template's own renders -------------------------------------------
# Ollama wants a Go template. Instead of a fixed table per family (which dropped Llama 3.1's date lines, Gemma's
# folded system prompt and Mistral's), the literal text between a probe conversation's messages is read from the
# engagement's template (the one training used) and laid into one Go template of fixed control flow. No Go engine
# is available to ftkit or its tests, so ``render_segments`` mirrors that control flow in Python; the derivation is
# accepted only when the mirror reproduces the jinja render for several conversation shapes.
_GO_PROBES = ("ftkit-go-system-9d2b", "ftkit-go-user-9d2b", "ftkit-go-answer-9d2b", "ftkit-go-second-9d2b")
GO_TEMPLATE = ('{{- $sys := "" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $sys = .Content }}{{ end }}{{ end }}'
               '{{ if $sys }}%(seg0)s{{ $sys }}%(seg1)s{{ else }}%(n0)s{{ end }}{{ $first := true }}'
               '{{ range .Messages }}{{ if eq .Role "user" }}{{ if not $first }}%(seg3)s{{ end }}{{ .Content }}'
               '{{ $first = false }}{{ else if eq .Role "assistant" }}%(seg2)s{{ .Content }}{{ end }}{{ end }}%(seg4)s')


def render_segments(seg: dict, messages: list[dict]) -> str:
    """What :data:`GO_TEMPLATE` filled with ``seg`` renders for ``messages`` (its control flow, in Python)."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    out = seg["seg0"] + system + seg["seg1"] if system else seg["n0"]
    first = True
    for m in messages:
        if m["role"] == "user":
            out += ("" if first else seg["seg3"]) + m["content"]
            first = False
        elif m["role"] == "assistant":
            out += seg["seg2"] + m["content"]
    return out + seg["seg4"]


def _go_shapes(s: str, u: str, a: str, u2: str) -> list[list[dict]]:
    sys_, user, ans, user2 = ({"role": "system", "content": s}, {"role": "user", "content": u},
                              {"role": "assistant", "content": a}, {"role": "user", "content": u2})
    return [[sys_, user], [user], [sys_, user, ans, user2], [user, ans, user2], [sys_, user, ans, user2, ans, user]]


def derived_go_template(tokenizer) -> tuple[str, list[str]]:
    """(Ollama TEMPLATE, notes) from the tokenizer's chat template; ("", [why]) when its renders do not fit."""
    s, u, a, u2 = _GO_PROBES

    def render(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    try:
        full = render(_go_shapes(s, u, a, u2)[2])
        plain = render(_go_shapes(s, u, a, u2)[3])
        seg0, rest = full.split(s, 1)
        seg1, rest = rest.split(u, 1)
        seg2, rest = rest.split(a, 1)
        seg3, seg4 = rest.split(u2, 1)
        seg = {"seg0": seg0, "seg1": seg1, "seg2": seg2, "seg3": seg3, "seg4": seg4, "n0": plain.split(u, 1)[0]}
        if any(render(m) != render_segments(seg, m) for m in _go_shapes("Be brief.", "Hi there", "Hello", "And?")):
            return "", ["the chat template's turns change with their position, so no fixed Go template renders it"]
    except Exception as err:  # noqa: BLE001 - a template that cannot render a probe (e.g. tools only)
        return "", [f"the chat template cannot render a probe conversation ({str(err).splitlines()[0][:100]})"]
    notes = []
    bos = getattr(tokenizer, "bos_token", None)
    if bos and seg["seg0"].startswith(bos) and seg["n0"].startswith(bos):
        seg["seg0"], seg["n0"] = seg["seg0"][len(bos):], seg["n0"][len(bos):]
        notes.append(f"the template's leading {bos} is left out: Ollama adds the BOS token itself")
    try:
        if u not in render([{"role": "user", "content": f" {u} "}]).replace(f" {u} ", ""):
            notes.append("the template trims message content and Ollama's Go template cannot: send trimmed text")
    except Exception:  # noqa: BLE001
        pass
    if any("{{" in v or '"""' in v for v in seg.values()):
        return "", ["the chat template's literal text contains Go template or Modelfile delimiters"]
    return GO_TEMPLATE % seg, notes


@dataclass
class ServingContext:
    """Everything the templates need; paths are relative to the deployment run folder (the handover bundle)."""

    client: str
    model_name: str
    chat_template: str
    stop_strings: list[str]
    system_prompt: str
    dtype: str  # serving precision: bf16 | fp16 | int8 | int4
    export_dtype: str  # what the merged export was saved in
    context_length: int
    max_input_tokens: int
    max_tokens: int
    concurrency: int
    n_gpus: int
    gpu_label: str
    merged_dir: str = ""  # e.g. export/merged; empty when only an adapter is shipped
    adapter_dir: str = ""  # e.g. export/adapter
    base: str = ""
    base_revision: str = ""
    lora_rank: int = 16
    chat_template_file: str = "serving/chat_template.jinja"
    go_template: str = ""  # Ollama TEMPLATE derived from the chat template's renders (empty: the family table's)
    go_notes: list[str] = field(default_factory=list)  # what the Ollama template cannot reproduce, for the Modelfile
    date: str = field(default_factory=lambda: _dt.date.today().isoformat())

    @property
    def family(self) -> ChatFamily | None:
        return detect_family(self.chat_template)

    def variables(self, engine: str = "") -> dict:
        family = self.family
        rank = next((r for r in VLLM_LORA_RANKS if r >= self.lora_rank), VLLM_LORA_RANKS[-1])
        go = self.go_template or (family.go_template if family else "")
        return {**asdict(self), "family": family.name if family else ("derived" if go else ""), "go_template": go,
                "lora_rank": rank, "vllm_dtype": VLLM_DTYPE.get(self.dtype, "bfloat16"), "tgi_image": TGI_IMAGE,
                "quantization": QUANTIZATION.get(engine, {}).get(self.dtype, ""),
                "chat_template_sha256": hashlib.sha256(self.chat_template.encode("utf-8")).hexdigest(),
                "test_request": _test_request(self.model_name, self.max_tokens),
                "test_request_tgi": _test_request("tgi", self.max_tokens)}


def context_for(config, model_name: str, export: dict, trained, plan, tokenizer, max_tokens: int,
                base: dict | None = None) -> ServingContext:
    """The ServingContext of an engagement: its export, chat template and stops, sizing and settings.

    ``export``: ``ExportResult.to_dict()``; ``trained``: the TrainedModel; ``plan``: the SizingPlan; ``base``:
    ``describe_model()`` of the base: a hub id is used as is, anything else (a short name, a converted GGUF) by
    its resolved folder, which must be copied to the serving machine with the adapter.
    """
    base = base or {}
    base_ref = base.get("path") if base.get("kind") not in (None, "hub") else config.base_model.id
    from ftkit.generation import stop_token_ids

    workload = plan.workload
    adapter = trained.kind == "adapter"
    return ServingContext(
        client=config.client.name or config.client.slug, model_name=model_name,
        chat_template=tokenizer.chat_template or "",
        stop_strings=list(dict.fromkeys(tokenizer.convert_ids_to_tokens(stop_token_ids(tokenizer)))),
        system_prompt=config.task.system_prompt, dtype=config.deployment.serving_dtype, export_dtype=export["dtype"],
        context_length=workload.context_length, max_input_tokens=max(1, workload.context_length - max_tokens),
        max_tokens=max_tokens, concurrency=workload.concurrency, n_gpus=plan.chosen.n_gpus,
        gpu_label=plan.chosen.label, merged_dir="export/merged" if export["kind"] in ("merged", "full") else "",
        adapter_dir="export/adapter" if adapter else "", base=base_ref if adapter else "",
        base_revision=config.base_model.revision if adapter else "",
        lora_rank=int(trained.adapter_config().get("r", 16)) if adapter else 16,
        **dict(zip(("go_template", "go_notes"), derived_go_template(tokenizer))))


@dataclass
class ServingConfig:
    key: str
    title: str
    file: str  # relative to the run folder
    text: str
    command: str
    notes: str = ""


# Templates of files that are executed or parsed (shell, Python, Modelfile): rendered with ftkit.safe_values'
# quoting filters, and every {{ value }} must go through one of them (a finalize hook refuses the rest).
EXECUTED_TEMPLATES = (".sh.j2", ".py.j2", "Modelfile.j2")


def render(template: str, variables: dict) -> str:
    import jinja2

    from ftkit.resources import templates_dir
    from ftkit.safe_values import shell_environment

    loader = jinja2.FileSystemLoader(str(templates_dir() / "serving"))
    if template.endswith(EXECUTED_TEMPLATES):
        env = shell_environment(loader)
    else:
        env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                 trim_blocks=True, lstrip_blocks=True, autoescape=False)
    return env.get_template(template).render(**variables)


def _test_request(model: str, max_tokens: int) -> str:
    """The JSON body of the test request shown under each script (written by json, then shell-quoted)."""
    import json

    return json.dumps({"model": model, "messages": [{"role": "user", "content": "..."}], "max_tokens": max_tokens})


def _modelfile_values(ctx: "ServingContext") -> tuple[dict, list[str]]:
    """The Modelfile's SYSTEM block and stop parameters, quoted so Ollama reads them back exactly, and notes on
    what could not be carried (Ollama's parser has no escape for a line ending in \"\"\")."""
    from ftkit.safe_values import describe_character, modelfile_block, modelfile_string, ollama_drops

    notes = []
    system_block = modelfile_block(ctx.system_prompt) if ctx.system_prompt else None
    omitted = ""
    if ctx.system_prompt and system_block is None:
        omitted = ("the system prompt has a line ending in \"\"\", which ends a Modelfile block early and cannot "
                   "be escaped; send it as the system message of every request (it is SYSTEM_PROMPT in "
                   "serving/inference.py)")
        notes.append(f"SYSTEM is left out of the Modelfile: {omitted}.")
    dropped = ollama_drops(ctx.system_prompt) if system_block is not None else []
    if dropped:
        notes.append("Ollama drops these characters of the system prompt when it reads the Modelfile: "
                     + ", ".join(describe_character(ch) for ch in dropped) + ".")
    stops = [(stop, modelfile_string(stop)) for stop in ctx.stop_strings]
    if any(q is None for _, q in stops):
        notes.append("Stop strings left out of the Modelfile (not expressible in its syntax): "
                     + ", ".join(repr(s) for s, q in stops if q is None) + ".")
    return {"system_block": system_block, "system_omitted": omitted,
            "stop_values": [q for _, q in stops if q is not None]}, notes


def _vllm(ctx: ServingContext) -> list[ServingConfig]:
    out = []
    if ctx.merged_dir:
        merged = ServingContext(**{**asdict(ctx), "adapter_dir": ""})
        out.append(ServingConfig("vllm", "vLLM (merged model)", "serving/vllm_merged.sh",
                                 render("vllm.sh.j2", {**merged.variables("vllm"), "variant": "merged model"}),
                                 "bash serving/vllm_merged.sh", "OpenAI-compatible on 127.0.0.1:8000; the fastest option."))
    if ctx.adapter_dir and ctx.base:
        out.append(ServingConfig("vllm_lora", "vLLM (base + LoRA adapter)", "serving/vllm_lora.sh",
                                 render("vllm.sh.j2", {**ctx.variables("vllm"), "variant": "base model + LoRA adapter"}),
                                 "bash serving/vllm_lora.sh",
                                 "Serves the adapter on the unmodified base: new adapter versions load without "
                                 "re-exporting, and the previous one stays available for rollback."))
    return out


def _ollama(ctx: ServingContext) -> list[ServingConfig]:
    from ftkit.safe_values import shell_quote

    variables = ctx.variables("ollama")
    if not ctx.merged_dir:
        variables["merged_dir"] = ""
    note = ("Local/offline use on a laptop or small server." if variables["go_template"] else
            "This chat template is not a known family: write the Modelfile's TEMPLATE by hand before use.")
    if ctx.dtype in ("int8", "int4"):
        note += f" Add `--quantize {'q8_0' if ctx.dtype == 'int8' else 'q4_K_M'}` to `ollama create` for {ctx.dtype}."
    quoted = shell_quote(ctx.model_name)
    command = f"ollama create {quoted} -f serving/Modelfile && ollama run {quoted}"
    modelfile, notes = _modelfile_values(ctx)
    note = " ".join([note, *notes])
    return [ServingConfig("ollama", "Ollama", "serving/Modelfile",
                          render("Modelfile.j2", {**variables, **modelfile, "ollama_command": command}), command, note)]


def _tgi(ctx: ServingContext) -> list[ServingConfig]:
    if not ctx.merged_dir:
        return []
    return [ServingConfig("tgi", "Hugging Face TGI", "serving/tgi.sh", render("tgi.sh.j2", ctx.variables("tgi")),
                          "bash serving/tgi.sh", f"Docker image pinned to {TGI_IMAGE}; OpenAI-compatible on 127.0.0.1:8080.")]


def _python(ctx: ServingContext) -> list[ServingConfig]:
    return [ServingConfig("python", "Python (transformers)", "serving/inference.py",
                          render("inference.py.j2", ctx.variables("python")),
                          'python serving/inference.py "your question"',
                          "No server: for batch jobs and for checking an answer by hand.")]


GENERATORS: dict[str, Callable[[ServingContext], list[ServingConfig]]] = {
    "vllm": _vllm, "ollama": _ollama, "tgi": _tgi, "python": _python,
}


def generate_configs(ctx: ServingContext, names: list[str] | None = None) -> list[ServingConfig]:
    """The configs of the named generators (all by default); unknown names list the valid ones."""
    from ftkit.errors import UsageError

    unknown = [n for n in names or [] if n not in GENERATORS]
    if unknown:
        raise UsageError(f"Unknown serving config {unknown[0]!r}; valid: {', '.join(GENERATORS)}")
    return [c for name in (names or list(GENERATORS)) for c in GENERATORS[name](ctx)]


def write_configs(ctx: ServingContext, run_dir: str | Path, configs: list[ServingConfig]) -> dict[str, Path]:
    """Write every config, the chat template and a README with the commands; returns relative path -> Path."""
    run_dir = Path(run_dir)
    written = {ctx.chat_template_file: atomic_write_text(run_dir / ctx.chat_template_file, ctx.chat_template)}
    for config in configs:
        written[config.file] = atomic_write_text(run_dir / config.file, config.text)
    readme = render("README.md.j2", {**ctx.variables(), "configs": configs})
    written["serving/README.md"] = atomic_write_text(run_dir / "serving" / "README.md", readme)
    return written
