"""``digits``: recognise images, read history, label and see stats from the command line.

argparse rather than click/typer: the CLI is four subcommands with plain options, the standard
library covers them (with exit code 2 for usage errors, as documented), and the package keeps
one dependency fewer. rich draws the tables and the progress bar.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table
from rich.text import Text

from .errors import DigitsError, ProblemError, UnreachableError
from .http_client import DEFAULT_URL, HttpClient
from .models import Recognition

OK, FAILED, USAGE, AUTH, SERVER, UNSUPPORTED = 0, 1, 2, 3, 4, 5
EXIT_CODES = f"""exit codes:
  {OK}  everything succeeded
  {FAILED}  the server refused the request, or some files failed (not an image, no digit, ...)
  {USAGE}  usage error (bad option, missing file)
  {AUTH}  authentication: no token, an invalid token, or one not allowed this (401/403)
  {SERVER}  the server failed (5xx) or could not be reached
  {UNSUPPORTED}  this gateway has no such endpoint (404 not-found / 405): it is older than the CLI

environment: DIGITS_URL (default {DEFAULT_URL}), DIGITS_TOKEN (a bearer token)"""

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
err = Console(stderr=True, highlight=False)


def _id_column() -> Column:
    """An id is copied from the table into `digits label`: never shortened or wrapped."""
    return Column("id", no_wrap=True, min_width=36)


def _parser() -> argparse.ArgumentParser:
    # Shared options are accepted before or after the subcommand; SUPPRESS keeps a subcommand's
    # parser from overwriting a value given before it (argparse's defaults would).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help=f"the gateway (env DIGITS_URL; default {DEFAULT_URL})"
    )
    common.add_argument("--token", default=argparse.SUPPRESS, help="a bearer token (env DIGITS_TOKEN)")
    common.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="seconds per call (default 30)"
    )
    out = common.add_mutually_exclusive_group()
    out.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        default=argparse.SUPPRESS,
        help="print JSON instead of a table",
    )
    out.add_argument(
        "--csv",
        dest="format",
        action="store_const",
        const="csv",
        default=argparse.SUPPRESS,
        help="print CSV instead of a table",
    )

    parser = argparse.ArgumentParser(
        prog="digits", parents=[common], description="Recognise handwritten digits with a digits service.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=summary, description=summary, epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip

    recognize = command("recognize", "Recognise the digits in image files (folders are searched for images).")
    recognize.add_argument("paths", nargs="+", metavar="FILE|DIR", type=Path)
    recognize.add_argument(
        "--grpc",
        metavar="ADDRESS",
        help="call the recognizer over gRPC (e.g. 127.0.0.1:50051): nothing is stored",
    )
    recognize.add_argument(
        "--concurrency", type=_positive, default=4, metavar="N", help="calls at once (default 4)"
    )
    recognize.add_argument("--user", help="record under this user (needs that user's or the admin's token)")
    recognize.add_argument(
        "--no-progress", action="store_true", help="no progress bar (none is drawn off a terminal)"
    )

    history = command("history", "List stored recognitions, newest first (needs a token).")
    history.add_argument("--user", help="whose history (default: the token's own; the admin's: the last day)")
    history.add_argument("--since", help="ISO 8601, inclusive (admin)")
    history.add_argument("--until", help="ISO 8601, exclusive (admin)")
    history.add_argument("--limit", type=_positive, help="items per page (1-100; default 20)")
    history.add_argument("--page-token", help="continue from a previous listing's next page token")
    history.add_argument("--all", action="store_true", help="follow every page")

    label = command("label", "Say which digit a recognition really shows (its owner's or the admin's token).")
    label.add_argument("id", help="the recognition's id")
    label.add_argument("digit", type=int, choices=range(10), metavar="DIGIT", help="the true digit, 0-9")

    command("stats", "The service's aggregates: requests, digits, confidence, errors, corrections.")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


@dataclass
class Outcome:
    """One file's result: a recognition or the reason it has none."""

    path: Path
    recognition: Recognition | None = None
    error: DigitsError | None = None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.url = getattr(args, "url", None) or os.environ.get("DIGITS_URL") or DEFAULT_URL
    args.token = getattr(args, "token", None) or os.environ.get("DIGITS_TOKEN") or None
    args.timeout = getattr(args, "timeout", None) or 30.0
    args.format = getattr(args, "format", None) or "table"
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "recognize": _recognize, "history": _history, "label": _label, "stats": _stats,
    }  # fmt: skip
    try:
        return handlers[args.command](args)
    except DigitsError as error:
        return _report(error)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


