"""Evaluation as a library call: ``run(config) -> summary``.

    from omnirl.evaluate import EvaluateConfig, run
    summary = run(EvaluateConfig(run=RunSection(checkpoint=CKPT, envs=("anymdp16",))))

``EvaluateConfig`` holds every setting of ``python -m omnirl.evaluate`` (whose docstring describes
the outputs); ``run`` checks it (``check``), evaluates the model and the baselines and writes the
tables, figures, arrays and summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from omnirl._validate import check_choice, check_int
from omnirl.rundir import EPISODES_FILE, MEMORY_FILE, SCORES_FILE, SUMMARY_FILE
from omnirl.evaluate.baselines import (BANDIT_BASELINES, BASELINES, CQLConfig, PPOConfig, TQLUCBConfig,
                                      run_baseline)
from omnirl.evaluate.baselines.bandits import ThompsonConfig, UCB1Config, UniformConfig
from omnirl.evaluate.envs import ENVIRONMENTS, SUITES, make_batch
from omnirl.evaluate.protocols import ProtocolConfig
from omnirl.evaluate.records import Episodes
from omnirl.evaluate.regret import RegretBatch, is_bandit_batch, is_tabular_batch, regret_numbers

MODEL = "omnirl"
"""Method name of the model in the tables."""
DEFAULT_BASELINES = {"online": ("tql_ucb", "ppo", *BANDIT_BASELINES), "offline": ("cql",), "imitation": ()}
"""Baselines of each protocol when ``run.baselines`` is not set (the bandit ones run on bandits only,
and on AnyMDP with ``run.contextual_bandit``)."""
REGRET_COLUMNS = ("environment", "method", "pulls", "regret@100", "regret@100_se", "regret@500", "regret@500_se",
                  "regret", "regret_se", "regret_score")
"""Columns of the regret table (bandit environments, and AnyMDP with ``run.contextual_bandit``; a
checkpoint beyond the run is empty)."""


@dataclasses.dataclass(frozen=True)
class RunSection:
    """What to evaluate, where, and where the results go."""

    checkpoint: str | None = None
    """Training checkpoint of the model (``None``: evaluate the baselines alone)."""
    suite: str = "anymdp"
    """Environment suite (``anymdp``, ``gym``, ``darkroom``; see ``omnirl.evaluate.envs.SUITES``)."""
    envs: tuple[str, ...] = ()
    """Environment names to evaluate instead of the suite's."""
    n_envs: int = 16
    """Rows (environments, or tasks for AnyMDP) per environment name."""
    steps: int = 2000
    """Acting steps per row, for the model and for every baseline."""
    seed: int = 0
    """Seed of the environments, the model's sampling and the baselines."""
    baselines: tuple[str, ...] | None = None
    """Baselines to run (``tql_ucb``, ``ppo``, ``cql``, and on bandits ``ucb1``, ``thompson``,
    ``uniform``); ``None``: the protocol's defaults."""
    contextual_bandit: bool = False
    """Also measure AnyMDP environments as contextual bandits (a bandit per state): every method's
    expected immediate regret per step is recorded (``omnirl.evaluate.regret``: the regret table
    and ``regret.npz``, 0 for uniform random and 1 for the best immediate action in every state),
    and the bandit baselines run there too, one bandit per observation (``omnirl.evaluate.baselines.bandits``)."""
    curve_bins: int = 16
    """Bins of the learning curves over the acting steps."""
    out_dir: str = "runs/eval"
    """Directory of the tables, figures, arrays and summary."""
    wandb_project: str = "omnirl"
    """W&B project."""
    wandb_mode: str = "auto"
    """``auto`` (online with credentials, else offline), ``online``, ``offline`` or ``disabled``."""

    def __post_init__(self) -> None:
        check_choice("suite", self.suite, SUITES)
        for name in self.envs:
            check_choice("envs", name, ENVIRONMENTS)
        check_int("n_envs", self.n_envs, min_value=1)
        check_int("steps", self.steps, min_value=1)
        check_int("seed", self.seed, min_value=0)
        for name in self.baselines or ():
            check_choice("baselines", name, BASELINES)
        check_int("curve_bins", self.curve_bins, min_value=1)
        check_choice("wandb_mode", self.wandb_mode, ("auto", "online", "offline", "disabled"))

    @property
    def names(self) -> tuple[str, ...]:
        """The environment names this run evaluates."""
        return tuple(self.envs) if self.envs else tuple(SUITES[self.suite])


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """Everything ``python -m omnirl.evaluate`` needs."""

    run: RunSection = dataclasses.field(default_factory=RunSection)
    """What to evaluate and where results go."""
    protocol: ProtocolConfig = dataclasses.field(default_factory=ProtocolConfig)
    """The model's protocol (its ``steps`` are replaced by ``run.steps``)."""
    tql_ucb: TQLUCBConfig = dataclasses.field(default_factory=TQLUCBConfig)
    """TQL-UCB hyper-parameters."""
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    """PPO hyper-parameters."""
    cql: CQLConfig = dataclasses.field(default_factory=CQLConfig)
    """CQL hyper-parameters (its data follows the protocol's demonstrations)."""
    ucb1: UCB1Config = dataclasses.field(default_factory=UCB1Config)
    """UCB1 hyper-parameters (bandits)."""
    thompson: ThompsonConfig = dataclasses.field(default_factory=ThompsonConfig)
    """Thompson sampling's prior and likelihood (bandits)."""
    uniform: UniformConfig = dataclasses.field(default_factory=UniformConfig)
    """The uniform random policy (bandits)."""

    @classmethod
    def prepare_config(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The parsed mapping before it is built (``omnirl.config.build``): the protocol's ``steps``
        are the run's ``run.steps``, so that ``protocol.memory_steps`` is checked against them; a
        ``protocol.steps`` other than ``ProtocolConfig``'s default and ``run.steps`` is refused."""
        run, protocol = data.get("run", {}), data.get("protocol", {})
        if not isinstance(run, Mapping) or not isinstance(protocol, Mapping):
            return data  # the builder names the section that is not a mapping
        steps = run.get("steps", RunSection.steps)
        given = protocol.get("steps", ProtocolConfig.steps)
        if given not in (steps, ProtocolConfig.steps):
            raise ValueError(f"protocol.steps={given!r} differs from run.steps={steps!r}: set run.steps "
                             "(the protocol acts for the run's steps)")
        return {**data, "protocol": {**protocol, "steps": steps}}

    def baselines(self) -> tuple[str, ...]:
        """The baselines to run."""
        if self.run.baselines is not None:
            return tuple(self.run.baselines)
        return DEFAULT_BASELINES[self.protocol.protocol]

    def resolved(self) -> dict[str, Any]:
        """The configuration as the run uses it (the protocol with the run's step count), as plain
        data: what ``summary.json`` records under ``config``."""
        from omnirl.config import config_to_dict

        return config_to_dict(dataclasses.replace(self, protocol=self.protocol_config()))

    def protocol_config(self) -> ProtocolConfig:
        """The protocol with the run's step count."""
        return dataclasses.replace(self.protocol, steps=self.run.steps)

    def baseline_config(self, name: str) -> Any:
        """Hyper-parameters of baseline ``name`` (CQL's data matched to the protocol's)."""
        cfg = getattr(self, name)
        if name == "cql" and self.protocol.demonstrator is not None:
            behaviour = {"oracle": "oracle", "noisy_oracle": "noisy_oracle", "random": "random"}[
                self.protocol.demonstrator]
            cfg = dataclasses.replace(cfg, behaviour=behaviour, epsilon=self.protocol.demo_epsilon,
                                      dataset_steps=self.protocol.demo_steps)
        return cfg


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from omnirl.fileio import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _plot_entropy(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from omnirl.fileio import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6, 4))
    for env, (x, y) in curves.items():
        ax.plot(x, y, label=env)
    ax.set_xlabel("step in context")
    ax.set_ylabel("policy entropy (nats)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check(cfg: EvaluateConfig) -> None:
    """What ``run`` checks before it writes anything: the checkpoint is readable (a truncated or
    foreign file is named now, not after the baselines ran) and ``run.out_dir`` can take this
    evaluation (``check_out_dir``; ``run`` then claims and locks it, ``claim_out_dir``).
    ``ValueError`` naming the setting."""
    if not isinstance(cfg, EvaluateConfig):
        raise TypeError(f"config must be an EvaluateConfig, got {type(cfg).__name__}")
    if cfg.run.checkpoint is not None:
        from omnirl.train.checkpoint import read_checkpoint
        try:
            read_checkpoint(cfg.run.checkpoint)
        except FileNotFoundError as e:
            raise ValueError(str(e)) from None
    check_out_dir(cfg)


def check_out_dir(cfg: EvaluateConfig) -> None:
    """Refuse (ValueError naming ``run.out_dir``) an output directory that is a file, or holds
    something else: a dataset, a task set, a training run, or a finished evaluation with other
    settings (whose results would be replaced). The same evaluation again, or an unfinished one,
    is rewritten."""
    from omnirl.fileio import held_content
    out = Path(cfg.run.out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"run.out_dir={cfg.run.out_dir!r} is a file, not a directory")
    held = held_content(out)
    if held is None:
        return
    if (out / SUMMARY_FILE).is_file():
        try:
            config = json.loads((out / SUMMARY_FILE).read_text())["config"]
        except (OSError, ValueError, KeyError, TypeError):
            config = None
        if config == cfg.resolved():
            return
        held = "an evaluation with other settings (summary.json)"
    elif (out / SCORES_FILE).is_file() and held.endswith(f"({SCORES_FILE})"):
        return  # an evaluation that did not finish
    raise ValueError(f"run.out_dir={cfg.run.out_dir!r} holds {held}; give an evaluation a directory of its own "
                     "(another --run.out_dir)")


@contextlib.contextmanager
def claim_out_dir(cfg: EvaluateConfig) -> Iterator[None]:
    """``run.out_dir`` for this evaluation alone during the block: checked (``check_out_dir``), then
    claimed for its settings (``omnirl.fileio.claim_directory``: another evaluation's settings are
    refused at once, naming the first that differs) and locked (a second run of the same settings
    is refused while this one writes), so two evaluations never mix their files in one directory."""
    from omnirl.config import changed_settings
    from omnirl.fileio import claim_directory, exclusive
    check_out_dir(cfg)

    def differences(new: dict, held: Any) -> list[str]:
        held = held.get("config", {}) if isinstance(held, dict) else {}
        return [f"{k} {old!r} -> {now!r}" for k, now, old in changed_settings(new.get("config", {}), held)][:3]

    claim_directory(cfg.run.out_dir, {"format": "omnirl.evaluation", "config": cfg.resolved()}, "evaluation",
                    differences)
    with exclusive(cfg.run.out_dir, "evaluation"):
        yield


def run(cfg: EvaluateConfig, log=_progress) -> dict[str, Any]:
    """Run the evaluation ``cfg`` describes and write its outputs into ``run.out_dir``; returns the
    summary (also written as ``summary.json``). Progress lines go to ``log`` (default: standard
    error). Bad settings raise ``ValueError`` (``check``) before anything is written."""
    check(cfg)
    with claim_out_dir(cfg):
        return _run(cfg, log)


def _run(cfg: EvaluateConfig, log) -> dict[str, Any]:
    from omnirl.evaluate.report import plot_curves, table_rows, write_table
    from omnirl.fileio import atomic_write_json

    out = Path(cfg.run.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = None
    if cfg.run.checkpoint is not None:
        from omnirl.train.checkpoint import load_model
        model = load_model(cfg.run.checkpoint)
    protocol = cfg.protocol_config()
    results: dict[tuple[str, str], Episodes] = {}
    skipped: dict[str, str] = {}
    entropy: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    memory: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {}
    regret: dict[tuple[str, str], RegretBatch] = {}

    def new_batch(name: str, method: str):
        batch = make_batch(name, cfg.run.n_envs, seed=cfg.run.seed)
        if is_bandit_batch(batch) or (cfg.run.contextual_bandit and is_tabular_batch(batch)):
            # every step's expected immediate regret is recorded
            batch = regret[(name, method)] = RegretBatch(batch)
        return batch

    for name in cfg.run.names:
        if model is not None:
            from omnirl.evaluate.protocols import evaluate_model

            batch = new_batch(name, MODEL)
            c = model.config
            too_big = [i for i in batch.infos if i.n_obs > c.n_obs or i.n_actions > c.n_actions]
            if too_big:
                skipped[name] = (f"the model reads {c.n_obs} observation ids and {c.n_actions} actions; {name} has "
                                 f"{too_big[0].n_obs} observation ids and {too_big[0].n_actions} actions")
                log(f"{name}: skipped for the model ({skipped[name]})")
            else:
                t0 = time.perf_counter()
                r = evaluate_model(model, batch, protocol, cfg.run.seed)
                timing[f"{name}/{MODEL}"] = time.perf_counter() - t0
                results[(name, MODEL)] = r.episodes
                entropy[name] = (r.entropy_steps, r.entropy)
                for step, m in r.memory.items():
                    memory[f"{name}/{step}"] = m
                log(f"{name}: {MODEL} {r.episodes.final():.3f} ({r.timing['env_steps_per_s']:.0f} env steps/s)")
        for b in cfg.baselines():
            if b in BANDIT_BASELINES and not (ENVIRONMENTS[name].family == "bandit" or (
                    cfg.run.contextual_bandit and ENVIRONMENTS[name].family == "anymdp")):
                continue
            batch = new_batch(name, b)
            t0 = time.perf_counter()
            results[(name, b)] = run_baseline(b, batch, cfg.run.steps, cfg.run.seed, cfg.baseline_config(b))
            timing[f"{name}/{b}"] = time.perf_counter() - t0
            log(f"{name}: {b} {results[(name, b)].final():.3f}")

    rows = table_rows(results)
    csv_path, md_path = write_table(rows, out)
    # (regret, gaps) (B, steps) of every finished (environment, method), stacked once
    recorded = {k: (b.regret(), b.gaps()) for k, b in regret.items() if k in results}
    regret_rows = [{"environment": env, "method": method, **regret_numbers(r, g)}
                   for (env, method), (r, g) in recorded.items()]
    regret_files = {}
    if regret_rows:
        regret_rows = [{c: r.get(c, float("nan")) for c in REGRET_COLUMNS} for r in regret_rows]
        regret_files = dict(zip(("regret_csv", "regret_markdown"),
                                (p.name for p in write_table(regret_rows, out, "regret", REGRET_COLUMNS))))
        arrays = {f"{env}/{method}": r.astype(np.float32) for (env, method), (r, _) in recorded.items()}
        for (env, method), (_, g) in recorded.items():
            if is_bandit_batch(regret[(env, method)].batch):  # a bandit's gap is the same at every pull
                arrays[f"{env}/gap"] = g.mean(axis=1)
            else:  # per step on MDPs: the uniform policy's regret depends on the states each method visits
                arrays[f"{env}/{method}/gap"] = g.astype(np.float32)
        _save_npz(out / "regret.npz", arrays)
        regret_files["regret_arrays"] = "regret.npz"
    figures = {}
    if results:
        figures["curves"] = plot_curves(results, out / "curves.png", bins=cfg.run.curve_bins,
                                        title=f"{protocol.protocol} RL, seed {cfg.run.seed}")
    if entropy:
        _plot_entropy(entropy, out / "entropy.png")
        figures["entropy"] = out / "entropy.png"
    episodes = {f"{env}/{method}/{col}": v for (env, method), eps in results.items()
                for col, v in eps.columns().items()}
    _save_npz(out / EPISODES_FILE, episodes)
    if memory:
        families = {name: make_batch(name, 1, seed=cfg.run.seed).infos[0].family for name in cfg.run.names}
        _save_npz(out / MEMORY_FILE, {**memory, **{f"{k}/family": np.array(families[k.split("/")[0]])
                                                    for k in memory}})
    summary = {"config": cfg.resolved(), "rows": rows,
               "regret": regret_rows, "skipped": skipped, "seconds": timing,
               "files": {"csv": csv_path.name, "markdown": md_path.name, **regret_files,
                         **{k: Path(v).name for k, v in figures.items()}}}
    atomic_write_json(out / SUMMARY_FILE, summary)
    _log_wandb(cfg, rows, figures, summary)
    return summary


def _log_wandb(cfg: EvaluateConfig, rows: list[dict], figures: dict[str, Path], summary: dict) -> None:
    from omnirl.rundir import git_provenance, wandb_mode

    mode = wandb_mode(cfg.run.wandb_mode)
    if mode == "disabled":
        return
    import wandb

    run = wandb.init(project=cfg.run.wandb_project, dir=cfg.run.out_dir, mode=mode, job_type="evaluate",
                     config={**summary["config"], "provenance": {"git": git_provenance()}})
    try:
        columns = list(rows[0]) if rows else []
        payload: dict[str, Any] = {"scores": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])}
        for key, path in figures.items():
            payload[key] = wandb.Image(str(path))
        run.log(payload)
        for r in rows:
            run.summary[f"{r['environment']}/{r['method']}/performance"] = r["performance"]
    finally:
        run.finish()
