"""Hostile values in every free-text setting and data cell: refused at the source when they cannot be one-line
text, quoted at every sink otherwise.

Sinks checked for real: the serving shell scripts run under bash with stub ``vllm``/``docker`` binaries that
record their argv (and a DEBUG trap that records every command bash runs), and are also split with shlex; the
Modelfile is read back with a port of Ollama's own parser; ``inference.py`` runs with stub torch/transformers
that record what they are asked to load and which messages they get; the CSV sheets are read with the csv
module; papermill's parameter cell is evaluated.
"""
from __future__ import annotations

import ast
import csv
import dataclasses
import io
import json
import os
import shlex
import subprocess
import sys
import typing
import unicodedata
from pathlib import Path

import pytest

from ftkit import config as cfg
from ftkit.deployment.serving_configs import TGI_IMAGE, ServingContext, generate_configs, write_configs
from ftkit.errors import ConfigError
from ftkit.models.tiny import CHATML_TEMPLATE
from ftkit.safe_values import FORMULA_LEADERS, csv_uncell, ollama_drops

LONG = "A" * 5000 + "$(touch pwned)" + "B" * 5000
HOSTILE = [
    "Acme\nrm -rf ~/important",
    "Acme $(touch pwned) co",
    "`touch pwned`",
    "x; touch pwned; y",
    "x && touch pwned || touch pwned | cat > pwned &",
    "it's \"quoted\" 'single' ‘curly’ “double” «guillemets»",
    '"""',
    'ends """\nFROM evil\nSYSTEM """pwned',
    '\\" \\\' \\n backslashes \\',
    "{{ 7*7 }} {% if x %}jinja{% endif %} {#",
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "+1+2",
    "-3.5",
    "\tleading tab",
    "\rleading CR",
    "nul\x00byte",
    "esc\x1b[31mred\x1b[0m",
    "rtl \u202eexe.txt\u202c",
    "line\u2028separator",
    "#!/bin/sh\n# comment\ntouch pwned",
    "${HOME} $PWD ~ *",
    LONG,
]
REFUSED_ONE_LINE = ("\n", "\t", "\r", "\x00", "\x1b", "\u202e", "\u2028")
REFUSED_MULTI_LINE = ("\r", "\x00", "\x1b", "\u202e", "\u2028")
IDS = [f"h{i}" for i in range(len(HOSTILE))]


def one_line_ok(value: str) -> bool:
    return not any(ch in value for ch in REFUSED_ONE_LINE)


# -- 1. validation at the source --------------------------------------------------------------------------

def _text_fields():
    """(dotted name, multiline, is_list) of every free-text setting (str or list[str] without choices)."""
    out = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for fld in dataclasses.fields(cls):
            tp, name = hints[fld.name], f"{prefix}{fld.name}"
            if dataclasses.is_dataclass(tp):
                walk(tp, name + ".")
            elif tp is str and not fld.metadata.get("choices") and not fld.metadata.get("pattern"):
                # (a setting with a pattern, e.g. training.main_process_ip, has no room for free text: its own
                # check refuses anything else, tested beside it)
                out.append((name, bool(fld.metadata.get("multiline")), False))
            elif tp == list[str] and not fld.metadata.get("item_choices"):
                out.append((name, False, True))
        return out

    return walk(cfg.EngagementConfig, "")


TEXT_FIELDS = _text_fields()

# Free-text settings with a format of their own: the hostile value is put where that format allows text.
SHAPED = {"base_model.chat_template": lambda v: f"t{v}.jinja",  # a template file path
          "training.accelerate_config": lambda v: f"a{v}.yaml",  # an accelerate config file path
          "augmentation.teacher.base_url": lambda v: f"http://teacher/{v}",  # a URL
          # a review sheet: a .csv path inside the engagement folder (the value as one file name)
          "data.corrections": lambda v: "reviews/" + v.replace("/", "_").replace("\\", "_") + ".csv"}


def _shaped(name: str, value: str) -> str:
    return SHAPED.get(name, lambda v: v)(value)


def _nest(dotted: str, value) -> dict:
    out: dict = {}
    node = out
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return out


def _merge(a: dict, b: dict) -> dict:
    for k, v in b.items():
        a[k] = _merge(a.get(k, {}), v) if isinstance(v, dict) else v
    return a