# -- recognize -------------------------------------------------------------------------------


def _images(paths: Iterable[Path]) -> list[Path]:
    """Named files as given; folders searched (recursively) for image files, in name order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise _Usage(f"no image files in {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
            found.extend(images)
        elif path.is_file():
            found.append(path)
        else:
            raise _Usage(f"no such file or folder: {path}")
    return found


class _Usage(DigitsError):
    pass


def _recognize(args: argparse.Namespace) -> int:
    files = _images(args.paths)
    if args.grpc:
        from .grpc_client import GrpcClient  # grpc loads only when asked for

        client: Any = GrpcClient(recognizer=args.grpc, timeout=args.timeout)
        call: Callable[[Path], Recognition] = lambda path: client.recognize(path.read_bytes())
    else:
        client = HttpClient(args.url, token=args.token, timeout=args.timeout)
        call = lambda path: client.recognize(path, user=args.user)
    stop = threading.Event()  # an auth or connection failure ends the run: the rest would fail alike

    def one(path: Path) -> Outcome:
        if stop.is_set():
            return Outcome(path, error=UnreachableError("not sent: an earlier call failed"))
        try:
            return Outcome(path, recognition=call(path))
        except ProblemError as error:
            if error.is_auth or error.is_unsupported:
                stop.set()
            return Outcome(path, error=error)
        except UnreachableError as error:
            stop.set()
            return Outcome(path, error=error)

    show_progress = len(files) > 1 and not args.no_progress and err.is_terminal
    progress = Progress(TextColumn("recognising"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, transient=True, disable=not show_progress)  # fmt: skip
    with client, progress, ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        task = progress.add_task("files", total=len(files))
        outcomes: list[Outcome] = []
        for outcome in pool.map(one, files):  # in the order given
            outcomes.append(outcome)
            progress.advance(task)

    _print_outcomes(outcomes, args.format)
    failed = [o.error for o in outcomes if o.error is not None]
    if failed:
        err.print(f"{len(outcomes) - len(failed)} recognised, {len(failed)} failed")
        first = next((e for e in failed if not str(e).startswith("not sent")), failed[0])
        if args.format == "table" and len(failed) == len(outcomes):
            _report(first)  # nothing worked: say why once, in full
    return max((_exit_code(e) for e in failed), default=OK)


def _print_outcomes(outcomes: list[Outcome], fmt: str) -> None:
    if fmt == "json":
        rows = [
            {"file": str(o.path), "recognition": dict(o.recognition.raw)} if o.recognition
            else {"file": str(o.path), "problem": _problem_json(o.error)}
            for o in outcomes
        ]  # fmt: skip
        print(json.dumps(rows, indent=2, default=str))
        return
    header = ["file", "answer", "digit", "number", "confidence", "model_version", "id", "problem", "detail"]
    rows_out = []
    for o in outcomes:
        r = o.recognition
        if r is not None:
            rows_out.append([str(o.path), r.text, str(r.digit), r.number or "", f"{r.confidence:.4f}",
                             r.model_version, r.id or "", "", ""])  # fmt: skip
        else:
            problem = _problem_json(o.error)
            rows_out.append([str(o.path), "", "", "", "", "", "", problem["slug"], problem["detail"]])
    if fmt == "csv":
        _csv(header, rows_out)
        return
    with_ids = any(row[6] for row in rows_out)  # over gRPC nothing is stored: no ids
    table = Table("file", "answer", "confidence", *([_id_column()] if with_ids else []), "problem")
    for row in rows_out:
        # Text, not markup: a file name or a detail may hold [brackets].
        why = Text.assemble((row[7] or "error", "red"), f": {row[8]}") if row[7] or row[8] else Text()
        cells = [row[0], row[1], row[4], *([row[6]] if with_ids else [])]
        table.add_row(*map(Text, cells), why)
    Console().print(table)


# -- history, label, stats -------------------------------------------------------------------


def _history(args: argparse.Namespace) -> int:
    query = {"user": args.user, "since": args.since, "until": args.until, "limit": args.limit}
    with HttpClient(args.url, token=args.token, timeout=args.timeout) as client:
        if args.all:
            pages = list(client.pages(page_token=args.page_token, **query))
        else:
            pages = [client.history(page_token=args.page_token, **query)]
    items = [item for page in pages for item in page.items]
    next_token = pages[-1].next_page_token
    if args.format == "json":
        print(json.dumps({"items": [dict(i.raw) for i in items], "next_page_token": next_token}, indent=2))
        return OK
    header = ["id", "received_at", "user", "filename", "answer", "confidence", "model_version"]
    rows = [
        [i.id or "", _when(i), i.user, i.filename, i.text, f"{i.confidence:.4f}", i.model_version]
        for i in items
    ]
    if args.format == "csv":
        _csv(header, rows)
    else:
        table = Table(_id_column(), "received_at", *header[2:6])
        for row in rows:
            table.add_row(*map(Text, row[:6]))
        Console().print(table)
        if not items:
            err.print("no recognitions")
    if next_token:
        err.print(f"more: digits history --page-token {next_token}   (or --all)")
    return OK


def _when(item: Recognition) -> str:
    return item.received_at.isoformat(timespec="milliseconds") if item.received_at else ""


def _label(args: argparse.Namespace) -> int:
    with HttpClient(args.url, token=args.token, timeout=args.timeout) as client:
        answer = client.label(args.id, args.digit)
    _print_mapping(answer or {"id": args.id, "label": args.digit}, args.format)
    return OK


def _stats(args: argparse.Namespace) -> int:
    with HttpClient(args.url, token=args.token, timeout=args.timeout) as client:
        _print_mapping(client.stats(), args.format)
    return OK


def _print_mapping(data: Mapping[str, Any], fmt: str) -> None:
    """A JSON object as key/value rows; nested values as compact JSON."""
    if fmt == "json":
        print(json.dumps(data, indent=2))
        return
    rows = [[key, value if isinstance(value, str) else json.dumps(value)] for key, value in data.items()]
    if fmt == "csv":
        _csv(["field", "value"], rows)
        return
    table = Table("field", "value")
    for row in rows:
        table.add_row(*map(Text, row))
    Console().print(table)


# -- output and errors -----------------------------------------------------------------------


def _csv(header: list[str], rows: list[list[str]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def _problem_json(error: DigitsError | None) -> dict[str, Any]:
    if isinstance(error, ProblemError):
        return {"slug": error.slug, "title": error.title, "detail": error.detail, "status": error.status,
                "grpc_code": error.grpc_code, "request_id": error.request_id}  # fmt: skip
    return {"slug": "unreachable", "title": "No answer", "detail": str(error), "status": None,
            "grpc_code": None, "request_id": None}  # fmt: skip


def _exit_code(error: DigitsError) -> int:
    if isinstance(error, _Usage):
        return USAGE
    if isinstance(error, UnreachableError):
        return SERVER
    assert isinstance(error, ProblemError)
    if error.is_auth:
        return AUTH
    if error.is_unsupported:
        return UNSUPPORTED
    if error.is_server_side or not error.slug:  # no problem document: not the gateway answering
        return SERVER
    return FAILED


def _report(error: DigitsError) -> int:
    """Print why a command failed, on stderr; the exit code that goes with it."""
    code = _exit_code(error)
    if isinstance(error, _Usage):
        err.print(f"digits: error: {error}", markup=False)
    elif isinstance(error, UnreachableError):
        err.print(f"error: {error}", markup=False)
    else:
        assert isinstance(error, ProblemError)
        where = " ".join(str(part) for part in (error.status or error.grpc_code, error.slug) if part)
        err.print(f"error: {error.title} ({where})", markup=False)
        if error.detail:
            err.print(f"  {error.detail}", markup=False)
        if code == UNSUPPORTED:
            err.print("  this gateway does not offer that yet: it is older than this CLI", markup=False)
        elif error.slug == "authentication-required":
            err.print("  pass a token with --token or DIGITS_TOKEN", markup=False)
        if error.request_id:
            err.print(f"  request id: {error.request_id}", markup=False)
    return code


if __name__ == "__main__":
    sys.exit(main())
