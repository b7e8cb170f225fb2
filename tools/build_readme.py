"""Assemble README.md from its sources (run after editing any of them).

    python tools/build_readme.py          # rewrite README.md
    python tools/build_readme.py --check  # exit 1 when README.md is not up to date

README.md = docs/readme/_head.md + the sections docs/readme/{identify, drivers, calibration,
library, batch, engine, io}.md + docs/readme/_tail.md. A section whose first heading is a
top-level ``#`` has its headings moved down one level (outside code blocks); figure links
``](figures/`` point into ``docs/readme/figures/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "readme"
SECTIONS = ("identify", "drivers", "calibration", "library", "batch", "engine", "io")


def section(text: str) -> str:
    """One section as it appears in the README."""
    lines = text.strip("\n").splitlines()
    shift = bool(lines) and lines[0].startswith("# ")
    out, fenced = [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        if shift and not fenced and line.startswith("#"):
            line = "#" + line
        out.append(line.replace("](figures/", "](docs/readme/figures/"))
    return "\n".join(out)


def build() -> str:
    """The README text."""
    parts = [(DOCS / "_head.md").read_text(encoding="utf-8").strip("\n")]
    parts += [section((DOCS / f"{name}.md").read_text(encoding="utf-8")) for name in SECTIONS]
    parts.append((DOCS / "_tail.md").read_text(encoding="utf-8").strip("\n"))
    return "\n\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    text = build()
    readme = ROOT / "README.md"
    if "--check" in argv:
        if readme.read_text(encoding="utf-8") != text:
            print("README.md is not up to date: run python tools/build_readme.py",
                  file=sys.stderr)
            return 1
        return 0
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(readme)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
