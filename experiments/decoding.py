"""Online decoding: how the trained model should sample its own actions, measured.

    python -m experiments.decoding --checkpoint=runs/bandits-laptop/train   # a model learning from rewards
    python -m experiments.decoding --checkpoint=RUN --envs='["anymdp16"]' --n_envs=64 --steps=1000

A model acting online chooses two things the training data never fixed: the sampling temperature
of its policy, and the tag (who acted) its own actions enter its context with. For one trained model
(``--checkpoint``: a ``.ckpt`` file or a training run directory), every combination of

* a temperature schedule (``SCHEDULES``): ``constant`` (1.0 throughout), ``annealed`` (linear from
  1.0 to 0.1 over the acting steps: the reference's schedule, 1.0 -> 0.1, compressed into the run)
  and ``greedy`` (temperature 0: the most likely action);
* and an own-action tag (``own_tags``): 7 (unknown, what the reference uses), 6 (random: the tag
  of the exploratory actions of the training data) or 4 (a model-based learner)

is run with ``omnirl.evaluate`` (online protocol, the same environments and seed for all, so the
differences are paired). Reported per environment and variant: the normalised score of the last
quarter of the run and of the first quarter (per task, mean and standard error over tasks), and on
bandits the cumulative expected regret after 100 and 500 pulls and the regret score (1 - regret
over uniform random's; on AnyMDP too with ``contextual_bandit``, whose score is then the
immediate-regret score). ``best`` names the variant with the highest last-quarter score per
environment (on bandits: the lowest regret at the end of the run), and whether it is resolved
(``RESOLVE`` standard errors) against the reference's decoding (``BASE_SCHEDULE``, ``BASE_TAG``).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

from experiments._common import Invocation, finish, parse
from omnirl.experiment import evaluate_once, log
from omnirl.rundir import cpu_seconds
from experiments._scores import differs, online_scores
from omnirl.evaluate.envs import ENVIRONMENTS
from omnirl._validate import check_choice, check_int
from omnirl.agents.prior import N_PRIOR, PriorInfo

NAME = "decoding"
MODEL = "omnirl"
SCHEDULES: dict[str, dict[str, Any]] = {
    "constant": {"protocol.t_initial": 1.0, "protocol.t_final": 1.0},
    "annealed": {"protocol.t_initial": 1.0, "protocol.t_final": 0.1},  # t_steps: the run's steps
    "greedy": {"protocol.t_initial": 0.0, "protocol.t_final": 0.0},
}
"""Temperature schedules by name (``ProtocolConfig`` fields)."""
BASE_SCHEDULE, BASE_TAG = "constant", int(PriorInfo.UNKNOWN)
"""The variant the others are compared with: the reference's online decoding (temperature 1.0,
annealed over 10,000 steps, so nearly constant in shorter runs; own actions tagged 7)."""


@dataclasses.dataclass(frozen=True)
class DecodingSettings:
    """What ``python -m experiments.decoding`` runs."""

    checkpoint: str | None = None
    """The trained model (a ``.ckpt`` file or a training run directory); required on the command line."""
    envs: tuple[str, ...] = ("bandit5",)
    """Environments (names of ``omnirl.evaluate.envs.ENVIRONMENTS``)."""
    n_envs: int = 64
    """Rows (tasks) per environment."""
    steps: int = 500
    """Acting steps per row."""
    schedules: tuple[str, ...] = tuple(SCHEDULES)
    """Temperature schedules to compare (names of ``SCHEDULES``)."""
    own_tags: tuple[int, ...] = (int(PriorInfo.UNKNOWN), int(PriorInfo.RANDOM), int(PriorInfo.MODEL_BASED))
    """Tags of the agent's own actions to compare (prior ids)."""
    prompt: int = int(PriorInfo.ORACLE_G0994)
    """Prompt of every step (``omnirl.evaluate.protocols.ProtocolConfig.prompt``): the oracle whose
    action the model is asked for, 3 (the reference policy) or, for a model trained on gamma-0
    labels (the ladder's contextual bandit), 0."""
    torch_threads: int = 1
    """Torch threads of the evaluations."""
    contextual_bandit: bool = False
    """Score AnyMDP environments as contextual bandits (``omnirl.evaluate.regret``: the immediate
    regret of every step, 0 uniform random, 1 the best immediate action in every state), as the
    contextual-bandit rung of ``experiments.icrl_ladder`` does: for a model trained on gamma-0
    labels. Its regret then ranks the variants, as on bandits."""

    def __post_init__(self) -> None:
        from omnirl.evaluate.envs import ENVIRONMENTS

        from omnirl.train.checkpoint import check_checkpoint

        check_checkpoint(self.checkpoint)
        for name, values in (("envs", self.envs), ("schedules", self.schedules), ("own_tags", self.own_tags)):
            if isinstance(values, (str, bytes)) or not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be a non-empty list without repeats, got {values!r}")
        for e in self.envs:
            check_choice("envs", e, ENVIRONMENTS)
        for sch in self.schedules:
            check_choice("schedules", sch, SCHEDULES)
        for t in self.own_tags:
            check_int("own_tags", t, min_value=0, max_value=N_PRIOR - 1)
        check_int("n_envs", self.n_envs, min_value=2)
        check_int("steps", self.steps, min_value=4)
        check_int("torch_threads", self.torch_threads, min_value=0)
        check_int("prompt", self.prompt, min_value=0, max_value=int(PriorInfo.ORACLE_G0994))


