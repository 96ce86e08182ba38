"""The data audit: read client files in any supported format, check every record, find duplicates, PII and
leakage, profile, split, and estimate cost. Importing this package is cheap (no torch, transformers or
matplotlib); the tokenizer-based checks import transformers only when a tokenizer is passed in.

Entry points: :func:`ftkit.data.audit_files.audit_files` (library), :func:`ftkit.data.check_command.run_data_check`
(``ftkit data check``), :mod:`ftkit.data.phase` (the phase notebook's sections).
"""
