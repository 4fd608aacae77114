"""Copy the measured results (results/<topic>.md) into the READMEs between their markers.

    python scripts/update_readme.py           # rewrite README.md and mpat_nb/weights/README.md
    python scripts/update_readme.py --check   # exit 1 if a block differs from its file (tests/test_results.py)

A block is ``<!-- begin results/<topic>.md -->`` ... ``<!-- end results/<topic>.md -->``; the files are written
by the measuring scripts' ``--save`` (scripts/_results.py).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mpat_nb.utils import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
#: The documents that show results blocks.
DOCUMENTS = ("README.md", "mpat_nb/weights/README.md")
BLOCK = re.compile(r"(<!-- begin (results/[\w.-]+\.md) -->\n)(.*?)(<!-- end \2 -->)", re.S)


def filled(text: str, root: Path = ROOT) -> str:
    """``text`` with every results block replaced by its file's content; FileNotFoundError for a missing file."""
    return BLOCK.sub(lambda m: m[1] + (root / m[2]).read_text(encoding="utf-8") + m[4], text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if the README is out of date")
    args = parser.parse_args()
    stale = []
    for name in DOCUMENTS:
        path = ROOT / name
        text = path.read_text(encoding="utf-8")
        new = filled(text)
        blocks = [m[2] for m in BLOCK.finditer(text)]
        if new != text:
            stale.append(name)
            if not args.check:
                atomic_write_text(path, new)
        print(f"{name}: {len(blocks)} results blocks ({', '.join(blocks) or 'none'}), "
              f"{('out of date' if args.check else 'updated') if new != text else 'up to date'}")
    if args.check and stale:
        sys.exit(f"{', '.join(stale)} out of date with results/: run python scripts/update_readme.py")

if __name__ == "__main__":
    main()
