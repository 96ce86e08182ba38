"""``quiet_progress()``: no transformers progress bars while models are built, converted or loaded.

A leaf module on purpose: ``tiny`` and ``gguf`` (which ``resolve`` calls) need it, and importing it from
``loading`` (which imports ``resolve``) closed an import circle inside ``ftkit.models``.
"""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def quiet_progress():
    """No 'Loading weights'/'Writing model shards' bars: in a headless notebook each becomes a dead widget."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
