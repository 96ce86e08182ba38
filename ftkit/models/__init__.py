"""Base models: resolve ``base_model.id``, load safely, describe for the manifest; the tiny test model.

Nothing here imports torch or transformers at module level; they are imported inside the functions.
"""
from ftkit.models.loading import LoadedModel, load_model, load_model_and_tokenizer, load_tokenizer, pick_device
from ftkit.models.resolve import SHORT_NAMES, ModelSource, base_model_source, resolve_model
from ftkit.models.tiny import build_tiny_model, ensure_tiny_model, is_tiny_random

__all__ = ["LoadedModel", "ModelSource", "SHORT_NAMES", "base_model_source", "build_tiny_model", "ensure_tiny_model", "is_tiny_random",
           "load_model", "load_model_and_tokenizer", "load_tokenizer", "pick_device", "resolve_model"]
