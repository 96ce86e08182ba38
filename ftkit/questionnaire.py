"""The suitability questionnaire as ipywidgets, for `ftkit lab` (interactive=True).

Widgets only *edit and save* answers in engagement.yaml (comments kept, written atomically); they never
compute results. Headless runs read the saved file, so a result always comes from a recorded run.
"""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from ftkit.config import SuitabilitySettings, load_yaml, parse_config
from ftkit.errors import ConfigError
from ftkit.fsutil import atomic_write_text


def save_answers(config_path: Path, answers: dict) -> None:
    """Write ``answers`` into the ``suitability`` section, keeping every comment; validate first."""
    from ftkit.yamlio import round_trip, safe_load

    yaml = round_trip()
    doc = yaml.load(Path(config_path).read_text(encoding="utf-8"))
    section = doc.setdefault("suitability", {})
    for key, value in answers.items():
        section[key] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    parse_config(safe_load(out.getvalue()), source=str(config_path))  # refuse invalid answers
    atomic_write_text(config_path, out.getvalue())


def questionnaire(config_path: Path):
    """A widget box with one question per suitability setting and a Save button.

    Each question is its full help text on its own line (an HTML label that wraps) above an unlabelled control:
    ipywidgets cuts a ``description`` to a fixed width ("prompt_e…", "quality_ex…"), so none is used for text.
    """
    import html

    import ipywidgets as w

    current = (load_yaml(config_path) or {}).get("suitability", {}) or {}
    controls, rows = {}, []
    full = w.Layout(width="100%")
    for fld in dataclasses.fields(SuitabilitySettings):
        value = current.get(fld.name, fld.default)
        if fld.type in ("bool", bool):
            control = w.Checkbox(value=bool(value), indent=False, layout=w.Layout(width="auto"))
        elif fld.type in ("int", int):
            control = w.IntText(value=int(value or 0), layout=w.Layout(width="12em"))
        elif fld.type in ("float", float):
            control = w.FloatText(value=float(value or 0), layout=w.Layout(width="12em"))
        else:
            control = w.Textarea(value=str(value or ""), layout=full)
        controls[fld.name] = control
        label = w.HTML(f"<b>{html.escape(fld.metadata['help'])}</b> <code>{fld.name}</code>", layout=full)
        rows.append(w.VBox([label, control], layout=w.Layout(width="100%", margin="0 0 .6em 0")))
    status = w.HTML()
    save = w.Button(description="Save answers to engagement.yaml", button_style="primary",
                    layout=w.Layout(width="auto"))

    def on_save(_):
        try:
            save_answers(config_path, {name: c.value for name, c in controls.items()})
            status.value = "Saved. Re-run the phase with <code>ftkit run ... --phase suitability</code> for evidence."
        except ConfigError as err:
            status.value = f"<b>Not saved:</b> {html.escape(str(err))}"

    save.on_click(on_save)
    box = w.VBox([w.HTML("<h3>Suitability questionnaire</h3>"), *rows, save, status], layout=full)
    box.controls = controls  # for callers (and tests) that fill answers programmatically
    return box
