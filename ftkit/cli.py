"""The `ftkit` command. It parses arguments and calls plain functions; nothing here computes results.

Exit codes: 0 success; 1 the work failed or found blocking problems (with a clear message); 2 usage error.
Every command works headless; nothing asks questions on stdin.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftkit import __version__
from ftkit.errors import FtkitError

COMMANDS = {}


def command(name: str):
    def register(func):
        COMMANDS[name] = func
        return func
    return register


CLIENT_HELP = "engagement name: the folder under --root"


def _phase_help(text: str) -> str:
    from ftkit.phases import PHASES

    return f"{text}; one of: {', '.join(PHASES)} (or its number)"


def _root_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="engagements", help="folder holding engagements (default: ./engagements)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftkit", description="Guided LLM fine-tuning engagements: suitability, "
                                     "data audit, baseline, training, evaluation, deployment plan.")
    parser.add_argument("--version", action="version", version=f"ftkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("new", help="create an engagement from the template and take in the client's data")
    p.add_argument("client", help="client name: becomes the folder name (letters, digits, - _ .)")
    p.add_argument("--data", action="append", required=True, metavar="FILE", help="client data file (repeatable)")
    p.add_argument("--task", metavar="TYPE", help="task type: classification | structured_output | free_text | chat")
    p.add_argument("--base-model", help="hub id, local folder, .gguf file or short name")
    _root_arg(p)

    p = sub.add_parser("run", help="run phases (all, in order, by default) with papermill")
    p.add_argument("client", help=CLIENT_HELP)
    p.add_argument("--phase", action="append", metavar="NAME", help=_phase_help("phase to run (repeatable); default: all"))
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="notebook parameter")
    p.add_argument("--cell-timeout", type=int, default=None, metavar="SECONDS", help="per-cell time limit")
    _root_arg(p)

    for name, text in (("status", "show the phase table: last run, status, headline result"),
                       ("verify", "re-hash every recorded file; exit 1 naming what changed"),
                       ("report", "rebuild the consolidated engagement report")):
        p = sub.add_parser(name, help=text)
        p.add_argument("client", help=CLIENT_HELP)
        if name == "verify":
            _verify_args(p)
        if name == "report":
            p.add_argument("--pdf", action="store_true",
                           help="also write report/engagement.pdf (needs a chromium or chrome binary)")
        _root_arg(p)

    p = sub.add_parser("demo", help="a whole engagement on shipped sample data")
    p.add_argument("--client", default="demo", help="engagement name (default: demo)")
    p.add_argument("--base-model", default=None, help="override the demo's base model (e.g. tiny-random)")
    p.add_argument("--phase", action="append", metavar="NAME", help=_phase_help("only these phases (repeatable)"))
    p.add_argument("--iterations", type=int, default=1, choices=(1, 2),
                   help="2: then apply the demo client's (simulated) review sheet and run a second iteration "
                        "(data audit, training, evaluation) to show the iteration ledger")
    _root_arg(p)

    p = sub.add_parser("lab", help="JupyterLab on a working copy of the notebooks, parameters filled in")
    p.add_argument("client", help=CLIENT_HELP)
    p.add_argument("--no-launch", action="store_true", help="prepare the working copy and print its path only")
    _root_arg(p)

    p = sub.add_parser("serve", help="OpenAI-compatible UAT endpoint for the fine-tuned model (127.0.0.1)")
    p.add_argument("client", help=CLIENT_HELP)
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    _serve_args(p)
    _root_arg(p)

    p = sub.add_parser("monitor", help="UAT feedback summary, and drift of a production log against the training "
                       "data (exit 1 on a drift alert)")
    p.add_argument("client", help=CLIENT_HELP)
    p.add_argument("--log", default="", metavar="FILE", help="JSONL log: one {messages|input, output} per line "
                   "(drift); without it only the UAT feedback summary is shown")
    _root_arg(p)

    p = sub.add_parser("reproduce", help="re-perform a recorded run and compare: inputs, environment, outputs")
    p.add_argument("client", help=CLIENT_HELP)
    p.add_argument("run_id", metavar="RUN_ID", help="the run to re-perform (a folder name under phases/*/runs/)")
    p.add_argument("--strict", action="store_true",
                   help="refuse when the environment differs in any way from the recorded one")
    _root_arg(p)

    p = sub.add_parser("env", help="print the pinned requirements of a recorded run (pip install --no-deps -r)")
    p.add_argument("--from-run", required=True, metavar="RUN_DIR",
                   help="a run folder (phases/NN_phase/runs/RUN_ID) with environment.txt or manifest.json")
    p.add_argument("-o", "--output", metavar="FILE", default="", help="write to FILE instead of printing")

    p = sub.add_parser("augment", help="teacher-drafted candidates for thin labels: filtered, a review sheet; "
                       "--review reads it back into a new data file (source: synthetic)")
    p.add_argument("client", help=CLIENT_HELP)
    p.add_argument("--review", default="", metavar="FILLED_CSV",
                   help="a filled review sheet: accepted and edited candidates go to data/synthetic-*.jsonl")
    p.add_argument("--run", default="", metavar="RUN_ID", help="with --review: the augmentation run the sheet "
                   "belongs to (default: found from the sheet's item ids)")
    p.add_argument("--restart", action="store_true",
                   help="start a new candidates log instead of continuing an unfinished one with the same plan")
    _root_arg(p)

    data = sub.add_parser("data", help="data tools outside an engagement")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    p = data_sub.add_parser("check", help="check a data file: formats, structure, duplicates, PII")
    p.add_argument("file", help="the data file to check (JSONL, JSON or CSV)")
    p.add_argument("--format", default="auto", choices=["auto", "chat", "alpaca", "sharegpt", "prompt_completion", "csv"],
                   help="record format (default: auto, detected from the file)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the findings as JSON")
    p.add_argument("--base-model", metavar="ID_OR_PATH", help="tokenizer for exact token, over-length and label-coverage "
                   "checks (hub id, folder, .gguf or short name, as base_model.id)")
    p.add_argument("--max-seq-length", type=_positive_int, metavar="N", help="over-length limit in tokens (default 1024)")
    p.add_argument("--sheet", default="", metavar="NAME", help="the sheet to read from an .xlsx workbook")
    _from_uat_args(data_sub)
    return parser


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--issue-token", metavar="NAME", default="",
                   help="issue an access token for tester NAME, print it once (with the page link) and exit")
    p.add_argument("--revoke-token", metavar="NAME", default="", help="revoke tester NAME's token and exit")
    p.add_argument("--list-tokens", action="store_true", help="list testers' tokens (names, times; no secrets)")
    p.add_argument("--no-auth", action="store_true",
                   help="serve without tokens (127.0.0.1 only; every request is logged as 'anonymous')")
    p.add_argument("--max-queue", type=int, default=8, metavar="N",
                   help="generations running or waiting at once; more get 429 with Retry-After (default: 8)")


def _from_uat_args(data_sub) -> None:
    p = data_sub.add_parser("from-uat", help="approved and corrected UAT answers as chat-format training examples")
    p.add_argument("client", help=CLIENT_HELP)
    p.add_argument("--out", required=True, metavar="FILE", help="JSONL file to write (refused if it exists)")
    p.add_argument("--since", default="", metavar="DATE", help="only feedback from this date/time on (ISO 8601)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--pii", default="drop", choices=["drop", "redact"],
                   help="examples with PII: drop them (default) or redact the values")
    _root_arg(p)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 16:
        raise argparse.ArgumentTypeError(f"expected a whole number of tokens >= 16, got {text!r}")
    return value


@command("new")
def _new(args) -> int:
    from ftkit.intake import create_engagement

    engagement = create_engagement(args.client, args.data, args.root, task=args.task, base_model=args.base_model)
    print(f"Created {engagement.path}\n  edit {engagement.config_path} (objective, task, suitability answers),\n"
          f"  then: ftkit run {args.client} --root {args.root}")
    return 0


@command("run")
def _run(args) -> int:
    from ftkit.engagement import Engagement
    from ftkit.parameters import parse_assignments
    from ftkit.runner import run_phases

    engagement = Engagement.at(args.client, args.root)
    outcomes = run_phases(engagement, args.phase, parse_assignments(args.param), cell_timeout_s=args.cell_timeout,
                          on_event=lambda m: print(m, flush=True))
    return _finish_runs(engagement, outcomes)


def _finish_runs(engagement, outcomes) -> int:
    from ftkit.reports import build_engagement_report

    report = build_engagement_report(engagement)
    failed = [o for o in outcomes if not o.succeeded]
    for outcome in failed:
        kept = (f"\n  the partial notebook is kept as evidence: {outcome.notebook_path}"
                if outcome.notebook_path and outcome.notebook_path.is_file() else "")
        print(f"ftkit: phase '{outcome.phase}' {outcome.status}: {outcome.error}{kept}", file=sys.stderr)
    print(f"Engagement report: {report}")
    return 1 if failed else 0


@command("status")
def _status(args) -> int:
    from ftkit.engagement import Engagement
    from ftkit.status import phase_table, format_table

    print(format_table(phase_table(Engagement.at(args.client, args.root))))
    return 0


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--anchor", action="store_true",
                   help="after verifying, print the audit chain's head (sha256, entry count) in one line for the "
                        "client to keep outside the engagement")
    p.add_argument("--expect-head", metavar="SHA", default="",
                   help="fail unless the audit chain still passes through this head (from an earlier --anchor)")
    p.add_argument("--signature", metavar="HEX", default="",
                   help="with --expect-head: also check the anchor's Ed25519 signature against the engagement's "
                        "recorded public key")
    p.add_argument("--sign-key-env", metavar="VAR", default="",
                   help="with --anchor: sign the line with the Ed25519 private key held in this environment "
                        "variable (its public key is recorded in the engagement)")


@command("verify")
def _verify(args) -> int:
    from ftkit.engagement import Engagement
    from ftkit.verify import verify_engagement

    if args.signature and not args.expect_head:
        from ftkit.errors import UsageError
        raise UsageError("--signature checks a signed anchor: give its head with --expect-head SHA too.")
    if args.sign_key_env and not args.anchor:
        from ftkit.errors import UsageError
        raise UsageError("--sign-key-env signs the anchor line: add --anchor.")
    engagement = Engagement.at(args.client, args.root)
    problems, checked = verify_engagement(engagement)
    if args.expect_head:
        from ftkit.anchor import PUBLIC_KEY_FILE, check_expected_head

        problems += check_expected_head(engagement.slug, engagement.audit_path, args.expect_head, args.signature,
                                        engagement.path / PUBLIC_KEY_FILE)
    if problems:
        print(f"ftkit verify: {len(problems)} problem(s) in engagement '{args.client}':", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    extends = " and extends the expected head" if args.expect_head else ""
    print(f"ftkit verify: OK: {checked} recorded files match their hashes and the audit chain is intact{extends}.")
    if args.anchor:
        from ftkit.anchor import PUBLIC_KEY_FILE, current_anchor, sign

        anchor = current_anchor(engagement.slug, engagement.audit_path)
        line = anchor.message()
        if args.sign_key_env:
            line += f" ed25519={sign(anchor, args.sign_key_env, engagement.path / PUBLIC_KEY_FILE)}"
        print(line)
    return 0


@command("report")
def _report(args) -> int:
    from ftkit.engagement import Engagement
    from ftkit.reports import build_engagement_report

    engagement = Engagement.at(args.client, args.root)
    print(build_engagement_report(engagement, pdf=args.pdf))
    if args.pdf:
        print(engagement.report_dir / "engagement.pdf")
    return 0


@command("demo")
def _demo(args) -> int:
    from ftkit.demo import run_demo

    engagement, outcomes = run_demo(args.root, client=args.client, base_model=args.base_model, phases=args.phase,
                                    iterations=args.iterations)
    code = _finish_runs(engagement, outcomes)
    if code == 0:
        print(f"Demo complete. Open {engagement.report_dir / 'index.html'}; check the evidence with "
              f"`ftkit verify {engagement.slug} --root {args.root}`.")
    return code


@command("lab")
def _lab(args) -> int:
    from ftkit.engagement import Engagement
    from ftkit.lab import launch_lab, prepare_lab

    folder = prepare_lab(Engagement.at(args.client, args.root))
    print(f"Working copy: {folder}")
    if args.no_launch:
        return 0
    return launch_lab(folder)


@command("serve")
def _serve(args) -> int:
    from ftkit.deployment.commands import serve_command, token_command

    if args.issue_token or args.revoke_token or args.list_tokens:
        return token_command(args.client, args.root, issue=args.issue_token, revoke=args.revoke_token,
                             list_tokens=args.list_tokens, host=args.host, port=args.port)
    return serve_command(args.client, args.root, port=args.port, host=args.host, no_auth=args.no_auth,
                         max_queue=args.max_queue)


@command("monitor")
def _monitor(args) -> int:
    from ftkit.deployment.commands import monitor_command

    return monitor_command(args.client, args.root, log=args.log)


@command("reproduce")
def _reproduce(args) -> int:
    from ftkit.engagement import Engagement
    from ftkit.reperformance import reproduce

    from ftkit.reports import build_engagement_report

    engagement = Engagement.at(args.client, args.root)
    report = reproduce(engagement, args.run_id, strict=args.strict, on_event=lambda m: print(m, flush=True))
    print(f"Engagement report (lists the re-performance beside the run): {build_engagement_report(engagement)}")
    counts: dict[str, int] = {}
    for row in report.get("outputs", []):
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    print(f"outputs: {', '.join(f'{n} {v}' for v, n in sorted(counts.items())) or 'none compared'}")
    for row in report.get("outputs", []) + report.get("headline", []) + report.get("findings", []):
        if row["verdict"] in ("different", "missing", "within_tolerance"):
            name = row.get("file") or row.get("key") or f"finding {row.get('code')}"
            print(f"  {row['verdict']}: {name} {row.get('reason', '')}".rstrip())
    curve = report.get("loss_curve")
    if curve:
        print(f"training loss curve: {curve['verdict']} ({curve['points']} points, largest relative difference "
              f"{curve.get('max_relative_difference', 'n/a')}, tolerance {curve.get('tolerance')})")
    print(f"ftkit reproduce: {report['verdict']} -> {report['run_dir']}")
    return 0 if report["verdict"] != "not_reproduced" else 1


@command("env")
def _env(args) -> int:
    from ftkit.reperformance_env import requirements_of_run

    text = requirements_of_run(Path(args.from_run))
    if args.output:
        from ftkit.fsutil import atomic_write_text
        atomic_write_text(args.output, text)
        print(f"Wrote {args.output}: pip install --no-deps -r {args.output}")
    else:
        print(text, end="")
    return 0


@command("augment")
def _augment(args) -> int:
    from ftkit.augmentation.command import augment_command

    return augment_command(args.client, args.root, review=args.review, restart=args.restart, run_id=args.run)


@command("data")
def _data(args) -> int:
    if args.data_command == "from-uat":
        from ftkit.deployment.commands import from_uat_command

        return from_uat_command(args.client, args.root, args.out, since=args.since, force=args.force, pii=args.pii)
    if args.data_command != "check":
        print("usage: ftkit data check FILE [--format FORMAT] [--json OUT]\n"
              "       ftkit data from-uat CLIENT --out FILE [--since DATE]\n"
              "ftkit data: give a subcommand (check, from-uat); see `ftkit data --help`.", file=sys.stderr)
        return 2
    from ftkit.data.check_command import run_data_check

    return run_data_check(args.file, fmt=args.format, json_out=args.json_out, base_model=args.base_model,
                          max_seq_length=args.max_seq_length, sheet=args.sheet)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except FtkitError as err:
        print(f"ftkit: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # a full disk or read-only folder that no layer below turned into an FtkitError
        where = f" {err.filename}" if err.filename else ""
        print(f"ftkit: cannot write or read{where}: {err.strerror or err}. Free disk space or fix the folder's "
              f"permissions, then run the command again.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ftkit: interrupted; runs in progress are kept and marked, `latest` is unchanged.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
