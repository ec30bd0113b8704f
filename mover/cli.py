"""The mover's `conveyor` commands: seed, slowdb, move (see mover/seed.py, mover/follow.py)."""

from __future__ import annotations

from contracts.cli import COMMANDS
from mover import follow, seed

COMMANDS["seed"] = ("load the demo companies and lists", seed.seed_arguments, seed.cmd_seed)
COMMANDS["slowdb"] = ("turn the 100 ms/row insert trigger on or off", seed.slowdb_arguments,
                      seed.cmd_slowdb)  # fmt: skip
COMMANDS["move"] = ("copy or move companies between lists (a job)", follow.move_arguments,
                    follow.cmd_move)  # fmt: skip
COMMANDS["follow"] = ("watch a job's progress", follow.follow_arguments, follow.cmd_follow)
