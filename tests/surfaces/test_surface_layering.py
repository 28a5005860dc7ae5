"""The doors of the operator surfaces: the server talks to a Client, never to a
store; fastapi stays inside the server package, so the CLI runs without it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import perdure

PACKAGE = Path(perdure.__file__).parent
FRAMEWORKS = {"fastapi", "starlette", "uvicorn", "pydantic"}
EXTRA = ["fastapi", "starlette", "uvicorn"]  # perdure[server]; typer itself needs pydantic


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_server_uses_the_client_never_a_store() -> None:
    for path in (PACKAGE / "server").glob("*.py"):
        stores = {
            i for i in imports_of(path) if i.startswith(("perdure._store", "perdure._worker"))
        }
        assert not stores, f"{path.name} imports {stores}"


def test_only_the_server_modules_import_web_frameworks() -> None:
    framework_free = {"__init__.py", "_query.py", "_auth.py"}
    for path in PACKAGE.rglob("*.py"):
        used = {i.split(".")[0] for i in imports_of(path)} & FRAMEWORKS
        if path.parent.name == "server" and path.name not in framework_free:
            continue
        assert not used, f"{path.relative_to(PACKAGE)} imports {used}"


def test_the_cli_starts_without_the_server_extra() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, *args):\n"
        f"        if name.split('.')[0] in {EXTRA!r}: raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['perdure', 'server', '--port', '0', '--db', 'sqlite://:memory:']\n"
        "from perdure.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, done
    assert "needs the server extra" in done.stderr and "perdure[server]" in done.stderr
