"""Notebooks are valid, stored without outputs, read runs only through ``omnirl.analysis``, and run
top to bottom against a smoke run directory built here from the real pieces.

The smoke run directory has the layout of ``omnirl/experiment.py``: two tiny datasets with task
sets of 2 and 4 tasks (``data/``), a 2-step training run on each (``train/tasks2_gdn/`` logged to an
offline W&B run, ``train/tasks4_mamba2/``: two task counts and two backbones, so it stands for both
a task-scaling and an architecture-comparison run), an online evaluation of the second checkpoint
on ``anymdp16`` and ``lake4x4`` with memory dumps (``eval/tasks4/``), and a ``summary.json``. It is
built once per session (``smoke_run_dir``; ``tests/test_analysis.py`` reads it too).
"""

import ast
import dataclasses
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SMOKE_EXPERIMENT = "notebook_smoke"
EXPECTED_FIGURES = {
    "tsne_memory.ipynb": ("fig_tsne", "fig_tsne_last"),
    "loss_curves.ipynb": ("fig_position", "fig_position_split", "fig_iteration", "fig_task_count",
                          "fig_arch_iteration", "fig_arch_position", "fig_wandb"),
    "anymdp_gallery.ipynb": ("fig_kernels", "fig_kernels_oracle", "fig_stationary", "fig_stationary_sizes",
                             "fig_values"),
}
ALLOWED_IMPORTS = ("os", "omnirl.analysis")
"""What notebook cells may import: results are read through omnirl.analysis only."""

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]


# --------------------------------------------------------------------------- the smoke run
@dataclasses.dataclass(frozen=True)
class SmokeSettings:
    """Settings recorded in the smoke run's summary.json."""

    task_counts: tuple[int, ...] = (2, 4)
    backbones: tuple[str, ...] = ("gdn", "mamba2")
    envs: tuple[str, ...] = ("anymdp16", "lake4x4")
    memory_steps: tuple[int, ...] = (0, 8, 16)
    n_envs: int = 3


_SMOKE: dict[str, Path] = {}


def smoke_run_dir(tmp_path_factory) -> Path:
    """Build the smoke run directory (once per session) and return it."""
    if "dir" in _SMOKE:
        return _SMOKE["dir"]
    from experiments import _common as C
    from omnirl import experiment as steps
    from omnirl.train.config import DataSection, ModelSection, TrainConfig, TrainSection

    s = SmokeSettings()
    out = tmp_path_factory.mktemp("smoke_run")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("WANDB_DIR", str(out))
    try:
        ckpt = None
        for n, backbone, mode in zip(s.task_counts, s.backbones, ("offline", "disabled")):
            data = steps.dataset(out / "data" / f"tasks{n}", n_tasks=n, sequences=6, length=160, states=16)
            val = steps.validation_sets(data, out / "data" / f"tasks{n}_val", 2)
            mp.setenv("WANDB_MODE", mode)
            config = TrainConfig(model=ModelSection(backbone=backbone, size="tiny"),
                                 data=DataSection(train=(str(data),), validation=val, window=128, batch_size=2),
                                 train=TrainSection(segment_len=64, max_steps=2, val_every=1))
            ckpt = steps.train(out / "train" / f"tasks{n}_{backbone}", config, wandb_mode=mode)["checkpoint"]
        mp.setenv("WANDB_MODE", "disabled")
        ev = steps.evaluate(out / "eval" / f"tasks{s.task_counts[-1]}", checkpoint=ckpt, envs=s.envs, n_envs=s.n_envs,
                        steps=max(s.memory_steps), seed=0, baselines=["tql_ucb"],
                        **{"protocol.memory_steps": list(s.memory_steps)})
        inv = C.Invocation(preset="smoke", settings=s, out=out, seed=0, wandb_mode="disabled")
        C.finish(inv, SMOKE_EXPERIMENT, results={"rows": ev["rows"]}, table=ev["rows"], figures=[],
                 finding="A smoke run for the notebooks: two 2-step training runs and one evaluation.", seconds=0.0)
    finally:
        mp.undo()
    _SMOKE["dir"] = out
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return smoke_run_dir(tmp_path_factory)


