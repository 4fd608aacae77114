"""Measured results, one topic per file, shared by the measuring scripts (run them as ``python scripts/<name>.py``).

``--save`` on a measuring script writes ``results/<topic>.json`` (the rows, for code) and ``results/<topic>.md``
(the tables as the script printed them, for people), both with the command that made them. The README shows each
``.md`` file between the markers ``<!-- begin results/<topic>.md -->`` and ``<!-- end results/<topic>.md -->``;
``python scripts/update_readme.py`` copies the files in and ``tests/test_results.py`` checks that they agree, so
no figure is copied by hand.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from mpat_nb.utils import atomic_write_text

#: The results folder of the repository.
RESULTS = Path(__file__).resolve().parents[1] / "results"


def command_line() -> str:
    """The command that is running, as a reader would type it from the repository root."""
    script = Path(sys.argv[0])
    name = f"scripts/{script.name}" if script.parent.name == "scripts" else str(script)
    return " ".join(["python", name, *map(shlex.quote, sys.argv[1:])])


def write_results(topic: str, rows: object, markdown: str) -> tuple[Path, Path]:
    """Write ``results/<topic>.json`` ({"command", "rows"}) and ``results/<topic>.md`` (command + ``markdown``)."""
    command = command_line()
    json_path, md_path = RESULTS / f"{topic}.json", RESULTS / f"{topic}.md"
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(json_path, json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    atomic_write_text(md_path, f"Measured by `{command}`:\n\n{markdown.strip()}\n")
    print(f"wrote {json_path.relative_to(RESULTS.parent)} and {md_path.relative_to(RESULTS.parent)}")
    return json_path, md_path


def fenced(text: str) -> str:
    """A fixed-width table as a Markdown code block."""
    return f"```\n{text.rstrip()}\n```"
