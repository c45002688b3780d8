"""Render the help of `got-lightning fit|validate|test|predict|serve` from the live parser into
got_lightning/commands/help/, with the versions of the libraries it was rendered with. Run it after
changing an option, a docstring or a library version (tests/commands/test_stored_help.py says when):

    python tools/render_help.py
"""

from __future__ import annotations

import json

from got_lightning.commands.dispatch import LIGHTNING_COMMANDS
from got_lightning.commands.stored_help import HELP_DIR, VERSIONS_FILE, installed_versions, live_help


def main() -> None:
    HELP_DIR.mkdir(exist_ok=True)
    for command in LIGHTNING_COMMANDS:
        (HELP_DIR / f"{command}.txt").write_text(live_help(command), encoding="utf-8")
    (HELP_DIR / VERSIONS_FILE).write_text(json.dumps(installed_versions(), indent=2) + "\n", encoding="utf-8")
    print(f"rendered {', '.join(LIGHTNING_COMMANDS)} into {HELP_DIR}")


if __name__ == "__main__":
    main()
