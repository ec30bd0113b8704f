"""The mover's `conveyor` commands: seed, slowdb, move (see mover/seed.py, mover/follow.py)."""

from __future__ import annotations

from contracts.cli import COMMANDS
from mover import seed

COMMANDS["seed"] = ("load the demo companies and lists", seed.seed_arguments, seed.cmd_seed)
COMMANDS["slowdb"] = ("turn the 100 ms/row insert trigger on or off", seed.slowdb_arguments,
                      seed.cmd_slowdb)  # fmt: skip
