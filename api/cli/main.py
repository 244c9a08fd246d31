"""The `carbonledger` command tree: the root app, its options, and where each command lives.

The root knows its commands by name, module and one-line summary (`COMMANDS`) and imports a
command's module only when that command runs or shows its own help: `carbonledger --help`
imports none of them, `carbonledger verify` only `api.cli.chain`. Building all thirty Typer
commands would take a fifth of `--help`'s time (decisions.md, "A fast CLI", has the figures).
tests/cli/test_cli_structure.py holds every summary equal to its command's own first help
line, and checks that a command loads no other command's module.

Command modules import only `api.cli.common` (and each other's public names, never this
module); each is import-light too: Typer and the standard library at load time, everything
else inside the command.

Errors: the root group runs Click without its standalone handling, so usage errors and the
domain's expected errors (`api.cli.common.explain`) print as one `error:` line with exit
code 2 or 3; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import typer.core
import typer.main

from api.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    MARKUP_MODE,
    CommandGroup,
    GlobalOptions,
    explain,
    print_error_line,
    show_flags_as_flags,
)


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives, and the line `carbonledger --help` shows for it."""

    module: str
    attribute: str
    """A Typer sub-app (a group such as `log`) or a command function (such as `init`)."""
    summary: str


COMMANDS: Mapping[str, LazyCommand] = {
    "init": LazyCommand(
        "api.cli.service", "init_command", "Create the registry, or check and keep an existing one."
    ),
    "serve": LazyCommand("api.cli.service", "serve_command", "Run the HTTP API."),
    "admin": LazyCommand("api.cli.admin", "admin_app", "Administration: API clients."),
    "log": LazyCommand(
        "api.cli.log",
        "log_app",
        "Checkpoints and proofs of the log, and their offline verification.",
    ),
    "meter": LazyCommand(
        "api.cli.meter",
        "meter_app",
        "Meters: signing keys, registration, signed readings, a simulated Modbus meter.",
    ),
    "gateway": LazyCommand(
        "api.cli.gateway",
        "gateway_app",
        "The Modbus gateway: poll a meter, sign its readings, upload them.",
    ),
    "readings": LazyCommand(
        "api.cli.readings", "readings_app", "Signed meter readings: bulk import."
    ),
    "chain": LazyCommand(
        "api.cli.chain", "chain_app", "The CarbonAnchor contract on the configured chain."
    ),
    "anchor": LazyCommand(
        "api.cli.chain",
        "anchor_app",
        "Anchor the log's head on chain and show what is anchored.",
    ),
    "verify": LazyCommand(
        "api.cli.chain",
        "verify_command",
        "Check a proof bundle with nothing but the bundle and the chain.",
    ),
    "report": LazyCommand(
        "api.cli.reports", "report_app", "Reports: 24/7 matching and Scope 2 emissions."
    ),
    "audit": LazyCommand(
        "api.cli.audit",
        "audit_app",
        "Re-check the registry from its log entries and the chain alone.",
    ),
}


class UnloadedCommand(typer.core.TyperCommand):
    """Stands in for a command whose module is not imported yet; it only has a summary."""

    def __init__(self, name: str, lazy: LazyCommand) -> None:
        super().__init__(name=name, help=lazy.summary)
        self.lazy = lazy


def load_command(name: str, lazy: LazyCommand) -> Any:
    """The Click command (or group) of a `COMMANDS` entry, imported and built now."""
    target = getattr(importlib.import_module(lazy.module), lazy.attribute)
    if isinstance(target, typer.Typer):
        # A group even when it has one command (`readings import`), as `add_typer` makes it.
        command: Any = typer.main.get_group(target)
    else:
        single = typer.Typer(rich_markup_mode=MARKUP_MODE, add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class RootGroup(CommandGroup):
    """The root: loads each command on first use (see `COMMANDS`), and runs the tree with
    Click's standalone handling off, so that usage errors and the domain's expected errors
    print as one `error:` line instead of a panel or a traceback."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, lazy in COMMANDS.items():
            self.commands.setdefault(name, UnloadedCommand(name, lazy))
        self.listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if isinstance(command, UnloadedCommand) and not self.listing:
            command = self.commands[cmd_name] = load_command(cmd_name, command.lazy)
        if command is not None and not self.listing:
            show_flags_as_flags(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # The command list needs only the summaries: nothing is imported to show it. The
        # root's help is Click's plain text: Typer's Rich renderer imports Rich's markdown
        # and traceback stacks (0.12 s, 40 % of `carbonledger --help`) to draw a list of
        # twelve lines. The commands' own help keeps Rich.
        self.listing = True
        try:
            show_flags_as_flags(self, ctx)
            super(typer.core.TyperGroup, self).format_help(ctx, formatter)
        finally:
            self.listing = False

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # Click cuts summaries to the terminal's width; these are written to be read whole.
        rows = [
            (name, COMMANDS[name].summary if name in COMMANDS else self.commands[name].help or "")
            for name in self.list_commands(ctx)
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except typer.Abort:
            print_error_line("aborted")
            sys.exit(EXIT_USAGE)
        except typer.TyperException as error:  # Click's exceptions (vendored by Typer)
            if type(error).__name__ == "NoArgsIsHelpError":
                # A group called without a subcommand: its help is the answer. Typer's
                # Rich formatter has printed it already and left the message empty.
                if error.format_message().strip():
                    typer.echo(error.format_message(), err=True)
                sys.exit(EXIT_USAGE)
            message = error.format_message()
            context = getattr(error, "ctx", None)
            if context is not None:
                message += f" (see `{context.command_path} --help`)"
            print_error_line(message)
            sys.exit(error.exit_code)
        except Exception as error:
            explained = explain(error)
            if explained is None:
                raise
            print_error_line(explained.message)
            sys.exit(explained.exit_code)
        # Without standalone mode, Click returns the code of an explicit exit (--help,
        # typer.Exit) and the command's return value (None) otherwise.
        sys.exit(result if isinstance(result, int) else EXIT_OK)


def _version(value: bool) -> None:
    if value:
        from importlib import metadata  # a twentieth of a second

        typer.echo(f"carbonledger {metadata.version('carbonledger')}")
        raise typer.Exit(EXIT_OK)


app = typer.Typer(
    name="carbonledger",
    cls=RootGroup,
    rich_markup_mode=MARKUP_MODE,
    no_args_is_help=True,
    add_completion=False,
    # Locals can hold database URLs with passwords and client secrets.
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Registry directory (overrides CARBONLEDGER_DATA_DIR; default ./var).",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """An append-only, anchored registry for energy and carbon claims.

    Settings come from CARBONLEDGER_* environment variables (see the README).
    """
    # Settings are read lazily: the verify commands must work with no settings at all.
    ctx.obj = GlobalOptions(data_dir=data_dir)


def main() -> NoReturn:
    """Console-script entry point (`carbonledger`)."""
    app()
    # Click always exits; this line only documents that for the type checker.
    raise SystemExit(EXIT_OK)  # pragma: no cover


if __name__ == "__main__":  # `python -m api.cli.main …`, e.g. from a checkout without the script
    main()
