"""The command line's shared help texts, and docs/cli.md generated from the help itself.

docs/cli.md is every command's `--help`, rendered by the commands' own click objects, so the
reference cannot drift from what the program says; a test fails when the file is stale.
Regenerate it with `./dev python -m reconcile.clihelp`.

The reference is rendered in click's plain layout at a fixed width: the terminal's rich
layout depends on its width and colours, and a file must not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconcile.settings import Settings

EXIT_CODES = (
    "Exit status: 0 reconciled (or --fail-on never); 1 findings at or above --fail-on, "
    "including an open period (the period had not ended when the logs were read); "
    "2 bad input, configuration or an output that cannot be written (one line naming the "
    "file, line, field, option or setting); 3 the gateway could not be read completely, even "
    "after retries; 70 an unexpected internal error (a bug: please report it); "
    "130 interrupted; 141 the output's reader stopped reading (e.g. `| head`); "
    "143 terminated (SIGTERM)."
)

#: The rules commands: no findings, so no 1.
RULES_EXIT_CODES = (
    "Exit status: 0 done; 2 a bad rules file, option or output (one line naming the file, "
    "line or option); 3 (pull) the gateway's price list could not be read; 70 an internal "
    "error; 141 the output's reader stopped reading."
)

#: Where the reference lives, and the width its help is rendered at.
REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
WIDTH = 88
REGENERATE = "./dev python -m reconcile.clihelp"


def settings_help() -> str:
    """Every setting with its environment variable and default, from Settings itself."""
    parts = []
    for name, field in Settings.model_fields.items():
        default = field.get_default()
        shown = "none" if default is None else str(default)
        note = f" ({field.description})" if field.description else ""
        parts.append(f"RECONCILE_{name.upper()} (default: {shown}){note}")
    return (
        "Settings come from RECONCILE_* environment variables, then a .env file, then flags "
        "(flags win): " + "; ".join(parts) + "."
    )


def _commands(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    """Every command and group under `command`, depth first, in the order the help lists."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not getattr(sub, "hidden", False):
            yield from _commands(sub, [*path, name])


def reference() -> str:
    """docs/cli.md's text: each command's help, as `reconcile ... --help` words it."""
    import typer
    import typer.main

    from reconcile.cli import app  # here: the CLI imports this module for its help texts

    out = [
        "# Command line reference",
        "",
        f"Every command's `--help`, generated from the commands themselves by `{REGENERATE}`;",
        "do not edit by hand (a test fails when this file and the help differ). The terminal",
        "shows the same text in boxes.",
    ]
    for path, command in _commands(typer.main.get_command(app), ["reconcile"]):
        command.rich_markup_mode = None  # click's plain layout: no boxes, no colours
        ctx = typer.Context(
            command, info_name=" ".join(path), terminal_width=WIDTH, max_content_width=WIDTH
        )
        text = command.get_help(ctx)
        out += ["", f"## {' '.join(path)}", "", "```text", text.rstrip(), "```"]
    return "\n".join(out) + "\n"


def main() -> None:
    """Rewrite docs/cli.md from the help."""
    REFERENCE.write_text(reference(), encoding="utf-8")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main()
