"""The self-contained HTML review forms' shared parts: page skeleton, CSS, the name/Download/progress bar, and the
JavaScript that keeps answers in the browser and downloads them as a CSV ftkit reads back.

Used by the blind A/B sheet (``evaluation.ab_sheet``), the synthetic-candidate review (``augmentation.review``)
and the suspect-label review (``evaluation.suspects``). Each sheet's template ``{% extends "review_form.html" %}``
and fills the blocks ``title``, ``layout`` (CSS; default: one card per item), ``css``, ``intro``, ``items`` and
``script``; the context gives ``name_field`` (id of the name input, also its key in the saved state) and
``download_label``. Everything is inline (no external resources) and every value is escaped (jinja autoescape).

In ``script`` a sheet calls ``reviewForm(o)``: ``o.store`` (localStorage key), ``o.who`` (= name_field),
``o.total`` and ``o.word`` (progress "3 of 8 rated"), ``o.read(state)`` (adds the answers to the state),
``o.restore(saved)``, ``o.done(state)`` (answered count), ``o.show(state)`` (optional page update),
``o.header`` (the CSV's first line), ``o.rows(state)`` (one array of cell values per CSV row), ``o.file(state)``
(the download's name, ``fileSafe`` helps) and ``o.bom`` (start the CSV with a UTF-8 BOM). Every cell is
quoted and formula-leading text gets a ``'`` (``q``; ``safe_values.csv_uncell`` removes it on reading).
"""
from __future__ import annotations

BASE_NAME = "review_form.html"

# Blocks with a newline kept where the sheets' own markup used one; the JS escapes are doubled for Python.
_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}{% endblock %}</title>
<style>
{% block layout -%}
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.item{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1.2em 0}
.choice label{margin-right:1.5em}textarea{width:100%;height:2.5em}
{% endblock -%}
{% block css %}{% endblock -%}
#bar{position:sticky;top:0;background:#fff;padding:.6em 0;border-bottom:1px solid #ddd;z-index:1}
</style></head><body>
{% block intro %}{% endblock %}
<div id="bar">Your name: <input id="{{ name_field }}" size="20"> <button id="dl">{{ download_label }}</button>
<span id="progress"></span></div>
{% block items %}{% endblock %}
<script>
(function(){
  // Every cell quoted; text a spreadsheet would run as a formula gets a leading ' (ftkit's readers remove it).
  function q(s){s = (s === null || s === undefined) ? "" : String(s); if (/^[=+\\-@\\t\\r\\0]/.test(s)) s = "'" + s;
    return '"' + s.replace(/"/g, '""') + '"';}
  function fileSafe(s){ return s.replace(/[^A-Za-z0-9_-]+/g, "_"); }
  function reviewForm(o){
    var who = document.getElementById(o.who), saved = JSON.parse(localStorage.getItem(o.store) || "{}");
    function state(){ var s = {}; s[o.who] = who.value; o.read(s); return s; }
    function update(){
      var s = state();
      if (o.show) o.show(s);
      document.getElementById("progress").textContent = o.done(s) + " of " + o.total + " " + o.word;
      localStorage.setItem(o.store, JSON.stringify(s));
    }
    who.value = saved[o.who] || "";
    o.restore(saved);
    document.body.addEventListener("change", update); document.body.addEventListener("input", update);
    document.getElementById("dl").addEventListener("click", function(){
      var s = state(), lines = [o.header];
      o.rows(s).forEach(function(cells){ lines.push(cells.map(function(c){ return q(c); }).join(",")); });
      var a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([(o.bom ? "\\ufeff" : "") + lines.join("\\n") + "\\n"], {type: "text/csv"}));
      a.download = o.file(s); document.body.appendChild(a); a.click(); a.remove();
    });
    update();
  }
{% block script %}{% endblock %}
})();
</script></body></html>
"""

# The radio buttons of one card: ``{% from "review_form_macros.html" import choices %}`` then
# ``{{ choices(name, [(value, label), ...]) }}``.
_MACROS = """{% macro choices(name, options) %}<div class="choice">{% for v, label in options %}
<label><input type="radio" name="{{ name }}" value="{{ v }}"> {{ label }}</label>{% endfor %}</div>{% endmacro %}"""


def render(template: str, **context) -> str:
    """Render a sheet's template (which extends ``review_form.html``; ``review_form_macros.html`` holds the
    ``choices`` macro) with autoescape on."""
    from jinja2 import DictLoader, Environment

    env = Environment(autoescape=True, loader=DictLoader({BASE_NAME: _BASE, "review_form_macros.html": _MACROS}))
    return env.from_string(template).render(**context)