def test_every_free_text_setting_is_covered():
    names = {n for n, _, _ in TEXT_FIELDS}
    assert {"client.name", "client.contact", "client.industry", "objective", "task.system_prompt",
            "base_model.id", "base_model.revision", "data.files", "deployment.gpu"} <= names
    assert {n for n, multi, _ in TEXT_FIELDS if multi} == {"objective", "task.system_prompt",
                                                           "suitability.prompt_engineering_notes"}


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_each_setting_refuses_or_keeps_a_hostile_value(value):
    """Every free-text setting at once: the ConfigError lists exactly the fields that cannot hold the value,
    each with its name and the value's repr; the others keep the value exactly."""
    data: dict = {}
    for name, _, is_list in TEXT_FIELDS:
        _merge(data, _nest(name, [_shaped(name, value)] if is_list else _shaped(name, value)))
    refused = {n for n, multi, _ in TEXT_FIELDS
               if any(ch in value for ch in (REFUSED_MULTI_LINE if multi else REFUSED_ONE_LINE))}
    if not refused:
        config = cfg.parse_config(data)
        for name, _, is_list in TEXT_FIELDS:
            node = config
            for part in name.split("."):
                node = getattr(node, part)
            assert node == ([_shaped(name, value)] if is_list else _shaped(name, value)), name
        return
    with pytest.raises(ConfigError) as err:
        cfg.parse_config(data)
    problems = err.value.problems
    named = {p.split(":")[0].split("[")[0] for p in problems}
    assert named == refused  # all problems at once, and only the refused fields
    bad = {f"U+{ord(ch):04X}" for ch in value if ch in REFUSED_ONE_LINE}
    for p in problems:
        shown = _shaped(p.split(":")[0].split("[")[0], value)
        assert any(code in p for code in bad) and repr(shown)[:20] in p, p


def test_multi_line_settings_keep_line_breaks_and_tabs():
    prompt = 'Answer as JSON.\n\tIndented line\n"""\n$(not run)'
    config = cfg.parse_config({"task": {"system_prompt": prompt}, "objective": "one\ntwo"})
    assert config.task.system_prompt == prompt and config.objective == "one\ntwo"