PRESETS = {
    "smoke": DecodingSettings(envs=("bandit5", "anymdp16"), n_envs=4, steps=24),
    "laptop": DecodingSettings(),
    "paper": DecodingSettings(envs=("bandit5", "anymdp16", "anymdp32"), n_envs=256, steps=2000),
}
"""Presets; each needs ``--checkpoint``."""


def variant_name(schedule: str, tag: int) -> str:
    return f"{schedule}/tag{tag}"


def run(inv: Invocation) -> dict:
    s: DecodingSettings = inv.settings
    t0, c0 = time.perf_counter(), cpu_seconds()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for schedule in s.schedules:
        for tag in s.own_tags:
            v = variant_name(schedule, tag)
            log(f"decoding: {v}")
            out = inv.out / "eval" / f"{schedule}-tag{tag}"
            fields = {**SCHEDULES[schedule], "protocol.t_steps": s.steps, "protocol.own_tag": tag,
                      "protocol.prompt": s.prompt}
            summ = evaluate_once(out, threads=s.torch_threads, checkpoint=s.checkpoint, envs=list(s.envs),
                                 protocol="online", n_envs=s.n_envs, steps=s.steps, seed=inv.seed, baselines=[],
                                 **({"contextual_bandit": True} if s.contextual_bandit else {}), **fields)
            regret = {r["environment"]: r for r in summ.get("regret", []) if r["method"] == MODEL}
            for env in s.envs:
                if env in summ["skipped"]:
                    continue
                contextual = s.contextual_bandit and ENVIRONMENTS[env].family == "anymdp"
                sc = online_scores(out, env, MODEL, s.n_envs, contextual=contextual)
                row = {"performance": sc["performance"], "se": sc["se"], "first_quarter": sc["first_quarter"],
                       "first_quarter_se": sc["first_quarter_se"], "per_task": sc["per_task"]}
                if env in regret:
                    row.update({k: regret[env].get(k) for k in ("regret@100", "regret@500", "regret", "regret_se",
                                                                "regret_score")})
                    row["regret_se"] = row["regret_se"] if row["regret_se"] is not None else float("nan")
                results.setdefault(env, {})[v] = row
    table, best = [], {}
    base = variant_name(BASE_SCHEDULE, BASE_TAG)
    for env, rows in results.items():
        bandit = all(r.get("regret") is not None for r in rows.values())
        key = (lambda v: -rows[v]["regret"]) if bandit else (lambda v: rows[v]["performance"])
        top = max(rows, key=key)
        resolved = None
        if base in rows and top != base:
            resolved = differs(rows[top], rows[base], "regret" if bandit else "performance") != 0
        best[env] = {"variant": top, "resolved_against_base": resolved}
        for v, r in rows.items():
            table.append({"environment": env, "variant": v, "performance": r["performance"], "se": r["se"],
                          "first_quarter": r["first_quarter"], "regret@100": r.get("regret@100"),
                          "regret@500": r.get("regret@500"), "regret": r.get("regret"),
                          "regret_score": r.get("regret_score"), "best": "yes" if v == top else ""})
    finding = "; ".join(f"{env}: best {b['variant']}" + (
        "" if b["resolved_against_base"] is None else
        f" ({'resolved' if b['resolved_against_base'] else 'not resolved'} against the reference's {base})")
        for env, b in best.items())
    results_out = {"variants": results, "best": best, "base": base, "cpu_seconds": cpu_seconds() - c0}
    return finish(inv, NAME, results=results_out, table=table, figures=[], finding=finding,
                  seconds=time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    inv = parse(NAME, PRESETS, argv, __doc__)
    if inv.settings.checkpoint is None:
        print(f"python -m experiments.{NAME}: error: --checkpoint is required (a .ckpt file or a training run "
              "directory), got none", file=sys.stderr)
        return 2
    inv.out.mkdir(parents=True, exist_ok=True)
    run(inv)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
