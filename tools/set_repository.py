"""Write the GitHub repository (OWNER/NAME) into REPOSITORY, every notebook's Colab badge and install
cell, and the README's badges: ``python tools/set_repository.py OWNER/NAME [--branch main]``.

REPOSITORY is the one place that names the repository; this script keeps the copies in agreement
(tests/test_notebooks.py checks that they do)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
BADGE = re.compile(r"(colab\.research\.google\.com/github/)[^/\s)]+/[^/\s)]+/blob/[^/\s)]+/")
INSTALL = re.compile(r'^(REPOSITORY = ")[^"]*(")', re.M)


def rewrite(text: str, repository: str, branch: str) -> str:
    text = BADGE.sub(lambda m: f"{m.group(1)}{repository}/blob/{branch}/", text)
    return INSTALL.sub(lambda m: f"{m.group(1)}{repository}{m.group(2)}", text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository", help="GitHub OWNER/NAME of this project")
    parser.add_argument("--branch", default="main", help="the branch the badges open (default: main)")
    args = parser.parse_args(argv)
    if not NAME.match(args.repository):
        parser.error(f"repository must be OWNER/NAME, got {args.repository!r}")
    (ROOT / "REPOSITORY").write_text(args.repository + "\n")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            lines = isinstance(cell["source"], list)  # nbformat stores a cell's source as its lines
            source = rewrite("".join(cell["source"]) if lines else cell["source"], args.repository, args.branch)
            cell["source"] = source.splitlines(keepends=True) if lines else source
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    readme = ROOT / "README.md"
    readme.write_text(rewrite(readme.read_text(), args.repository, args.branch))
    print(f"REPOSITORY, {len(list((ROOT / 'notebooks').glob('*.ipynb')))} notebooks and README.md now name "
          f"{args.repository} (branch {args.branch})")


if __name__ == "__main__":
    main()
