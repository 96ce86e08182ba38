"""``ftkit serve CLIENT`` and ``ftkit monitor CLIENT --log FILE``: plain functions the CLI calls.

Both return an exit code (0 fine; 1 a problem found, e.g. a drift alert) and raise ``FtkitError`` for what the
user must fix; the CLI turns those into a message.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def served_model_name(slug: str) -> str:
    """The model name clients send: '<client>-ft'.

    >>> served_model_name("acme-bank")
    'acme-bank-ft'
    """
    return f"{slug}-ft"


def load_chat_model(engagement, device: str | None = None):
    """The engagement's fine-tuned model as a LocalChatModel, plus the TrainedModel it came from."""
    from ftkit.config import load_config
    from ftkit.deployment.artefacts import load_trained, served_model
    from ftkit.deployment.server import LocalChatModel
    from ftkit.models import pick_device

    trained = served_model(engagement)
    config = load_config(engagement.config_path)
    model, tokenizer = load_trained(trained, device=device or pick_device(),
                                    trust_remote_code=config.base_model.trust_remote_code)
    context = config.deployment.context_length or config.training.max_seq_length or config.data.max_seq_length
    return LocalChatModel(model, tokenizer, served_model_name(engagement.slug), context), trained, config


def serve_command(client: str, root: str | Path = "engagements", port: int = 8000, host: str = "127.0.0.1") -> int:
    """Serve the fine-tuned model until interrupted (Ctrl-C); requests are logged to deployment.uat_log."""
    from ftkit.deployment.server import ChatServer
    from ftkit.engagement import Engagement

    engagement = Engagement.at(client, root)
    chat_model, trained, config = load_chat_model(engagement)
    log_path = engagement.path / config.deployment.uat_log if config.deployment.uat_log else None
    server = ChatServer(chat_model, host, port, log_path, access_log=lambda line: print(line, file=sys.stderr, flush=True))
    url = server.base_url
    body = shlex.quote(json.dumps({"model": chat_model.name, "messages": [{"role": "user", "content": "Hello"}]}))
    if host not in LOOPBACK:
        print(f"WARNING: listening on {host}: anyone who can reach this machine can use the model (no "
              f"authentication). Use 127.0.0.1 unless the network is trusted.", file=sys.stderr)
    print(f"Serving {trained.label} as '{chat_model.name}' at {url} (Ctrl-C to stop)\n"
          f"  requests are logged to {log_path or '(nowhere: deployment.uat_log is empty)'}\n"
          f"  try: curl -s {url}/chat/completions -H 'Content-Type: application/json' -d {body}\n"
          f"  as a backend: baseline.openai.base_url: {url} and baseline.openai.model: {chat_model.name}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def monitor_command(client: str, root: str | Path = "engagements", log: str | Path = "") -> int:
    """Print the drift report of a production log; 1 when any alert fires (so cron/CI can act on it)."""
    from ftkit.deployment.monitoring import monitor_log, write_report
    from ftkit.display import show_table
    from ftkit.engagement import Engagement
    from ftkit.errors import UsageError

    if not log:
        raise UsageError("ftkit monitor needs --log FILE: a JSONL log of production requests and answers.")
    engagement = Engagement.at(client, root)
    report = monitor_log(engagement, log)
    saved = write_report(report, engagement.path / "monitoring")
    print(f"Drift of {report.n_rows} logged requests against the training data ({log}):")
    show_table(report.rows())
    for note in report.notes:
        print(f"note: {note}")
    if report.alerts:
        print(f"ALERT: {'; '.join(report.alerts)}. See the monitoring plan's alert actions.", file=sys.stderr)
    else:
        print(f"Status: {report.status}.")
    print(f"Report saved: {saved}")
    return 1 if report.alerts else 0
