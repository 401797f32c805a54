"""Run tracking: an offline W&B run holds the config, provenance, parameter count, speeds, explicit
x-axes and loss-vs-position tables; the run directory holds run.json, history.jsonl and the curves;
only the global-zero process writes."""

import hashlib
import io
import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from omnirl.analysis.wandb_offline import read_offline_run
from omnirl.data.generate import DatasetSpec, generate_dataset, make_validation_sets
from omnirl.data.store import read_manifest
from omnirl.train.__main__ import main as train_main
from omnirl.train.tracking import CURVES_FILE, HISTORY_FILE, PROGRESS_FILE, RUN_FILE, RunTracker, git_provenance
from omnirl.train.module import REFERENCE_CURVES

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracked")
    spec = DatasetSpec(pipeline="omnirl", n_sequences=12, length=160, n_obs=16, n_actions=5, seed=0,
                       shard_size=6)
    generate_dataset(spec, root / "train")
    make_validation_sets(root / "train", root / "val", 4)
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_DIR", str(root))
    mp.setenv("WANDB_SILENT", "true")
    try:
        args = [f"--data.train=[{root / 'train'}]", f"--data.validation={{unseen: {root / 'val' / 'unseen'}}}",
                "--data.window=128", "--data.batch_size=4", "--train.segment_len=32", "--train.max_steps=12",
                "--train.val_every=6", f"--logging.out_dir={root / 'run'}"]
        assert train_main(args) == 0
    finally:
        mp.undo()
    runs = sorted((root / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = read_offline_run(runs[0])
    deadline = time.monotonic() + 60.0
    while not run["complete"] and time.monotonic() < deadline:  # W&B's service may still be writing
        time.sleep(0.5)
        run = read_offline_run(runs[0])
    assert run["complete"]
    return root, run


def test_run_directory_files(offline_run):
    root, _ = offline_run
    run = json.loads((root / "run" / RUN_FILE).read_text())
    assert run["parameters"] > 0 and run["config"]["train"]["max_steps"] == 12
    assert run["provenance"]["git"] == git_provenance(REPO)
    train = run["provenance"]["data"]["train"][0]
    manifest, header = read_manifest(root / "train")
    assert train["manifest_sha256"] == hashlib.sha256((root / "train" / "manifest.json").read_bytes()).hexdigest()
    assert train["content_hash"] == manifest["content_hash"] and train["pipeline"] == "omnirl"
    assert train["task_set_hash"] == header.task_set_hash
    assert set(run["provenance"]["data"]["validation"]) == {"unseen"}

    history = [json.loads(line) for line in (root / "run" / HISTORY_FILE).read_text().splitlines()]
    assert [h["step"] for h in history] == [6, 12]
    assert history[1]["tokens_seen"] == 12 * 4 * 128
    assert all(0 < h["val/unseen/policy_loss"] < 5 for h in history)
    curves = json.loads((root / "run" / CURVES_FILE).read_text())
    assert curves["step"] == 12
    unseen = curves["curves"]["unseen"]
    assert len(unseen["position"]) == 16 and len(unseen["all"]) == 16
    progress = json.loads((root / "run" / PROGRESS_FILE).read_text())  # written at the last step
    assert progress["step"] == progress["max_steps"] == 12
    assert 0 < progress["loss"] < 5 and progress["seconds"] > 0


def test_offline_wandb_run_holds_everything(offline_run):
    root, run = offline_run
    config = run["config"]
    assert config["train"]["max_steps"] == 12 and config["model"]["backbone"] == "gdn"
    assert config["parameters"] == json.loads((root / "run" / RUN_FILE).read_text())["parameters"]
    assert config["provenance"]["git"]["commit"] == git_provenance(REPO)["commit"]
    assert config["provenance"]["data"]["train"][0]["task_set_hash"] == read_manifest(root / "train")[1].task_set_hash
    metrics = run["metrics"]
    assert metrics["train/*"] == metrics["val/*"] == metrics["perf/*"] == "trainer/global_step"
    assert metrics["tokens/*"] == "tokens_seen"
    keys = set().union(*run["history"])
    for key in ("perf/steps_per_s", "perf/tokens_per_s", "train/loss", "val/unseen/policy_loss",
                "val/unseen/random/policy_loss", "tokens/unseen/policy_loss", "tokens_seen"):
        assert key in keys, key
    # the validation numbers sit at the same step in W&B as in history.jsonl, once per validation
    logged = [(h["trainer/global_step"], h["val/unseen/policy_loss"]) for h in run["history"]
              if "val/unseen/policy_loss" in h]
    plain = [json.loads(line) for line in (root / "run" / HISTORY_FILE).read_text().splitlines()]
    assert logged == [(h["step"], pytest.approx(h["val/unseen/policy_loss"])) for h in plain]
    speeds = [h["perf/tokens_per_s"] for h in run["history"] if "perf/tokens_per_s" in h]
    assert speeds and all(s > 0 for s in speeds)
    tables = sorted((root / "run" / "wandb").glob("offline-run-*/files/media/table/val/unseen/loss_vs_position_*.table.json"))
    table = json.loads([t for t in tables if "plot" not in t.name][-1].read_text())
    assert table["columns"] == ["position", "all", "random", "oracle", "learner", "unknown",
                                "world/next_state", "world/reward", *REFERENCE_CURVES]
    assert len(table["data"]) == 16
    for plot in ("loss_vs_position_plot", "loss_vs_position_world_plot"):  # policy and world model apart
        assert any(plot in k for k in config.get("_wandb", {}).get("visualize", {})) or \
            f"_wandb/visualize/val/unseen/{plot}" in config, plot


def test_only_global_zero_writes(tmp_path):
    cfg = SimpleNamespace(logging=SimpleNamespace(out_dir=str(tmp_path / "run")))
    tracker = RunTracker.__new__(RunTracker)
    tracker.config, tracker.config_dict, tracker.out_dir = cfg, {}, tmp_path / "run"
    trainer = SimpleNamespace(is_global_zero=False, sanity_checking=False, loggers=[])
    tracker.on_fit_start(trainer, None)
    tracker.on_validation_end(trainer, None)
    assert not (tmp_path / "run").exists()


def test_training_progress_lines(tmp_path):
    from omnirl.experiment import TrainingProgress
    from omnirl.fileio import atomic_write_json

    outs = [tmp_path / "train" / "a", tmp_path / "train" / "b"]
    stream = io.StringIO()  # not a terminal: a line per run that moved, at most every log_interval
    show = TrainingProgress(outs, log_interval=0.0, stream=stream)
    show.poll(now=0.0)
    assert stream.getvalue() == ""  # no run has started
    outs[0].mkdir(parents=True)
    atomic_write_json(outs[0] / PROGRESS_FILE, {"step": 10, "max_steps": 110, "loss": 1.5, "seconds": 3.0})
    show.poll(now=100.0)
    atomic_write_json(outs[0] / PROGRESS_FILE, {"step": 60, "max_steps": 110, "loss": 0.25, "seconds": 53.0})
    show.poll(now=150.0)  # 50 steps in 50 s: 50 s left
    atomic_write_json(outs[0] / PROGRESS_FILE, {"step": 110, "max_steps": 110, "loss": 0.2, "seconds": 103.0})
    show.poll(now=200.0)
    show.poll(now=300.0)  # did not move: no new line
    assert stream.getvalue().splitlines() == [
        "training train/a: step 10/110, loss 1.500",
        "training train/a: step 60/110, loss 0.250, 0m50s left",
        "training train/a: step 110/110, loss 0.200, done"]


def test_git_provenance_outside_a_checkout(tmp_path):
    assert git_provenance(tmp_path) == {"commit": None, "dirty": None}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert git_provenance(REPO)["commit"] == head
