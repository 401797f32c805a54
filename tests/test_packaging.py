"""The install story stays consistent: one dependency list, one torch pin, the two commands,
and package imports that follow the data flow."""

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# data flow: a package may import only from packages listed before it
LAYERS = ["_validate", "_cli", "_threads", "fileio", "rundir", "config", "tasks", "agents", "data", "model", "train",
          "evaluate", "experiment", "sweep", "analysis"]


def pyproject():
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def conda_pip_list():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs exactly one pip: section"
    return env, [x for x in pip[0]["pip"] if not x.startswith("-e")]


def norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_matches_pyproject():
    deps = pyproject()["project"]["dependencies"]
    env, pip = conda_pip_list()
    assert sorted(map(norm, pip)) == sorted(map(norm, deps))
    assert pip[0].startswith("torch=="), "torch must be pinned first so pip never resolves a bare torch"
    py = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    minimum = re.search(r">=\s*(\d+\.\d+)", pyproject()["project"]["requires-python"]).group(1)
    version = py[0].split("=")[1]
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))


def test_one_torch_pin_everywhere():
    pins = {norm(d) for d in pyproject()["project"]["dependencies"] if d.startswith("torch")}
    assert len(pins) == 1 and next(iter(pins)).startswith("torch==")
    pin = next(iter(pins))
    make = (ROOT / "Makefile").read_text()
    assert f"TORCH_PIN := {pin}" in make
    # torch is installed on its own before the package
    assert make.index("$(TORCH_PIN)\n") < make.index("-e '.[dev]'")
    assert pin in map(norm, conda_pip_list()[1])


def test_readme_opens_with_the_two_commands_and_ci_runs_make_test():
    readme = (ROOT / "README.md").read_text().splitlines()
    first_block = []
    inside = False
    for line in readme:
        if line.startswith("```"):
            if inside:
                break
            inside = True
            continue
        if inside:
            first_block.append(line.split("#")[0].strip())
    assert [x for x in first_block if x] == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_packages_import_only_upstream():
    for path in (ROOT / "omnirl").rglob("*.py"):
        rel = path.relative_to(ROOT / "omnirl").parts
        layer = rel[0].removesuffix(".py") if len(rel) > 1 or rel[0] != "__init__.py" else None
        if layer is None or layer not in LAYERS:
            continue
        for mod in _imports(path):
            parts = mod.split(".")
            if parts[0] != "omnirl" or len(parts) < 2 or parts[1] not in LAYERS:
                continue
            assert LAYERS.index(parts[1]) <= LAYERS.index(layer), f"{path}: imports {mod} (downstream)"
