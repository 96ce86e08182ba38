"""ftkit: a guided workbook for LLM fine-tuning engagements.

Importing ftkit is cheap: torch, transformers and peft are imported only by the modules that need them.
"""
__version__ = "0.1.0"
