"""The documentation is tested like code (the conventions are in docs/README.md):
every runnable block runs, every relative link resolves, and the API tour names
every public name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import perdure
import perdure.testing
from perdure import activity, workflow

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").rglob("*.md")]
)
RUNNABLE = re.compile(r"^<!-- runnable -->\n```python\n(.*?)^```", re.M | re.S)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def runnable_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in PAGES:
        for n, match in enumerate(RUNNABLE.finditer(page.read_text(encoding="utf-8")), 1):
            blocks.append((f"{rel(page)}#{n}", match[1]))
    return blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in HEADING.findall(text)}


BLOCKS = runnable_blocks()


def test_there_are_runnable_blocks() -> None:
    pages = {name.split("#")[0] for name, _ in BLOCKS}
    assert {"README.md", "docs/api.md", "docs/operations.md"} <= pages, pages


@pytest.mark.parametrize(("name", "code"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_runnable_block(name: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERDURE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"


def test_relative_links_resolve() -> None:
    broken = []
    for page in PAGES:
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
        for target in LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, fragment = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.exists():
                broken.append(f"{rel(page)}: {target} (no such file)")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                broken.append(f"{rel(page)}: {target} (no heading #{fragment})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_api_tour_names_every_public_name() -> None:
    tour = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    names = [*perdure.__all__, *workflow.__all__, *activity.__all__, *perdure.testing.__all__]
    missing = [name for name in names if f"`{name}`" not in tour and f"{name}(" not in tour]
    assert not missing, f"docs/api.md does not mention {missing}"


def test_slugs_follow_githubs_rule() -> None:
    assert slug("3. Activities: at least once per attempt, exactly-once effects by key") == (
        "3-activities-at-least-once-per-attempt-exactly-once-effects-by-key"
    )
    assert (
        slug("`perdure.workflow` — inside workflow code") == "perdureworkflow--inside-workflow-code"
    )
