"""The package's shape, checked from its imports (top-level and inside functions alike):

    entry      app.entry, app.__main__
    cli        app.cli.*                                   the command line
    faces      app.ui.*, app.mcp.*                         tray and dialogs; the agent tools
    wiring     app.wiring, app.status_report, app.encryption   settings -> the objects that do the work
    service    app.service.*                               the live service without a face
    engine     app.backup.*                                sync, restore, verify, the destination
    config     app.config, app.config_values, app.config_destination
    adapters   app.opencode.*, app.transfer.*, app.platform.*, app.crypt.*
    base       app, app.errors, app.fsutil, app.jsonc, app.jsonc_edit, app.codec, app.paths, app.words,
               app.assets, app.safe_text, app.host

A module imports only from its own layer or below; the two faces never import each other; and no set of
modules imports itself round in a circle. The system's name (``sys.platform``) is read in ``app.host`` only:
everything else asks it what the system can do. A module touches only its own private names (``_name``):
another module's private function, field or cache is reached through something public, or moved to where
it is used. Run alone: ``python -m pytest tests/test_layers.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("app", "app.errors", "app.fsutil", "app.jsonc", "app.jsonc_edit", "app.codec", "app.paths",
              "app.words", "app.assets", "app.safe_text", "app.host")),
    ("adapters", ("app.opencode", "app.transfer", "app.platform", "app.crypt")),
    ("config", ("app.config", "app.config_values", "app.config_destination")),
    ("engine", ("app.backup",)),
    ("service", ("app.service",)),
    ("wiring", ("app.wiring", "app.status_report", "app.encryption")),
    ("faces", ("app.ui", "app.mcp")),
    ("cli", ("app.cli",)),
    ("entry", ("app.entry", "app.__main__")),
]  # fmt: skip
FACES = ("app.ui", "app.mcp")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``app`` that ``name`` imports anywhere in its body (a name imported from a
    package counts as the submodule when it is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known and m != name}


def layer_of(name: str) -> int:
    for i, (_label, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes if p != "app") or name == "app":
            return i
    raise AssertionError(f"{name} belongs to no layer: add it to the table above")


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_ones() -> None:
    upward = []
    for name, targets in graph().items():
        for target in targets:
            if layer_of(target) > layer_of(name):
                upward.append(
                    f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                )
    assert not upward, "imports that reach up:\n" + "\n".join(sorted(upward))


def test_the_faces_do_not_import_each_other() -> None:
    crossing = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in targets
        for face in FACES
        if name.startswith(face) and target.startswith(FACES) and not target.startswith(face)
    ]
    assert not crossing, crossing


def test_no_import_cycle() -> None:
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_is_over_400_lines() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert not long, long


def test_the_system_is_named_in_app_host_only() -> None:
    """``sys.platform`` read anywhere but ``app/host.py`` is a decision that escaped the one place that makes
    it (and that tests replace)."""
    reads = []
    for name, path in modules().items():
        if name == "app.host":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "platform":
                if isinstance(node.value, ast.Name) and node.value.id == "sys":
                    reads.append(f"{name}:{node.lineno}")
            elif isinstance(node, ast.ImportFrom) and node.module == "sys":
                reads += [f"{name}:{node.lineno}" for a in node.names if a.name == "platform"]
    assert not reads, "sys.platform read outside app.host:\n" + "\n".join(reads)


def _own_private_names(tree: ast.Module) -> set[str]:
    """The private names a module defines: its functions, classes and globals, and its classes' fields
    (class-level annotations and ``self._x`` assignments)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_module_reaches_into_another_modules_private_names() -> None:
    """``x._name`` or ``from m import _name`` where ``_name`` is defined by another module of the package
    and not by this one: a cache or helper reached from outside its owner."""
    trees = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in modules().items()}
    owned = {name: _own_private_names(tree) for name, tree in trees.items()}
    anyones = set().union(*owned.values())
    reaching = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in anyones and node.attr not in owned[name]:
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    reaching.append(f"{name}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app"):
                reaching += [f"{name}:{node.lineno} {a.name}" for a in node.names if a.name in anyones]
    assert not reaching, "private names of other modules:\n" + "\n".join(sorted(reaching))
