"""Print the methods table of the registry, or paste it into README.md.

    python scripts/methods_table.py            # print the table
    python scripts/methods_table.py --write    # replace it in README.md

Run after registering a method; tests/reports/test_methods_table.py fails until the
README holds the current table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from clipasync.reports.methods_table import methods_markdown, replace_table

README = Path(__file__).resolve().parents[1] / "README.md"


def main(argv: list[str]) -> int:
    table = methods_markdown()
    if "--write" not in argv:
        sys.stdout.write(table)
        return 0
    README.write_text(replace_table(README.read_text(), table))
    print(f"wrote the methods table into {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
