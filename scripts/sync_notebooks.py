"""Write notebooks/*.ipynb from the percent-format sources in notebooks/src/ (outputs stripped).

    python scripts/sync_notebooks.py           # regenerate every notebook
    python scripts/sync_notebooks.py --check   # exit 1 if a notebook differs from its source
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def notebook_from_source(source: Path) -> nbformat.NotebookNode:
    """The notebook a percent-format source describes, with stable metadata and no outputs."""
    notebook = jupytext.read(source)
    notebook.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"},
                         "colab": {"provenance": []}}
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:02d}"  # stable ids: nbformat would draw random ones on every run
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for source in sorted((NOTEBOOKS / "src").glob("*.py")):
        target = NOTEBOOKS / f"{source.stem}.ipynb"
        text = nbformat.writes(notebook_from_source(source)) + "\n"
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(NOTEBOOKS.parent)}")
    if stale:
        print("out of date (run python scripts/sync_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
