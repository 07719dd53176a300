"""The house's layering (docs/map.md): each layer of the course imports only the layers before it (paper, engine,
measuring, course face), the course never imports the lab, the package has no import cycle, and the modules whose
source keys every cached model import nothing new."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mage_lite"
ENTRY_POINTS = {"mage_lite.__main__", "mage_lite.notebooks"}  # the verb dispatcher and the one alias: they name the lab
# The modules a model's reuse key hashes (artifacts.code_fingerprint, tests/engine/test_fingerprints.py): they may
# import only each other, so no edit elsewhere can retrain a cached model.
FINGERPRINTED = {f"mage_lite.{m}" for m in ("augment", "contrastive", "device", "layers", "mae", "mage", "mage_c",
                                             "mage_continuous", "masking", "token_bank", "train", "vqgan")}
NOT_BEHAVIOUR = {"mage_lite.artifacts", "mage_lite.progress"}  # left out of every fingerprint (artifacts._NOT_BEHAVIOUR)


# The course's layers in order (docs/map.md): a module imports only its own layer and those before it.
LAYERS = {
    "paper": "layers masking mae mage mage_c contrastive mage_continuous mage_family generate vqgan shortcut",
    "engine": "train data augment token_bank artifacts device",
    "measuring": "probe mage_eval tokenizer_eval fd gen_metrics",
    "course face": "config session names plots banner progress",
}
LAYER_OF = {f"mage_lite.{m}": i for i, mods in enumerate(LAYERS.values()) for m in mods.split()}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The package modules ``name`` imports anywhere in its source (inside functions too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # mage_lite.lab.report.claims.ARMS -> its module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


GRAPH = {name: imports(name) for name in MODULES}


def in_lab(name: str) -> bool:
    return name == "mage_lite.lab" or name.startswith("mage_lite.lab.")


def test_every_course_module_has_a_layer_and_imports_only_its_own_and_earlier_layers():
    course = {n for n in MODULES if not in_lab(n) and n not in ENTRY_POINTS and n != "mage_lite"}
    assert course <= set(LAYER_OF), f"put {sorted(course - set(LAYER_OF))} in a layer of LAYERS (and of docs/map.md)"
    names = list(LAYERS)
    upward = [f"{m} ({names[LAYER_OF[m]]}) -> {d} ({names[LAYER_OF[d]]})" for m in sorted(course)
              for d in sorted(GRAPH[m]) if d in LAYER_OF and LAYER_OF[d] > LAYER_OF[m]]
    assert not upward, f"imports against the layers' order: {upward}"


def test_the_course_never_imports_the_lab():
    wrong = {name: sorted(filter(in_lab, deps)) for name, deps in GRAPH.items()
             if not in_lab(name) and name not in ENTRY_POINTS and any(map(in_lab, deps))}
    assert not wrong, f"modules outside mage_lite/lab/ import the lab: {wrong}"


def test_the_package_has_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for dep in sorted(GRAPH[name]):
            if dep in ("mage_lite",):  # the package's __init__ holds only its version
                continue
            if state.get(dep) == 1:
                return path + [name, dep]
            if dep not in state:
                found = visit(dep, path + [name])
                if found:
                    return found
        state[name] = 2
        return None

    for name in sorted(GRAPH):
        if name not in state:
            cycle = visit(name, [])
            assert cycle is None, "import cycle: " + " -> ".join(cycle[cycle.index(cycle[-1]):])


def test_the_fingerprinted_modules_import_only_each_other():
    for name in sorted(FINGERPRINTED):
        assert GRAPH[name] <= FINGERPRINTED | NOT_BEHAVIOUR, f"{name} imports {sorted(GRAPH[name] - FINGERPRINTED - NOT_BEHAVIOUR)}"