def test_a_refused_value_in_engagement_yaml_names_the_field(tmp_path):
    path = tmp_path / "engagement.yaml"
    path.write_text('client:\n  name: "Acme\\nrm -rf ~"\n  industry: "ok"\nbase_model:\n  revision: "v1\\e[2J"\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        cfg.load_config(path)
    text = str(err.value)
    assert "client.name" in text and "'Acme\\nrm -rf ~'" in text and "line break" in text
    assert "base_model.revision" in text and "ESC" in text and "industry" not in text


# -- 2. shell scripts ---------------------------------------------------------------------------------------

def _context(value: str, **overrides) -> ServingContext:
    """Every text field of the serving context set from ``value``; path-like fields only when a one-line
    setting could hold it (they come from base_model.id or ftkit's own constants)."""
    path = value if one_line_ok(value) and len(value) < 200 else "plain"  # a file name has at most 255 bytes
    word = value.replace("\x00", "<NUL>")  # no argv can hold a NUL: shell_quote refuses it (tested below)
    values = dict(client=value, model_name=word, chat_template=CHATML_TEMPLATE,
                  stop_strings=["<|im_end|>", value], system_prompt=value, dtype="bf16", export_dtype="bf16",
                  context_length=1024, max_input_tokens=900, max_tokens=64, concurrency=8, n_gpus=1, gpu_label=value,
                  merged_dir=f"export/{path}/merged", adapter_dir=f"export/{path}/adapter", base=f"org/{path}",
                  base_revision=word, chat_template_file=f"serving/{path}.jinja", date=value)
    return ServingContext(**{**values, **overrides})


STUB = """#!{python}
import json, os, sys
with open(os.environ["FTKIT_ARGV_LOG"], "a", encoding="utf-8") as handle:
    handle.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
"""
TRACE = """trap 'printf "%s\\0" "$BASH_COMMAND" >> "$FTKIT_TRACE"' DEBUG\n"""


def run_script(script: Path, cwd: Path) -> tuple[list[list[str]], list[str]]:
    """Run ``script`` with bash, stub vllm/docker first on PATH, HOME in ``cwd``: (argv of each stub call,
    every command bash ran)."""
    bin_dir = cwd / "stub-bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("vllm", "docker"):
        (bin_dir / name).write_text(STUB.format(python=sys.executable), encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    (cwd / "trace.sh").write_text(TRACE, encoding="utf-8")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(cwd), "FTKIT_ARGV_LOG": str(cwd / "argv.jsonl"),
           "FTKIT_TRACE": str(cwd / "trace.bin"), "BASH_ENV": str(cwd / "trace.sh")}
    done = subprocess.run(["bash", str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    argv = [json.loads(line) for line in (cwd / "argv.jsonl").read_text(encoding="utf-8").splitlines()]
    trace = (cwd / "trace.bin").read_text(encoding="utf-8").split("\0")[:-1]
    return argv, trace


def shlex_words(script: str) -> list[str]:
    """The script's words as shlex reads them: comments dropped, the templates' line continuations joined."""
    return shlex.split(script.replace(" \\\n", " "), comments=True)


def expected_argv(key: str, ctx: ServingContext, cwd: Path) -> list[str]:
    tail = ["--chat-template", ctx.chat_template_file, "--dtype", "bfloat16", "--max-model-len", "1024",
            "--max-num-seqs", "8", "--tensor-parallel-size", "1", "--gpu-memory-utilization", "0.90",
            "--generation-config", "auto", "--host", "127.0.0.1", "--port", "8000"]
    if key == "vllm":
        return ["vllm", "serve", ctx.merged_dir, "--served-model-name", ctx.model_name] + tail
    if key == "vllm_lora":
        return ["vllm", "serve", ctx.base, "--revision", ctx.base_revision, "--enable-lora", "--lora-modules",
                f"{ctx.model_name}={ctx.adapter_dir}", "--max-lora-rank", "16"] + tail
    return ["docker", "run", "--rm", "--gpus", "all", "--shm-size", "1g", "-p", "127.0.0.1:8080:80", "-v",
            f"{cwd}/{ctx.merged_dir}:/model:ro", TGI_IMAGE, "--model-id", "/model", "--num-shard", "1",
            "--max-input-tokens", "900", "--max-total-tokens", "1024", "--max-concurrent-requests", "8"]


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_shell_scripts_run_each_value_as_one_literal_word(value, tmp_path):
    ctx = _context(value)
    write_configs(ctx, tmp_path, generate_configs(ctx))
    canary = tmp_path / "important"
    canary.mkdir()
    scripts = {"vllm": "serving/vllm_merged.sh", "vllm_lora": "serving/vllm_lora.sh", "tgi": "serving/tgi.sh"}
    for key, rel in scripts.items():
        script = tmp_path / rel
        text = script.read_bytes().decode("utf-8")  # not read_text: it would turn a quoted CR into LF
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
        (tmp_path / "argv.jsonl").unlink(missing_ok=True)
        (tmp_path / "trace.bin").unlink(missing_ok=True)
        argv, trace = run_script(script, tmp_path)
        expected = expected_argv(key, ctx, tmp_path)
        assert argv == [expected], key  # one call, every value one exact argument
        assert len(trace) == 2 and trace[0] == "set -euo pipefail", trace  # no other command ran
        words = [str(tmp_path) + w[4:] if w.startswith("$PWD/") else w for w in shlex_words(text)]  # tgi's -v
        assert words == ["set", "-euo", "pipefail"] + expected, key
        assert all(line.startswith("#") for line in text.splitlines()[:4]), "header comments stay comments"
    assert canary.is_dir() and not (tmp_path / "pwned").exists()


def test_a_nul_cannot_become_a_shell_word():
    from ftkit.errors import FtkitError
    from ftkit.safe_values import shell_quote

    with pytest.raises(FtkitError, match="NUL"):
        shell_quote("a\x00b")


def test_an_unquoted_interpolation_in_a_shell_template_is_refused(tmp_path):
    import jinja2

    from ftkit.safe_values import shell_environment

    env = shell_environment(jinja2.DictLoader({"bad.sh.j2": "vllm serve {{ model }}\n",
                                               "good.sh.j2": "vllm serve {{ model | sh }} --port {{ port }}\n"}))
    with pytest.raises(ValueError, match="quoting filter"):
        env.get_template("bad.sh.j2").render(model="x; rm -rf ~")
    good = env.get_template("good.sh.j2").render(model="x; rm -rf ~", port=8000)
    assert good == "vllm serve 'x; rm -rf ~' --port 8000\n"


def test_every_executed_serving_template_uses_the_strict_environment():
    from ftkit.deployment.serving_configs import EXECUTED_TEMPLATES
    from ftkit.resources import templates_dir

    executed = [p.name for p in (templates_dir() / "serving").iterdir() if p.name.endswith(EXECUTED_TEMPLATES)]
    assert {"vllm.sh.j2", "tgi.sh.j2", "inference.py.j2", "Modelfile.j2"} <= set(executed)


# -- 3. Ollama Modelfile ------------------------------------------------------------------------------------

def ollama_parse(text: str) -> list[tuple[str, str]]:
    """(command, argument) pairs as Ollama reads a Modelfile: a rune-by-rune port of ``ParseFile`` and
    ``parseRuneForState`` in ollama/parser/parser.go (same states, transitions, unquote and IsPrint rule)."""
    NIL, NAME, VALUE, PARAM, MESSAGE, COMMENT = range(6)
    space, newline = " \t", "\r\n"

    def printable(r):  # Go strconv.IsPrint: letters, marks, numbers, punctuation, symbols, ASCII space
        return r == " " or unicodedata.category(r)[0] in "LMNPS"

    def unquote(s):
        if s[:3] == '"""':
            return (s[3:-3], True) if len(s) >= 6 and s[-3:] == '"""' else ("", False)
        if s[:1] == '"':
            return (s[1:-1], True) if len(s) >= 2 and s[-1] == '"' else ("", False)
        return s, True

    def step(r, state):
        if state == NIL:
            return (COMMENT, "") if r == "#" else (NIL, "") if r in space + newline else (NAME, r)
        if state == NAME:
            if r.isascii() and r.isalpha():
                return NAME, r
            if r in space:
                return VALUE, ""
            raise ValueError(f"invalid command at {r!r}")
        if state == VALUE:
            return (NIL, r) if r in newline + space else (VALUE, r)
        if state in (PARAM, MESSAGE):
            if r.isascii() and (r.isalnum() or r == "_"):
                return state, r
            if r in space:
                return VALUE, ""
            raise ValueError("unexpected EOF")
        return (NIL, "") if r in newline else (COMMENT, "")

    commands, name, buf, curr = [], "", "", NIL
    for r in text:
        nxt, r = step(r, curr)
        if nxt != curr:
            if curr == NAME:
                word = buf.lower()
                if word not in ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser",
                                "parameter", "message", "requires"):
                    raise ValueError(f"invalid command {buf!r}")
                name = "model" if word == "from" else word
                nxt = PARAM if word == "parameter" else MESSAGE if word == "message" else nxt
            elif curr == PARAM:
                name = buf
            elif curr == VALUE:
                value, ok = unquote(buf.strip(" \t\r\n"))
                if not ok or r in space:
                    buf += r
                    continue
                commands.append((name, value))
            buf, curr = "", nxt
        if r and printable(r):
            buf += r
    if curr == VALUE:
        value, ok = unquote(buf.strip(" \t\r\n"))
        if not ok:
            raise ValueError("unexpected EOF in a quoted value")
        commands.append((name, value))
    elif curr not in (NIL, COMMENT):
        raise ValueError("unexpected EOF")
    return commands


def test_the_parser_port_reads_a_plain_modelfile():
    got = ollama_parse('# c\nFROM ../m\nSYSTEM """a\nb"""\nPARAMETER stop "<|x|>"\nPARAMETER num_ctx 8\n')
    assert got == [("model", "../m"), ("system", "a\nb"), ("stop", "<|x|>"), ("num_ctx", "8")]
    # The attack it models: a prompt written naively into a block adds its own FROM line.
    prompt = 'x"""\nFROM evil\nSYSTEM """y'
    assert ollama_parse(f'FROM ../m\nSYSTEM """{prompt}"""\n') == [("model", "../m"), ("system", "x"),
                                                                  ("model", "evil"), ("system", "y")]
    from ftkit.safe_values import modelfile_block

    assert modelfile_block(prompt) is None and modelfile_block('say """hi""" twice') is not None


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
@pytest.mark.parametrize("merged", [True, False], ids=["merged", "adapter"])
def test_modelfile_blocks_read_back_intact(value, merged):
    ctx = _context(value, **({} if merged else {"merged_dir": ""}))
    [config] = generate_configs(ctx, ["ollama"])
    commands = ollama_parse(config.text)
    names = [n for n, _ in commands]
    system_kept = "system" in names
    assert names == (["model"] + ([] if merged else ["adapter"]) + ["template"] + (["system"] if system_kept else [])
                     + ["stop"] * names.count("stop") + ["temperature", "num_ctx", "num_predict"])
    got = dict(c for c in commands if c[0] != "stop")
    assert got["model"] == ("../" + ctx.merged_dir if merged else ctx.base)
    if not merged:
        assert got["adapter"] == "../" + ctx.adapter_dir
    assert got["template"] == ctx.family.go_template
    dropped = ollama_drops(value)
    if system_kept:
        assert got["system"] == "".join(ch for ch in value if ch not in dropped)
        assert not dropped or "Ollama drops" in config.notes
    else:
        assert "SYSTEM is left out" in config.notes and "SYSTEM left out" in config.text
    stops = [v for n, v in commands if n == "stop"]
    assert stops[0] == "<|im_end|>" and (len(stops) == 1 or stops[1] == "".join(c for c in value if c not in dropped))


def test_a_go_template_with_triple_quotes_is_escaped_in_its_own_syntax():
    from ftkit.safe_values import modelfile_template

    go = 'x """\n{{ .Content }}'
    [(_, parsed)] = ollama_parse(f"TEMPLATE {modelfile_template(go)}\n")
    assert parsed.replace('{{ "\\"\\"\\"" }}', '"""') == go and '"""\n' not in parsed


# -- 4. inference.py ----------------------------------------------------------------------------------------

STUB_MODULES = {
    "torch/__init__.py": (
        "import contextlib\nbfloat16, float32 = 'bfloat16', 'float32'\n"
        "class cuda:\n    @staticmethod\n    def is_available():\n        return False\n"
        "def inference_mode():\n    return contextlib.nullcontext()\n"),
    "transformers/__init__.py": (
        "import json, os\n"
        "def log(**kw):\n    open(os.environ['FTKIT_CALLS'], 'a').write(json.dumps(kw, default=str) + '\\n')\n"
        "class T:\n    shape = (1, 0)\n    def to(self, device):\n        return self\n"
        "    def __getitem__(self, key):\n        return self\n"
        "class Tok:\n    def apply_chat_template(self, messages, **kw):\n"
        "        log(call='chat', messages=messages)\n        return {'input_ids': T()}\n"
        "    def decode(self, *a, **kw):\n        return 'stub answer'\n"
        "class Model:\n    device = 'cpu'\n    def to(self, device):\n        return self\n"
        "    def eval(self):\n        return self\n    def generate(self, **kw):\n        return T()\n"
        "class AutoTokenizer:\n    @staticmethod\n    def from_pretrained(path, **kw):\n"
        "        log(call='tokenizer', path=path, **kw)\n        return Tok()\n"
        "class AutoModelForCausalLM:\n    @staticmethod\n    def from_pretrained(path, **kw):\n"
        "        log(call='model', path=path, **kw)\n        return Model()\n"),
    "peft/__init__.py": (
        "from transformers import log, Model\n"
        "class PeftModel:\n    @staticmethod\n    def from_pretrained(base, path, **kw):\n"
        "        log(call='adapter', path=path)\n        return Model()\n"),
}


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
@pytest.mark.parametrize("merged", [True, False], ids=["merged", "adapter"])
def test_inference_py_loads_and_prompts_with_the_exact_values(value, merged, tmp_path):
    """inference.py run for real with stub torch/transformers/peft that record their calls: the paths,
    revision, system prompt and the question (a hostile argv word) arrive exactly, and nothing else runs."""
    ctx = _context(value, **({"adapter_dir": ""} if merged else {"merged_dir": ""}))
    write_configs(ctx, tmp_path, generate_configs(ctx, ["python"]))
    source = (tmp_path / "serving" / "inference.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    assert isinstance(tree.body[0].value, ast.Constant)  # the docstring stayed one string
    stubs = tmp_path / "stubs"
    for rel, text in STUB_MODULES.items():
        (stubs / rel).parent.mkdir(parents=True, exist_ok=True)
        (stubs / rel).write_text(text, encoding="utf-8")
    # -S: no site-packages, so the real torch/transformers cannot be picked up instead of the stubs.
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(stubs), "FTKIT_CALLS": str(tmp_path / "calls.jsonl"),
           "HOME": str(tmp_path)}
    question = value if "\x00" not in value else "no NUL in argv"  # a NUL cannot be an argv byte at all
    done = subprocess.run([sys.executable, "-S", "serving/inference.py", question], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "stub answer"
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    if merged:
        assert [c["call"] for c in calls] == ["tokenizer", "model", "chat"]
        assert calls[0]["path"] == calls[1]["path"] == ctx.merged_dir
    else:
        assert [c["call"] for c in calls] == ["tokenizer", "model", "adapter", "chat"]
        assert calls[0]["path"] == calls[2]["path"] == ctx.adapter_dir
        assert calls[1]["path"] == ctx.base and calls[1]["revision"] == ctx.base_revision
    system = [{"role": "system", "content": value}] if value else []
    assert calls[-1]["messages"] == system + [{"role": "user", "content": question}]
    assert not (tmp_path / "pwned").exists()


# -- 5. CSV sheets and their JSON twins ---------------------------------------------------------------------

def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def _assert_no_formula_cells(text: str) -> None:
    for row in _cells(text):
        for cell in row:
            assert not cell.startswith(FORMULA_LEADERS), cell


def test_issues_csv_neutralises_formula_cells_and_the_json_keeps_the_text(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from data_helpers import chat, distinct_tickets

    from ftkit.data.audit_files import AuditOptions, audit_files
    from ftkit.data.check_command import check_report
    from ftkit.data.record_checks import TaskContext

    answers = [v for v in HOSTILE if v.startswith(FORMULA_LEADERS)] + ["-3.5", "=HYPERLINK(\"http://x\",\"y\")"]
    records = distinct_tickets(20) + [chat(f"ticket {i}", a) for i, a in enumerate(answers)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = audit_files([data], AuditOptions(task=TaskContext("structured_output", "category")))
    path = result.write_issues_csv(tmp_path / "issues.csv")
    text = path.read_bytes().decode("utf-8")
    _assert_no_formula_cells(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {csv_uncell(r["excerpt"]) for r in rows} >= {"=cmd|' /C calc'!A0", "@SUM(1+1)", "-3.5"}
    assert all(r["line"].isdigit() for r in rows)  # numbers written by ftkit stay numbers
    report = check_report(result)
    assert {i["excerpt"] for i in report["issues"]} >= {"=cmd|' /C calc'!A0", "@SUM(1+1)"}  # JSON: exact text


def test_ab_sheet_neutralises_formula_cells_and_round_trips_the_ratings(tmp_path):
    from ftkit.evaluation import ab_sheet

    items = [ab_sheet.PairItem(f"ex{i}", v, f"old {i}: {v}", v + " (new)") for i, v in enumerate(HOSTILE)]
    rows, key = ab_sheet.build_sheet(items, n_items=len(items), seed=1)
    paths = ab_sheet.write_sheet(tmp_path / "ab", rows, key)
    text = paths["csv"].read_bytes().decode("utf-8")  # not read_text: it would turn a quoted CR into LF
    _assert_no_formula_cells(text)
    sheet = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [csv_uncell(r["input"]) for r in sheet] == [r["input"] for r in rows]  # exact after the undo
    # A reviewer fills the sheet in a spreadsheet: choices, hostile comments, and Excel keeps the ' prefixes.
    for i, r in enumerate(sheet):
        r["choice"] = ["1", "2", "tie"][i % 3]
        r["comment"] = "'=1+1 looks odd" if i % 2 else "@me"
    filled = tmp_path / "ab" / "ratings.csv"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(sheet[0]))  # as a spreadsheet saves it: CRLF, CR quoted
    writer.writeheader()
    writer.writerows(sheet)
    filled.write_bytes(buffer.getvalue().encode("utf-8"))
    _, choices = ab_sheet.read_sheet(filled, key)
    assert choices == {r["item_id"]: [1, 2, 0][i % 3] for i, r in enumerate(sheet)}
    html = paths["html"].read_text(encoding="utf-8")
    assert "=cmd|&#39; /C calc&#39;!A0" in html and "'=cmd" not in html  # the HTML twin keeps the exact text


def test_a_tie_written_as_a_neutralised_equals_sign_is_still_a_tie(tmp_path):
    from ftkit.evaluation import ab_sheet

    items = [ab_sheet.PairItem("a", "q", "x", "y")]
    rows, key = ab_sheet.build_sheet(items, n_items=1)
    path = tmp_path / "r.csv"
    path.write_text(f"item_id,choice\n{rows[0]['item_id']},'=\n", encoding="utf-8")
    assert ab_sheet.read_sheet(path, key)[1] == {rows[0]["item_id"]: 0}


# -- 6. papermill's parameter cell --------------------------------------------------------------------------

def test_papermill_parameter_cell_holds_hostile_values_as_literals(tmp_path):
    """`ftkit run -p` and `ftkit lab` inject values through papermill: each one must arrive as a literal."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nbformat.write(nb, str(tmp_path / "nb.ipynb"))
    params = {f"p{i}": v for i, v in enumerate(HOSTILE)}
    out = parameterize_notebook(load_notebook_node(str(tmp_path / "nb.ipynb")), params, kernel_name="python3",
                                language="python")
    injected = next(c for c in out.cells if "injected-parameters" in c.metadata.get("tags", []))
    tree = ast.parse(injected.source)
    assert all(isinstance(s, ast.Assign) for s in tree.body)
    assert {s.targets[0].id: ast.literal_eval(s.value) for s in tree.body} == params


# -- 7. one whole engagement on the tiny model with hostile values --------------------------------------------

HOSTILE_SETTINGS = {
    "client.name": "Acme \"$(touch pwned)\" `id`; =cmd|' /C calc'!A0 <img src=x onerror=alert(1)> [click](javascript:alert(1))",
    "client.contact": "@SUM(1+1)",
    "client.industry": "+1 {{ 7*7 }} {% raw %}",
    "objective": "Triage tickets.\n\"\"\"\n$(touch pwned)\n=HYPERLINK(\"http://x\",\"y\")",
}
HOSTILE_PROMPT = ('Classify the ticket; quote it like """this""" if needed, never run $(touch pwned) or `id`.\n'
                  'Reply with JSON only.\n"""\nFROM evil\nSYSTEM """')
FORMULAS = ["=cmd|' /C calc'!A0 ", "@SUM(1+1) ", "+1+2 ", "-3.5 ", "=HYPERLINK(\"http://x\") "]


@pytest.mark.slow
def test_a_whole_engagement_with_hostile_values(tiny_model_dir, tmp_path):
    """Hostile free text in engagement.yaml and formula cells in the client's data, through every phase on the
    tiny model: every phase succeeds, nothing runs, and every generated artefact holds the values safely."""
    from engagement_helpers import sample_records

    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.intake import create_engagement
    from ftkit.runner import run_phases

    records = sample_records(200)
    for i, r in enumerate(records):
        r["messages"][0]["content"] = HOSTILE_PROMPT
        # Every input formula-leading, so every A/B item's input is one.
        r["messages"][1]["content"] = FORMULAS[i % len(FORMULAS)] + r["messages"][1]["content"]
    records.append({"messages": [records[1]["messages"][0], {"role": "user", "content": "where is my parcel?"},
                                 {"role": "assistant", "content": "=cmd|' /C calc'!A0"}]})  # an issues.csv row
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    tiny = {"baseline.shots": 1, "baseline.max_examples": 12, "baseline.max_new_tokens": 24, "training.max_steps": 6,
            "training.learning_rate": 0.02,
            "training.batch_size": 4, "training.max_seq_length": 256, "training.eval_steps": 2,
            "data.max_seq_length": 256, "evaluation.ab_items": 8}  # conftest's tiny chain, a high learning rate
    # so the fine-tuned answers differ from the baseline's and the A/B sheet has items
    settings = {**DEMO_SETTINGS, **tiny, **HOSTILE_SETTINGS, "task.system_prompt": HOSTILE_PROMPT}
    engagement = create_engagement("hostile", [data], tmp_path / "engagements", base_model=str(tiny_model_dir),
                                   settings=settings)
    outcomes = run_phases(engagement, None, {}, progress=False)
    failed = [o for o in outcomes if not o.succeeded]
    assert not failed, f"{failed[0].phase} {failed[0].status}: {failed[0].error}"
    assert not list(tmp_path.rglob("pwned"))
    # Reports (per-run report.html, the engagement report): the client name shown escaped, never as markup.
    from ftkit.reports import build_engagement_report

    build_engagement_report(engagement)
    pages = list(engagement.path.rglob("*.html"))
    assert (engagement.report_dir / "index.html") in pages and len(pages) > 6
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<img src=x onerror" not in text and 'href="javascript:' not in text, page

    # Every CSV ftkit wrote: no cell a spreadsheet would run.
    sheets = [p for p in engagement.path.rglob("*.csv") if "data" not in p.relative_to(engagement.path).parts[:1]]
    assert {p.name for p in sheets} >= {"issues.csv", "ab_sheet.csv"}
    for sheet in sheets:
        _assert_no_formula_cells(sheet.read_bytes().decode("utf-8"))
    issues = (engagement.latest_run_dir("data_audit") / "issues.csv").read_bytes().decode("utf-8")
    assert "\"'=cmd|' /C calc'!A0\"" in issues
    ab = (engagement.latest_run_dir("evaluation") / "ab" / "ab_sheet.csv").read_bytes().decode("utf-8")
    inputs = [row["input"] for row in csv.DictReader(io.StringIO(ab.lstrip("\ufeff")))]
    assert inputs and all(i.startswith("'") and csv_uncell(i).startswith(FORMULA_LEADERS) for i in inputs)

    # The deployment plan's scripts: run under bash with stubs, the served name and paths as single words.
    run_dir = engagement.latest_run_dir("deployment_plan")
    for script in sorted((run_dir / "serving").glob("*.sh")):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
        work = tmp_path / f"run-{script.stem}"
        work.mkdir()
        argv, trace = _run_in_bundle(script, run_dir, work)
        assert len(argv) == 1 and len(trace) == 2, (argv, trace)
        header = script.read_text(encoding="utf-8").splitlines()[:3]
        assert all(line.startswith("#") for line in header) and HOSTILE_SETTINGS["client.name"] in header[2]
    # The Modelfile: Ollama reads no injected FROM; SYSTEM is left out with a note (a line ends in """).
    modelfile = (run_dir / "serving" / "Modelfile").read_text(encoding="utf-8")
    commands = ollama_parse(modelfile)
    assert [v for n, v in commands if n == "model"] == ["../export/merged"] and "system" not in dict(commands)
    assert "SYSTEM left out" in modelfile
    # inference.py carries the exact prompt as a literal.
    source = (run_dir / "serving" / "inference.py").read_text(encoding="utf-8")
    prompt = next(n.value for n in ast.parse(source).body
                  if isinstance(n, ast.Assign) and n.targets[0].id == "SYSTEM_PROMPT")
    assert ast.literal_eval(prompt) == HOSTILE_PROMPT


def _run_in_bundle(script: Path, run_dir: Path, work: Path):
    """run_script, from a copy of the handover bundle's serving folder (the script runs from the bundle root)."""
    import shutil

    shutil.copytree(run_dir / "serving", work / "serving")
    return run_script(work / "serving" / script.name, work)


def test_the_html_forms_downloaded_ratings_are_neutralised_and_read_back(tmp_path):
    """The A/B form's own CSV download, run in headless Chromium: hostile rater name and comments come out
    with the ' prefix, and read_sheet gives back the exact choices and rater."""
    from form_driver import downloaded_csv  # tests/form_driver.py

    from ftkit.evaluation import ab_sheet
    from ftkit.report_pdf import find_chromium

    browser = find_chromium()
    if browser is None:
        pytest.skip("no chromium/chrome binary on PATH")
    items = [ab_sheet.PairItem(f"ex{i}", v, f"old {i}", f"new {i}") for i, v in enumerate(HOSTILE[:12])]
    rows, key = ab_sheet.build_sheet(items, n_items=12, seed=2)
    page = ab_sheet.render_html(rows, key["sheet_id"], "Blind A/B review")
    rater = "=cmd|' /C calc'!A0"
    fill = """document.getElementById("rater").value = RATER;
    document.querySelectorAll(".item").forEach(function (el, i) {
      el.querySelectorAll("input[type=radio]")[i % 3].checked = true;
      el.querySelector("textarea").value = ["@SUM(1+1)", "+1", "plain"][i % 3];
    });""".replace("RATER", json.dumps(rater))
    text = downloaded_csv(browser, page, fill, tmp_path, "ab_sheet.html")
    _assert_no_formula_cells(text)
    ratings = tmp_path / "ratings.csv"
    ratings.write_bytes(text.encode("utf-8"))
    got_rater, choices = ab_sheet.read_sheet(ratings, key)
    assert got_rater == rater
    assert choices == {r["item_id"]: [1, 2, 0][i % 3] for i, r in enumerate(rows)}


def test_data_check_prints_terminal_escapes_escaped(tmp_path):
    """`ftkit data check` prints excerpts of client text to a terminal: ESC sequences (retitle the window,
    clear the screen) must arrive as visible escapes, while --json keeps the exact text."""
    from ftkit.data.audit_files import AuditOptions, audit_files
    from ftkit.data.check_command import check_report, format_summary

    answer = "\x1b]0;owned\x07\x1b[2J=cmd"
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": answer}]}) + "\n", encoding="utf-8")
    result = audit_files([data], AuditOptions())
    printed = format_summary(result)
    assert "\x1b" not in printed and "\x07" not in printed
    assert [i["excerpt"] for i in check_report(result)["issues"]] == [answer]  # the JSON keeps the exact text
    assert "\\x1b]0;owned" in printed


@pytest.mark.parametrize("value", [v for v in HOSTILE if not any(ch in v for ch in REFUSED_MULTI_LINE)],
                         ids=[i for v, i in zip(HOSTILE, IDS) if not any(ch in v for ch in REFUSED_MULTI_LINE)])
def test_engagement_yaml_written_by_ftkit_new_holds_the_exact_value(value):
    """`ftkit new` writes engagement.yaml with ruamel.yaml (comments kept): every value the config accepts
    reads back exactly, and nothing else in the file changes meaning."""
    import yaml

    from ftkit.intake import render_engagement_yaml

    values = {"task.system_prompt": value}
    if one_line_ok(value):
        values.update({"client.name": value, "client.industry": value, "base_model.revision": value})
    text = render_engagement_yaml(values)
    config = cfg.parse_config(yaml.safe_load(text))
    assert config.task.system_prompt == value
    if one_line_ok(value):
        assert config.client.name == config.client.industry == config.base_model.revision == value
    assert config.task.type == "structured_output" and config.data.min_examples == 100  # neighbours intact


@pytest.mark.parametrize("payload,sentence", [
    ("[click](javascript:alert(1))", "label {} is odd"), ("![x](http://evil/x.png)", "label {} is odd"),
    ("<img src=x onerror=alert(1)>", "label {} is odd"), ("<http://evil.example>", "label {} is odd"),
    ("see http://evil.example/x", "label {} is odd"), ("[a]\n\n[a]: http://evil.example", "label {}"),
    ("x` [a](javascript:alert(1)) `y", "label `{}` is odd"),  # breaks out of ftkit's own code span
])
def test_client_text_in_markdown_output_cannot_become_a_link_or_html(payload, sentence):
    """Phase notebooks show findings and the client name as Markdown, which nbconvert renders into report.html:
    through markdown_text a payload renders as text, never as a link, image or tag (unescaped, it would)."""
    from nbconvert.filters.markdown import markdown2html

    from ftkit.safe_values import markdown_text

    live = lambda html: "<a " in html or "<img" in html  # noqa: E731
    assert live(markdown2html("⚠️ **WARNING** `data.x`: " + sentence.format(payload)))
    rendered = markdown2html("⚠️ **WARNING** `data.x`: " + sentence.format(markdown_text(payload)))
    assert not live(rendered) and "<code>data.x</code>" in rendered
