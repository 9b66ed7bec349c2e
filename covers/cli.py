"""The `flask covers migrate` and `flask prune-covers` commands."""

from __future__ import annotations

import time
from collections.abc import Callable

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from covers.storage import KINDS, Storage, covers
from models import Books


def register(app: Flask) -> None:
    app.cli.add_command(covers_cli)
    app.cli.add_command(prune_command)


# --- moving covers between storages -------------------------------------------------


def migrate(
    source: Storage,
    target: Storage,
    echo: Callable[[str], None] = lambda line: None,
) -> dict[str, int]:
    """Copy every cover from source to target, check the copy, then delete the source.

    Safe to run again at any point: a cover already copied is only checked, a copy
    that does not match (an interrupted write) is written again, and a cover that
    vanished meanwhile (its book deleted) is skipped.
    """
    counts = {"moved": 0, "already_there": 0, "vanished": 0}
    for name in list(source.names()):
        data = source.read(name)
        if data is None:
            counts["vanished"] += 1
            continue
        if target.read(name) == data:
            counts["already_there"] += 1
        else:
            target.remove(name)
            target.store(data, name)
            if target.read(name) != data:
                raise click.ClickException(f"The copy of {name} does not match; nothing was deleted.")
            counts["moved"] += 1
        source.remove(name)
        echo(name)
    return counts


@click.group("covers")
def covers_cli() -> None:
    """Cover storage: move covers between the folder and GridFS."""


@covers_cli.command("migrate")
@click.option("--to", "to", type=click.Choice(KINDS), required=True, help="the storage to move every cover into")
@click.option("--verbose", is_flag=True, help="print each cover's name as it is moved")
@with_appcontext
def migrate_command(to: str, verbose: bool) -> None:
    """Move every cover into one storage; safe to re-run after an interruption."""
    used = covers()
    target, source = (used.primary, used.other) if used.primary.kind == to else (used.other, used.primary)
    counts = migrate(source, target, click.echo if verbose else lambda line: None)
    click.echo(
        f"Covers now in {to}: {counts['moved']} moved, {counts['already_there']} already there"
        f" (source copy removed), {counts['vanished']} deleted meanwhile."
    )
    if to != current_app.config["COVER_STORAGE"]:
        click.echo(f"Set COVER_STORAGE={to} so that new covers go there too.")


# --- covers no book references ---------------------------------------------------------


@click.command("prune-covers")
@click.option(
    "--grace-minutes",
    default=60,
    show_default=True,
    type=click.IntRange(min=0),
    help="Keep unreferenced covers younger than this: uploads still in flight.",
)
@with_appcontext
def prune_command(grace_minutes: int) -> None:
    """Delete covers that no book references (left by interrupted writes), in both storages."""
    referenced = Books.image_names()
    older_than = time.time() - grace_minutes * 60 if grace_minutes else None
    removed = covers().prune(referenced, older_than)
    for name in removed:
        click.echo(f"removed {name}")
    click.echo(f"{len(removed)} unreferenced cover(s) removed; {len(referenced)} referenced.")
