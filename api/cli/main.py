"""The `carbonledger` command tree: the root app, its options, and where each command lives.

| command                                   | module                |
| ----------------------------------------- | --------------------- |
| `init`, `serve`                           | `api.cli.service`     |
| `admin create-client`                     | `api.cli.admin`       |
| `log checkpoint`, `prove`, `verify-*`     | `api.cli.log`         |
| `meter keygen`, `register`, `sign`        | `api.cli.meter`       |
| `meter simulate`, `gateway run`           | `api.cli.gateway`     |
| `readings import`                         | `api.cli.readings`    |
| `chain deploy`, `anchor now`/`status`, `verify` | `api.cli.chain` |
| `report matching`                         | `api.cli.reports`     |
| `audit replay`                            | `api.cli.audit`       |

This module imports the command modules; they import only `api.cli.common`, never this
module or each other. Each is import-light (Typer and the standard library at load time,
everything else inside the command), so building the whole tree for `carbonledger --help`
costs milliseconds; decisions.md ("A fast CLI") has the measurements.

Errors: the root group runs Click without its standalone handling, so usage errors and the
domain's expected errors (`api.cli.common.explain`) print as one `error:` line with exit
code 2 or 3; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from api.cli import admin, audit, chain, gateway, log, meter, readings, reports, service
from api.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandGroup,
    GlobalOptions,
    explain,
    print_error_line,
)


class RootGroup(CommandGroup):
    """Runs the command tree with Click's standalone handling off, so that usage errors
    and the domain's expected errors print as one `error:` line instead of a panel or a
    traceback."""

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
    rich_markup_mode="markdown",  # reflows docstring paragraphs in --help
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


app.command("init")(service.init_command)
app.command("serve")(service.serve_command)
app.add_typer(admin.admin_app, name="admin")
app.add_typer(log.log_app, name="log")
meter.meter_app.command("simulate")(gateway.meter_simulate_command)
app.add_typer(meter.meter_app, name="meter")
app.add_typer(gateway.gateway_app, name="gateway")
app.add_typer(readings.readings_app, name="readings")
app.add_typer(chain.chain_app, name="chain")
app.add_typer(chain.anchor_app, name="anchor")
app.command("verify")(chain.verify_command)
app.add_typer(reports.report_app, name="report")
app.add_typer(audit.audit_app, name="audit")


def main() -> NoReturn:
    """Console-script entry point (`carbonledger`)."""
    app()
    # Click always exits; this line only documents that for the type checker.
    raise SystemExit(EXIT_OK)  # pragma: no cover


if __name__ == "__main__":  # `python -m api.cli.main …`, e.g. from a checkout without the script
    main()
