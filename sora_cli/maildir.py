"""``sora import maildir`` and ``sora export maildir``: the command line over :mod:`sora_kernel.maildir_transfer`.

A progress bar (messages, messages/s, ETA) is drawn on a terminal; elsewhere the transfer logs
one line per mailbox. Both end with a summary; anything skipped makes the exit code 1.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import typer

from sora_kernel.errors import SoraError

import_app = typer.Typer(help="Bring mail in from elsewhere.", no_args_is_help=True)
export_app = typer.Typer(help="Write mail out for elsewhere.", no_args_is_help=True)

_FILTER_HELP = ("Only these mailboxes (and their children); repeat or separate with commas; shell globs "
                "(Sent/*) work.")


def register(app: typer.Typer, cli: ModuleType) -> None:
    """Add ``import`` and ``export`` to the ``sora`` command; ``cli`` is the running sora_cli.main module
    (passed in, not imported: under ``python -m`` it is ``__main__``)."""
    _cli["module"] = cli
    app.add_typer(import_app, name="import")
    app.add_typer(export_app, name="export")


_cli: dict[str, ModuleType] = {}


def _main() -> Any:
    return _cli["module"]


def _date(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _main().fail(f"{option} {value!r}: expected a date such as 2024-01-31 or 2024-01-31T12:00:00+01:00")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filters(values: list[str] | None) -> list[str]:
    return [part.strip().strip("/") for value in values or [] for part in value.split(",") if part.strip()]


class _Bar:
    """rich.progress on stderr: messages done of all, messages/s, time left."""

    def __init__(self, verb: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            Task,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Task) -> Text:
                return Text(f"{task.speed or 0:,.0f} msg/s")

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self.verb = verb
        self.task: Any = None

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def begin(self, total: int) -> None:
        self.task = self.progress.add_task(self.verb, total=total)

    def advance(self, count: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, count)

    def mailbox_done(self, name: str, stats: Any) -> None:
        self.progress.console.print(f"{name}: {stats.done} {self.verb}, {stats.already} already there, "
                                    f"{stats.skipped} skipped")


class _Quiet:
    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def begin(self, total: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def mailbox_done(self, name: str, stats: Any) -> None:
        pass  # the transfer logs one line per mailbox


def _progress(verb: str, show: bool | None) -> _Bar | _Quiet:
    if show is None:
        show = sys.stderr.isatty()
    return _Bar(verb) if show else _Quiet()


def _finish(report: Any, verb: str) -> None:
    from sora_kernel.maildir_transfer import summary_lines

    for line in summary_lines(report, verb):
        typer.echo(line)
    if report.skipped:
        raise typer.Exit(1)


async def _account_id(kernel: Any, email: str) -> int:
    account = await kernel.store.find_account(email)
    if account is None:
        raise SoraError(f"no account with address {email}")
    return int(account.id)


@import_app.command("maildir")
def import_maildir(
    email: str = typer.Option(..., "--email", help="The account to import into."),
    path: Path = typer.Option(..., "--path", help="The Maildir++ root (with cur/, new/ and .Folder/ directories)."),
    preserve_uids: bool = typer.Option(False, "--preserve-uids",
                                       help="Keep dovecot-uidlist UIDVALIDITY, UIDs and next UID (IMAP clients "
                                       "keep their cache); only into a mailbox that is empty or was imported "
                                       "from the same UIDVALIDITY."),
    dovecot: bool = typer.Option(False, "--dovecot", help="A Dovecot Maildir: implies --preserve-uids."),
    mailbox_filter: list[str] = typer.Option(None, "--mailbox-filter", help=_FILTER_HELP),
    since: str = typer.Option(None, "--since", help="Only messages with INTERNALDATE (file mtime) from this date."),
    until: str = typer.Option(None, "--until", help="Only messages with INTERNALDATE before this date."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be imported; change nothing."),
    max_size: str = typer.Option("50mb", "--max-size", help="Larger messages are skipped and reported."),
    jobs: int = typer.Option(2, "--jobs", min=1, max=64, help="Messages read, parsed and stored at once."),
    batch_size: int = typer.Option(200, "--batch-size", min=1, max=5000, help="Messages per transaction."),
    sieve: Path = typer.Option(None, "--sieve", help="Install this Sieve script as 'imported' and activate it."),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
) -> None:
    """Import a Dovecot or Courier Maildir++ into an account; re-running imports only what is new.

    Folders .Sent and .Sent.2024 become Sent and Sent/2024 (modified UTF-7 decoded). Flags follow the
    Maildir spec: S Seen, R Answered, F Flagged, T Deleted, D Draft, P $Forwarded (the Go Sora's
    importer swaps D and T; Sora does not). Keywords a-z come from dovecot-keywords, subscriptions
    from the subscriptions file, INTERNALDATE from each file's mtime (as Dovecot keeps it).
    Unreadable or oversized files, broken uidlist lines and names that cannot be mailboxes are
    reported and skipped; the exit code is then 1.
    """
    from sora_kernel.config import parse_size
    from sora_kernel.maildir_transfer import ImportOptions
    from sora_kernel.maildir_transfer import import_maildir as run_import

    cli = _main()
    try:
        limit = parse_size(max_size)
    except ValueError as exc:
        cli.fail(f"--max-size {max_size!r}: {exc}")
    script = None
    if sieve is not None:
        try:
            script = sieve.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            cli.fail(f"--sieve {sieve}: {exc}")
    options = ImportOptions(
        path=path.expanduser().resolve(), preserve_uids=preserve_uids or dovecot,
        mailbox_filter=_filters(mailbox_filter),
        since=_date(since, "--since"), until=_date(until, "--until"), dry_run=dry_run, max_size=limit, jobs=jobs,
        batch_size=batch_size, sieve_script=script)

    async def go() -> Any:
        async with cli.open_kernel() as kernel:
            account_id = await _account_id(kernel, email)
            with _progress("imported", progress) as bar:
                return await run_import(kernel.store, account_id, options, bar)

    _finish(cli.run_async(go), "imported")


@export_app.command("maildir")
def export_maildir(
    email: str = typer.Option(..., "--email", help="The account to export."),
    path: Path = typer.Option(..., "--path", help="The Maildir++ root to write (created when missing)."),
    dovecot_uidlist: bool = typer.Option(False, "--dovecot-uidlist",
                                         help="Write dovecot-uidlist so Dovecot shows the same UIDVALIDITY and UIDs."),
    dovecot: bool = typer.Option(False, "--dovecot", help="For Dovecot: implies --dovecot-uidlist."),
    mailbox_filter: list[str] = typer.Option(None, "--mailbox-filter", help=_FILTER_HELP),
    since: str = typer.Option(None, "--since", help="Only messages with INTERNALDATE from this date."),
    until: str = typer.Option(None, "--until", help="Only messages with INTERNALDATE before this date."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be written; write nothing."),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
) -> None:
    """Write an account as a Maildir++ tree (flags in file names, dovecot-keywords, subscriptions, mtime =
    INTERNALDATE); re-running writes only messages not there yet. Names with a '.' in a level cannot be
    Maildir++ folders: they are reported and skipped (exit code 1)."""
    from sora_kernel.maildir_transfer import ExportOptions
    from sora_kernel.maildir_transfer import export_maildir as run_export

    cli = _main()
    options = ExportOptions(
        path=path.expanduser().resolve(), dovecot_uidlist=dovecot_uidlist or dovecot,
        mailbox_filter=_filters(mailbox_filter), since=_date(since, "--since"), until=_date(until, "--until"),
        dry_run=dry_run)

    async def go() -> Any:
        async with cli.open_kernel() as kernel:
            account_id = await _account_id(kernel, email)
            with _progress("exported", progress) as bar:
                return await run_export(kernel.store, account_id, options, bar, hostname=kernel.hostname)

    _finish(cli.run_async(go), "exported")
