"""``ftkit augment``: teacher-drafted candidate examples where the client has too few, filtered, reviewed by
people and written with their provenance (``source: synthetic``) to a new data file of the engagement.

Modules: ``targets`` (which labels/slices are thin), ``teacher`` (OpenAI-compatible HTTP or the local base
model), ``prompts`` (the request and the parsing of the answer), ``candidates`` (the resumable candidates log),
``filters`` (checks before any person sees a candidate), ``review`` (HTML + CSV sheet, read back), ``accept``
(step 2: the synthetic data file and engagement.yaml), ``sources`` (synthetic examples per trained iteration),
``layout`` (shared names), ``command`` (step 1 and the CLI entry point).
"""