# --------------------------------------------------------------------------- static checks
def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_cells_parse(path):
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a notebook without code"
    for cell in code:
        tree = ast.parse("".join(cell["source"]))
        for node in ast.walk(tree):  # notebooks read results; they never train or generate sets
            if isinstance(node, ast.Attribute):
                assert node.attr not in {"generate", "fit"}, f"{path.name} calls .{node.attr}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stored_without_outputs(path):
    for i, cell in enumerate(_code_cells(path)):
        assert cell["outputs"] == [], f"{path.name}: code cell {i} is stored with outputs"
        assert cell["execution_count"] is None, f"{path.name}: code cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_reads_only_through_the_library(path):
    cells = _code_cells(path)
    assert "OMNIRL_RUN_DIR" in "".join(cells[0]["source"]), f"{path.name}: the first code cell sets no RUN_DIR"
    for i, cell in enumerate(cells):
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name == "os" or name.startswith("omnirl.analysis"), \
                    f"{path.name}, code cell {i} imports {name} (only {ALLOWED_IMPORTS})"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"open", "exec", "eval"}, f"{path.name}, code cell {i} calls {node.func.id}"


def test_there_is_a_notebook():
    assert NOTEBOOKS
    assert set(EXPECTED_FIGURES) <= {p.name for p in NOTEBOOKS}


# --------------------------------------------------------------------------- execution
def run_notebook(path: Path) -> dict:
    """Execute the code cells of ``path`` in order in one namespace (as a kernel would, minus
    the display of the last expression); returns the namespace."""
    ns: dict = {"__name__": "__main__"}
    for i, cell in enumerate(_code_cells(path)):
        code = compile("".join(cell["source"]), f"{path.name}[code cell {i}]", "exec")
        exec(code, ns)
    return ns


def _has_data(fig: Figure) -> bool:
    return any(ax.get_visible() and (ax.lines or ax.collections or ax.images) for ax in fig.axes)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_against_a_smoke_run(path, run_dir, monkeypatch):
    if path.name == "tsne_memory.ipynb":
        pytest.importorskip("sklearn")
    for var in ("OMNIRL_TASK_SCALING_DIR", "OMNIRL_ARCH_DIR", "OMNIRL_WANDB_RUN", "OMNIRL_TASK_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMNIRL_RUN_DIR", str(run_dir))
    monkeypatch.chdir(REPO / "notebooks")  # where Jupyter runs them
    ns = run_notebook(path)
    figures = {k: v for k, v in ns.items() if isinstance(v, Figure)}
    assert figures, f"{path.name} made no figure"
    for name in EXPECTED_FIGURES.get(path.name, ()):
        assert isinstance(ns.get(name), Figure), f"{path.name} made no {name}"
    for name, fig in figures.items():
        assert _has_data(fig), f"{path.name}: {name} is empty"
        fig.canvas.draw()  # every artist renders

    if path.name == "tsne_memory.ipynb":
        s = SmokeSettings()
        assert len(ns["embedding"]) == len(s.envs) * s.n_envs * len(s.memory_steps)
        legend = [t.get_text() for t in ns["fig_tsne"].axes[0].get_legend().get_texts()]
        assert sorted(legend) == ["anymdp16", "lake"]
    elif path.name == "loss_curves.ipynb":
        assert {r.n_tasks for r in ns["runs"].values()} == {2, 4}
        lines = ns["fig_position"].axes[0].lines
        model = [ln for ln in lines if not ln.get_label().startswith("Bayes-optimal reference")]
        reference = [ln for ln in lines if ln.get_label().startswith("Bayes-optimal reference")]
        assert len(model) == 4 and {ln.get_linestyle() for ln in model} == {"-", "--"}  # seen, unseen
        assert sorted(ln.get_label() for ln in reference) == ["Bayes-optimal reference, seen",
                                                              "Bayes-optimal reference, unseen"]
        assert ns["source"] and "tasks2_gdn" in ns["source"]  # the offline W&B run was read
    elif path.name == "anymdp_gallery.ipynb":
        assert len(ns["stored"]) == 2 and all(t.n_obs == 16 for t in ns["stored"])  # data/tasks2/tasks
