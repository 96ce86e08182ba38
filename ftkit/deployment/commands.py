"""``ftkit serve CLIENT``, ``ftkit monitor CLIENT [--log FILE]`` and ``ftkit data from-uat``: plain functions the
CLI calls.

The access rule of ``ftkit serve``: it always requires issued tokens (``--issue-token NAME``), so every logged
request names a tester. ``--no-auth`` is allowed only on a loopback address and says so loudly; binding any
other address without tokens is refused (``ChatServer`` refuses it too).

Both return an exit code (0 fine; 1 a problem found, e.g. a drift alert) and raise ``FtkitError`` for what the
user must fix; the CLI turns those into a message.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ftkit.deployment.server import LOOPBACK  # noqa: E402,F401  (re-exported; server imports no heavy module)


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


def serve_identity(engagement, trained) -> dict:
    """What the UAT page shows: the training run, the export (deployment plan run) and the base model."""
    from ftkit.config import load_config

    config = load_config(engagement.config_path)
    export = engagement.latest_run_id("deployment_plan") if trained.kind == "full" else ""
    return {"client": config.client.name or engagement.slug, "training_run": engagement.latest_run_id("training") or "",
            "export": f"{export} (merged)" if export else "none: base model + adapter",
            "base_model": config.base_model.id, "weights": engagement.relative(trained.weights_dir)
            if str(trained.weights_dir).startswith(str(engagement.path)) else str(trained.weights_dir)}


def token_command(client: str, root: str | Path, issue: str = "", revoke: str = "", list_tokens: bool = False,
                  host: str = "127.0.0.1", port: int = 8000) -> int:
    """``--issue-token NAME`` (prints the token once, with the tester's page link), ``--revoke-token NAME``,
    ``--list-tokens``."""
    from ftkit.deployment.uat_tokens import TokenStore
    from ftkit.display import show_table
    from ftkit.engagement import Engagement

    store = TokenStore.of(Engagement.at(client, root))
    if issue:
        token = store.issue(issue)
        print(f"Token for tester '{issue}' (shown once; only its hash is kept in {store.path}):\n  {token}\n"
              f"Give the tester this link (the part after # never reaches the server's logs):\n"
              f"  http://{'THIS-MACHINE' if host in ('0.0.0.0', '::') else host}:{port or 8000}/#token={token}\n"
              f"API clients send it as 'Authorization: Bearer <token>' (the openai client's api_key).")
    if revoke:
        store.revoke(revoke)
        print(f"Revoked the token of tester '{revoke}'; a running server refuses it from the next request.")
    if list_tokens:
        rows = store.table()
        show_table(rows) if rows else print(f"No tokens issued yet ({store.path}).")
    return 0


def serve_command(client: str, root: str | Path = "engagements", port: int = 8000, host: str = "127.0.0.1",
                  no_auth: bool = False, max_queue: int = 8) -> int:
    """Serve the fine-tuned model and the UAT page until interrupted (Ctrl-C); requests go to deployment.uat_log,
    feedback to uat/feedback.jsonl."""
    from ftkit.deployment.server import ChatServer
    from ftkit.deployment.uat_log import FEEDBACK_FILE
    from ftkit.deployment.uat_tokens import TokenStore
    from ftkit.engagement import Engagement
    from ftkit.errors import UsageError

    engagement = Engagement.at(client, root)
    store = None if no_auth else TokenStore.of(engagement)
    if no_auth and host not in LOOPBACK:
        raise UsageError(f"--no-auth is allowed only on 127.0.0.1 (this machine), not on {host}: issue tokens "
                         f"with `ftkit serve {client} --issue-token NAME` instead.")
    if store is not None and not store.active():
        raise UsageError(f"No active access tokens for '{client}': issue one per tester first with `ftkit serve "
                         f"{client} --issue-token NAME` (or, on 127.0.0.1 only, pass --no-auth).")
    chat_model, trained, config = load_chat_model(engagement)
    log_path = engagement.path / config.deployment.uat_log if config.deployment.uat_log else None
    server = ChatServer(chat_model, host, port, log_path, access_log=lambda line: print(line, file=sys.stderr, flush=True),
                        tokens=store, feedback_path=engagement.path / FEEDBACK_FILE, max_pending=max_queue,
                        identity=serve_identity(engagement, trained), system_prompt=config.task.system_prompt)
    url = server.base_url
    body = shlex.quote(json.dumps({"model": chat_model.name, "messages": [{"role": "user", "content": "Hello"}]}))
    if no_auth:
        print("WARNING: --no-auth: NO ACCESS CONTROL. Every request is logged as 'anonymous'; anyone with an account "
              "on this machine can use the model. Use issued tokens for real UAT.", file=sys.stderr, flush=True)
    auth = "" if no_auth else " -H 'Authorization: Bearer <token>'"
    print(f"Serving {trained.label} as '{chat_model.name}' at {url} (Ctrl-C to stop)\n"
          f"  UAT page: {server.page_url} (testers open the link printed by --issue-token)\n"
          f"  requests are logged to {log_path or '(nowhere: deployment.uat_log is empty)'}; feedback to "
          f"{engagement.path / FEEDBACK_FILE}\n"
          f"  try: curl -s {url}/chat/completions{auth} -H 'Content-Type: application/json' -d {body}\n"
          f"  as a backend: baseline.openai.base_url: {url} and baseline.openai.model: {chat_model.name}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def monitor_command(client: str, root: str | Path = "engagements", log: str | Path = "") -> int:
    """Print the UAT feedback summary (when testers have rated answers) and, with ``log``, the drift report of a
    production log; 1 when any drift alert fires (so cron/CI can act on it)."""
    from ftkit.deployment.uat_summary import engagement_summary
    from ftkit.engagement import Engagement
    from ftkit.errors import UsageError

    engagement = Engagement.at(client, root)
    summary = engagement_summary(engagement)
    if not log and summary is None:
        raise UsageError("ftkit monitor needs --log FILE (a JSONL log of production requests and answers), or UAT "
                         "feedback from `ftkit serve` in this engagement to summarise.")
    if summary is not None:
        print_feedback_summary(engagement, summary)
    return drift_command(engagement, log) if log else 0


def print_feedback_summary(engagement, summary) -> None:
    from ftkit.display import show_table
    from ftkit.fsutil import atomic_write_json

    print(f"UAT feedback: {summary.headline()}")
    for title, rows in (("Per tester", summary.per_tester), ("Per slice", summary.per_slice),
                        ("Worst-rated inputs", summary.worst)):
        if rows:
            print(f"{title}:")
            show_table(rows)
    for note in summary.notes:
        print(f"note: {note}")
    import datetime as _dt

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    saved = atomic_write_json(engagement.path / "monitoring" / f"uat-feedback-{stamp}.json", summary.to_dict())
    print(f"Feedback summary saved: {saved}")


def drift_command(engagement, log: str | Path) -> int:
    from ftkit.deployment.monitoring import monitor_log, write_report
    from ftkit.display import show_table

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


def from_uat_command(client: str, root: str | Path, out: str, since: str = "", force: bool = False,
                     pii: str = "drop") -> int:
    """``ftkit data from-uat``: write the approved and corrected UAT answers as training examples."""
    from ftkit.deployment.uat_data import from_uat
    from ftkit.engagement import Engagement

    engagement = Engagement.at(client, root)
    result = from_uat(engagement, out, since=since, force=force, pii=pii)
    counts = result.counts()
    print(f"Wrote {counts['written']} UAT examples to {out}: {counts['corrected']} corrected, {counts['approved']} "
          f"approved as answered (each carries \"source\": \"uat\" and its provenance).")
    skipped = {k: v for k, v in counts.items() if k not in ("written", "corrected", "approved", "pii_dropped_by_kind")
               and v}
    if skipped:
        print("Left out: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()) +
              (f" (PII kinds: {counts['pii_dropped_by_kind']})" if counts["pii_dropped"] else ""))
    print(f"Next iteration: add it to data.files in {engagement.config_path} and re-run from the data audit "
          f"(ftkit run {engagement.slug} --phase data_audit ...).")
    return 0
