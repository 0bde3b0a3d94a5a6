"""The house rules of the layout, checked on the source itself (no imports run).

- Imports flow one way: schemas <- training <- workers <- bot.
- Slack's libraries are imported in bot/ alone; the runner speaks to people through its Notifier.
- Settings come from the environment in one place (schemas/settings.py); the agent, which runs
  on another machine without the control plane's settings, reads its own (training/).
- The agent's side of the wire (what the bundle ships) needs no SQLAlchemy and no control-plane
  module.
- No import cycles between modules at import time, and no module over the size a reader can hold.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from workers.providers.bundle import AGENT_SCHEMAS

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("schemas", "training", "workers", "bot")
RANK = {name: i for i, name in enumerate(PACKAGES)}
MAX_LINES = 300
ENVIRON_ALLOWED = ("schemas/settings.py", "training/")


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out[".".join(parts)] = path
    return out


MODULES = modules()


def imports(path: Path, *, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(module, line) for every import in the file; `top_level_only` skips those inside functions
    and `if TYPE_CHECKING:` blocks, which do not run at import time."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int]] = []

    def visit(node, at_import_time: bool):
        for child in ast.iter_child_nodes(node):
            runs_now = at_import_time
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                runs_now = False
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                runs_now = False
            if isinstance(child, ast.Import) and (runs_now or not top_level_only):
                found.extend((a.name, child.lineno) for a in child.names)
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0 \
                    and (runs_now or not top_level_only):
                found.append((child.module, child.lineno))
                found.extend((f"{child.module}.{a.name}", child.lineno) for a in child.names
                             if f"{child.module}.{a.name}" in MODULES)
            visit(child, runs_now)

    visit(tree, True)
    return found


def ours(name: str) -> str | None:
    """The module of ours that `name` refers to (itself or its nearest parent), if any."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            return ".".join(parts)
        parts.pop()
    return None


def test_imports_flow_one_way():
    wrong = []
    for name, path in MODULES.items():
        here = RANK[name.split(".")[0]]
        for target, line in imports(path):
            top = target.split(".")[0]
            if top in RANK and RANK[top] > here:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "imports that run upward (schemas <- training <- workers <- bot):\n" + \
        "\n".join(wrong)


def test_slack_is_imported_only_in_bot():
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {target}"
             for name, path in MODULES.items() if not name.startswith("bot")
             for target, line in imports(path) if target.split(".")[0] in {"slack_sdk", "slack_bolt"}]
    assert not wrong, "\n".join(wrong)


def test_the_environment_is_read_in_the_settings_alone():
    wrong = []
    for path in MODULES.values():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(ENVIRON_ALLOWED):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"} \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                wrong.append(f"{rel}:{node.lineno}")
    assert not wrong, "os.environ outside schemas/settings.py:\n" + "\n".join(wrong)


def test_the_agent_side_needs_no_control_plane_code():
    shipped = {f"schemas.{name.removesuffix('.py')}".removesuffix(".__init__") for name in AGENT_SCHEMAS}
    shipped |= {name for name in MODULES if name.startswith("training")}
    wrong = []
    for name in sorted(shipped):
        for target, line in imports(MODULES[name]):
            module = ours(target)
            if module and module not in shipped:
                wrong.append(f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}")
            if target.split(".")[0] in {"sqlalchemy", "sqlmodel", "alembic", "celery"}:
                wrong.append(f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "the GPU bundle would miss these:\n" + "\n".join(wrong)


def test_no_import_cycles_at_import_time():
    graph = {name: {m for t, _ in imports(path, top_level_only=True) if (m := ours(t)) and m != name}
             for name, path in MODULES.items()}
    # A package's __init__ importing its own submodules is how packages expose names; a cycle
    # through such an edge is still a cycle, so nothing is exempt.
    seen, stack, cycles = set(), [], []

    def walk(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            walk(nxt)
        stack.pop()

    for name in sorted(graph):
        walk(name)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_fit_on_a_few_screens(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"
