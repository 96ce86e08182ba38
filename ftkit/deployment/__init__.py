"""Deployment plan: export, UAT endpoint, serving configs, sizing, cost, monitoring, model card.

One job per module (none imports torch, transformers or matplotlib at module level):

- ``artefacts``: find what training produced (adapter or full model) and the checked export; load them;
- ``export``: merge the adapter, save safetensors + tokenizer + template, and the export-equivalence check;
- ``server``: the OpenAI-compatible UAT endpoint (``/v1/chat/completions``, ``/v1/models``) and its smoke test;
- ``serving_configs``: vLLM (merged, or base + LoRA), Ollama, TGI and Python configs from ``templates/serving/``;
- ``sizing``: serving memory (weights by precision + KV cache), GPU choice, roofline throughput;
- ``cost``: the dated price table, self-hosted vs managed monthly cost, break-even and its chart;
- ``drift``: PSI, Kolmogorov-Smirnov and chi-square, and the alert rule;
- ``monitoring``: reference statistics of the training data, production logs, ``monitor_log``;
- ``monitoring_plan``: what to log, alerts, retraining, version pins, rollback, end-of-life risks;
- ``model_card``: the Hugging Face model card (model-index from the evaluation) and the handover document;
- ``uat_tokens``, ``uat_streaming``, ``uat_log``, ``uat_page``: the UAT server's per-tester tokens, OpenAI
  streaming, append-only request/feedback logs and the page at ``/``;
- ``uat_summary``, ``uat_data``: the feedback summary (``ftkit monitor``) and ``ftkit data from-uat``;
- ``commands``: ``serve_command`` and ``monitor_command`` behind ``ftkit serve`` / ``ftkit monitor``.
"""
