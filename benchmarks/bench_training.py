"""Meta-training on the CPU: throughput of the real training step and of the training command line,
memory against sequence length under segment-wise truncated back-propagation, and data-loading
throughput.

    python benchmarks/bench_training.py [--backbones rwkv7,gdn,gsa,mamba2] [--batch 8] [--window 512]
        [--segment 128] [--warmup 3] [--steps 20] [--memory-backbone gdn]
        [--memory-lengths 256,1024,4096] [--memory-segment 128] [--loader-workers 0,1]
        [--loader-batches 1000] [--tasks 64] [--sequences 64] [--cli-backbone gdn] [--cli-steps 60]
        [--compile-backbones rwkv7,gdn,gsa,mamba2] [--gpu-batch 8] [--gpu-window 4096] [--gpu-steps 10]
        [--threads 1] [--seed 0] [--quick] [--out FILE]

Everything runs in fp32 on ``--threads`` CPU threads (default one, like the other benchmarks). One
JSON document goes to stdout (progress to stderr); ``--out FILE`` also writes it there atomically.

The data: a small dataset generated at the start into a temporary directory with omnirl's own
functions (``prepare_task_set`` + ``generate_dataset``, the ``omnirl`` pipeline, S = 16, A = 5,
default 64 tasks and 64 sequences, fixed seeds), its sequences long enough for the longest window
of any section (one step more than the largest ``T``).

``training``
    For the ``tiny`` preset of each backbone, ``OmniRLModule(TrainConfig)`` is fitted by a
    ``lightning.Trainer`` (CPU, fp32, no logger, checkpoints or validation) on the generated data
    through ``OmniRLDataModule``: what ``python -m omnirl.train`` runs, i.e. per batch of ``B``
    random windows of ``T`` steps (default B = 8, T = 512), forward + backward over segments of
    ``L`` steps (default 128) with the state carried and detached between them, then the clipped
    AdamW and schedule step. A callback times each batch from ``on_train_batch_start`` to
    ``on_train_batch_end`` (the training step; data loading happens outside it); after
    ``--warmup`` untimed batches, ``--steps`` batches are timed. Reported: parameters, the median
    step time, ``steps_per_s`` (optimiser steps per second, from the median) and ``tokens_per_s``
    (environment steps per second, ``B * T * steps_per_s``), plus ``loop_steps_per_s``: timed
    batches over the wall time of the timed part of the loop, data loading and Lightning's loop
    included, ``median_step_cpu_s`` (the process's CPU time per step) and ``cpu_share``: its CPU time
    over the wall time of the timed steps (about ``--threads`` on an idle machine; less means the
    benchmark shared its cores with other work, and the rates above are low by about that factor).

``memory``
    Peak resident memory of one training step of ``--memory-backbone`` (default ``gdn``, tiny, batch
    ``B``) against the window ``T`` (default 256, 1024, 4096) at a fixed segment ``L`` (default 128),
    and, as a control, the same ``T`` without truncation (``L = T``: one segment, gradients through
    the whole window). Every (T, L) runs in a new process (forked, where there is ``fork``, from this
    one after the imports and the data generation and before anything has trained, so no earlier
    step has grown its heap; otherwise spawned) that fits the module with a ``lightning.Trainer``
    (as in ``training``) for two batches; the second is measured: just
    before it the process returns freed heap memory to the system (``malloc_trim``), resets its
    peak resident set size (``/proc/self/clear_refs``, falling back to ``ru_maxrss``) and reads its
    resident set size; just after it reads the peak. ``delta_mib`` = peak - before: the memory the
    step itself needed. ``ratio_largest_to_smallest_T`` is ``delta_mib`` at the largest ``T`` over
    ``delta_mib`` at the smallest, for truncated and untruncated training. The rule: memory is
    ``flat`` in ``T`` when the truncated ratio is <= 1.25 (``FLAT_RATIO``), i.e. the step's memory
    depends on the segment, not on the sequence; the untruncated control grows with ``T``.

``cli``
    What a user runs: ``python -m omnirl.train --config CFG`` as a whole process, timed from start
    to exit, where ``CFG`` sets only the training section's workload (``--cli-backbone``, default
    ``gdn``, tiny, on the generated data, ``B``, ``T``, ``L``, ``train.max_steps``) and
    ``logging.wandb_mode: offline`` (what the default does without W&B credentials, and never an
    upload); everything else at its defaults (checkpoints, run tracking, Lightning's loop), torch
    on ``--threads`` threads through ``OMP_NUM_THREADS``. It runs twice: for ``--cli-steps``
    optimiser steps (default 60) and for one step (the fixed cost: start-up, imports, set-up,
    final checkpoint). Reported: the whole process's ``steps_per_s`` (steps over wall time), the
    one-step run's ``startup_s``, ``marginal_steps_per_s`` = ``(steps - 1) / (wall - startup_s)``,
    and the training section's median rate over each (``ratio``, ``marginal_ratio``); the target
    is ``ratio`` <= 1.5 (``CLI_TARGET``).

``compile``
    Eager against ``torch.compile`` (``train.compile``) for each of ``--compile-backbones`` (default
    all four; none with ``--quick``): the training section's fit, run again with ``train.compile:
    true`` on the same data, seeds and batches. Its first batch (which compiles) is timed on its own
    (``compile_s``: that batch's time less the eager median step); then ``--warmup`` untimed and
    ``--steps`` timed batches as above. Reported per backbone: both median step times, ``speedup``
    (eager median over compiled median), ``break_even_steps`` (``compile_s`` over the time a step
    saves: the run length from which compiling pays), and ``max_loss_rel_diff``, the largest
    relative difference between the two runs' training losses, batch by batch. ``adopt`` is the
    rule for making it the default: ``speedup >= 1.3`` (``COMPILE_TARGET``) and losses equal within
    ``LOSS_RTOL``. The command line is also timed with ``train.compile: true`` (``cli.compiled``),
    what a user who sets it gets as a whole process.

``gpu``
    Only where a CUDA device is present (otherwise ``{"skipped": reason}``): for each backbone of
    ``--backbones`` at the ``paper`` preset, bf16 autocast, fla's kernels (``omnirl.model.ops.dispatch``),
    batches of ``--gpu-batch`` windows of ``--gpu-window`` steps with segments of ``--segment``
    steps, random valid steps (the data's contents do not change the cost), forward and backward
    through every segment and an AdamW step: after two untimed steps, ``--gpu-steps`` timed ones
    (synchronised). Reported: parameters, median step time, ``tokens_per_s`` (``B * T`` per step)
    and ``peak_memory_mib`` (``torch.cuda.max_memory_allocated``). One short run on a GPU machine
    measures it; the CPU run never needs a GPU.

``loading``
    Random windows of ``T + 1`` steps read from the memory-mapped shards by the classes training
    uses (``OmniRLDataModule(DataSection).train_dataloader()``: ``WindowDataset``, ``EpochSampler``,
    ``ResumableDataLoader``), batches of ``B`` (the training section's sizes), with each
    ``--loader-workers`` count (default 0 and 1). After two untimed batches, ``--loader-batches``
    batches are timed (epochs follow one another, as in training). Reported: batches/s and
    environment steps/s (``B * T`` per batch). ``ratio_to_training`` = the loader's environment
    steps/s with the fewest workers (0 by default) over the fastest backbone's training
    ``tokens_per_s``; target >= 10 (``meets_target``): loading must not be what limits training.
    (A worker process is slower than none here: each batch's tensors cross to the main process
    through shared memory, which costs more than reading the windows of these small batches.)
"""

from __future__ import annotations

# first: importing _common sets one BLAS thread per process before numpy loads
from _common import emit, int_list, log, machine_info, positive_int, run_command

import argparse  # noqa: E402
import ctypes  # noqa: E402
import ctypes.util  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import lightning  # noqa: E402
import torch  # noqa: E402

from omnirl.data.generate import DatasetSpec, generate_dataset, prepare_task_set  # noqa: E402
from omnirl.model.backbone import BACKBONES  # noqa: E402
from omnirl.train.config import DataSection, LoggingSection, ModelSection, TrainConfig, TrainSection  # noqa: E402
from omnirl.train.data import OmniRLDataModule  # noqa: E402
from omnirl.train.module import OmniRLModule, detach_model_state  # noqa: E402

S, A = 16, 5  # observed states, actions of the generated data
PIPELINE = "omnirl"
FLAT_RATIO = 1.25  # truncated delta at the largest T / at the smallest T: at most this is "flat"
TARGET_LOADER_RATIO = 10.0  # loader env steps/s over the fastest training tokens/s
LOADER_WARMUP = 2  # untimed batches before the loader is timed
CLI_TARGET = 1.5  # most training-section steps/s over the command line's
COMPILE_TARGET = 1.3  # least speed-up (eager median step over compiled) for compiling by default
LOSS_RTOL = 1e-4  # largest relative difference of compiled and eager training losses counted equal

DEFAULTS = {"batch": 8, "window": 512, "segment": 128, "warmup": 3, "steps": 20,
            "memory_lengths": [256, 1024, 4096], "memory_segment": 128, "loader_workers": [0, 1],
            "loader_batches": 1000, "tasks": 64, "sequences": 64, "cli_steps": 60,
            "gpu_batch": 8, "gpu_window": 4096, "gpu_steps": 10}
QUICK = {"batch": 2, "window": 64, "segment": 32, "warmup": 1, "steps": 2,
         "memory_lengths": [64, 128], "memory_segment": 32, "loader_workers": [0],
         "loader_batches": 10, "tasks": 8, "sequences": 16, "cli_steps": 3,
         "gpu_batch": 2, "gpu_window": 256, "gpu_steps": 2}
HELP = {"batch": "sequences per batch (training, memory, loading)",
        "window": "steps T per training window (training, loading)",
        "segment": "steps L per segment of truncated back-propagation (training)",
        "warmup": "untimed training batches per backbone",
        "steps": "timed training batches per backbone",
        "memory_segment": "segment L of the memory section's truncated runs",
        "loader_batches": "timed loader batches per worker count",
        "tasks": "tasks of the generated dataset", "sequences": "sequences of the generated dataset",
        "cli_steps": "optimiser steps of the timed command line",
        "gpu_batch": "sequences per batch (gpu)", "gpu_window": "steps T per window (gpu)",
        "gpu_steps": "timed steps per backbone (gpu)"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", type=_names, default=list(BACKBONES),
                   help="comma-separated backbones (default: rwkv7,gdn,gsa,mamba2)")
    for key, help_ in HELP.items():
        p.add_argument("--" + key.replace("_", "-"), type=positive_int, default=None,
                       help=f"{help_} (default: {DEFAULTS[key]}, or {QUICK[key]} with --quick)")
    p.add_argument("--memory-backbone", type=_name, default="gdn", help="backbone of the memory section")
    p.add_argument("--cli-backbone", type=_name, default="gdn",
                   help="backbone of the command-line section (default: gdn; also trained in the training "
                        "section, which is added to --backbones if missing)")
    p.add_argument("--memory-lengths", type=lambda s: int_list(s, "--memory-lengths", 2), default=None,
                   help="comma-separated windows T of the memory section (default: "
                        f"{','.join(map(str, DEFAULTS['memory_lengths']))})")
    p.add_argument("--loader-workers", type=lambda s: int_list(s, "--loader-workers", 0), default=None,
                   help="comma-separated data-loader worker counts (default: 0,1)")
    p.add_argument("--compile-backbones", type=lambda t: _names(t, "--compile-backbones", allow_none=True),
                   default=None, help="comma-separated backbones of the compile section, '' for none "
                                      "(default: all four, none with --quick)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here (atomically)")
    return p


def _name(text: str) -> str:
    if text not in BACKBONES:
        raise argparse.ArgumentTypeError(f"must be one of {','.join(BACKBONES)}, got {text!r}")
    return text


def _names(text: str, flag: str = "--backbones", allow_none: bool = False) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in BACKBONES]
    if (not names and not allow_none) or bad:
        raise argparse.ArgumentTypeError(f"{flag} must be names from {','.join(BACKBONES)}, got {text!r}")
    return names


def _settings(args) -> dict:
    base = QUICK if args.quick else DEFAULTS
    s = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in base.items()}
    s["memory_lengths"] = sorted(set(s["memory_lengths"]))
    s["loader_workers"] = sorted(set(s["loader_workers"]))
    if s["window"] < s["segment"]:
        raise SystemExit(f"bench_training: --window {s['window']} must be >= --segment {s['segment']}")
    if s["memory_lengths"][0] < s["memory_segment"]:
        raise SystemExit(f"bench_training: --memory-lengths must all be >= --memory-segment {s['memory_segment']}")
    if s["sequences"] % s["batch"]:
        raise SystemExit(f"bench_training: --sequences {s['sequences']} must be a multiple of --batch "
                         f"{s['batch']} (every batch full)")
    if args.seed < 0:
        raise SystemExit(f"bench_training: --seed must be >= 0, got {args.seed}")
    backbones = list(args.backbones) + ([] if args.cli_backbone in args.backbones else [args.cli_backbone])
    compile_backbones = args.compile_backbones
    if compile_backbones is None:
        compile_backbones = [] if args.quick else list(BACKBONES)
    s.update(backbones=backbones, compile_backbones=compile_backbones, memory_backbone=args.memory_backbone,
             cli_backbone=args.cli_backbone,
             threads=args.threads, seed=args.seed, quick=args.quick)
    return s


def _quiet_lightning() -> None:
    """Lightning's hardware banner and data-loader advice are not progress: keep stderr readable."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")


# ---------------------------------------------------------------------------- data


def make_dataset(root: Path, tasks: int, sequences: int, length: int, seed: int) -> dict:
    """Generate the benchmark's dataset in ``root/train`` (task set in ``root/train/tasks``)."""
    out = root / "train"
    t0 = time.perf_counter()
    task_dir = prepare_task_set(out, tasks, str(S), A, task_seed=seed)
    spec = DatasetSpec(pipeline=PIPELINE, n_sequences=sequences, length=length, n_obs=S, n_actions=A,
                       seed=seed, task_set=str(task_dir))
    manifest = generate_dataset(spec, out)
    return {"pipeline": PIPELINE, "n_obs": S, "n_actions": A, "tasks": tasks,
            "sequences": manifest["n_sequences"], "length": manifest["length"],
            "shards": manifest["n_shards"], "seconds": time.perf_counter() - t0}


def train_config(data: str, backbone: str, B: int, T: int, L: int, max_steps: int, seed: int,
                 out_dir: str, compile_: bool = False) -> TrainConfig:
    return TrainConfig(model=ModelSection(backbone=backbone, size="tiny", n_obs=S, n_actions=A),
                       data=DataSection(train=(data,), window=T, batch_size=B, num_workers=0, seed=seed),
                       train=TrainSection(segment_len=L, max_steps=max_steps, seed=seed, compile=compile_),
                       logging=LoggingSection(out_dir=out_dir, wandb_mode="disabled"))


def fit(cfg: TrainConfig, callback: lightning.Callback) -> OmniRLModule:
    """Fit ``OmniRLModule(cfg)`` on ``cfg.data`` for ``cfg.train.max_steps`` optimiser steps with a
    plain CPU ``lightning.Trainer`` (no logger, checkpoints or validation), calling ``callback``."""
    torch.manual_seed(cfg.train.seed)
    data = OmniRLDataModule(cfg.data)
    module = OmniRLModule(cfg)
    module.val_names = list(data.val_names)
    trainer = lightning.Trainer(accelerator="cpu", devices=1, max_steps=cfg.train.max_steps, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                                precision=cfg.train.precision, default_root_dir=cfg.logging.out_dir,
                                callbacks=[callback])
    trainer.fit(module, datamodule=data)
    if trainer.global_step != cfg.train.max_steps:
        raise RuntimeError(f"the trainer stopped after {trainer.global_step} of {cfg.train.max_steps} steps")
    return module


# ---------------------------------------------------------------------------- 1. training


class StepTimer(lightning.Callback):
    """Times every batch after the first ``warmup``, from ``on_train_batch_start`` to ``on_train_batch_end``
    (the training step), and the loop's wall time from the end of the last warm-up batch."""

    def __init__(self, warmup: int):
        self.warmup, self.n, self.times, self.cpu_times, self.losses = warmup, 0, [], [], []
        self._t0 = self._c0 = self.loop_start = self.loop_end = self.first_s = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        t, c = time.perf_counter(), time.process_time()
        self.n += 1
        self.losses.append(float(trainer.callback_metrics["train/loss"]))
        if self.n == 1:
            self.first_s = t - self._t0
        if self.n == self.warmup:
            self.loop_start = t
        elif self.n > self.warmup:
            self.times.append(t - self._t0)
            self.cpu_times.append(c - self._c0)
            self.loop_end = t


def bench_training(name: str, data: str, B: int, T: int, L: int, warmup: int, steps: int, seed: int,
                   tmp: str, compile_: bool = False) -> dict:
    cfg = train_config(data, name, B, T, L, warmup + steps, seed, tmp, compile_)
    timer = StepTimer(warmup)
    module = fit(cfg, timer)
    timed = len(timer.times)  # = steps, unless a non-finite batch was skipped (no optimiser step)
    median = statistics.median(timer.times)
    return {"backbone": name, "preset": "tiny", "batch": B, "window": T, "segment": L,
            "segments_per_step": -(-T // L), "parameters": sum(p.numel() for p in module.parameters()),
            "median_step_s": median, "min_step_s": min(timer.times), "steps_per_s": 1.0 / median,
            "tokens_per_s": B * T / median,
            "loop_steps_per_s": timed / (timer.loop_end - timer.loop_start),
            "cpu_share": sum(timer.cpu_times) / sum(timer.times),
            "median_step_cpu_s": statistics.median(timer.cpu_times),
            "skipped_steps": module.skipped_steps, "warmup": warmup, "timed_steps": timed,
            "first_step_s": timer.first_s, "losses": timer.losses}


def bench_compile(eager: dict, data: str, s: dict, tmp: str) -> dict:
    """The training section's fit of ``eager["backbone"]`` again with ``train.compile``, beside ``eager``."""
    row = bench_training(eager["backbone"], data, s["batch"], s["window"], s["segment"], s["warmup"], s["steps"],
                         s["seed"], tmp, compile_=True)
    saved = eager["median_step_s"] - row["median_step_s"]
    compile_s = row["first_step_s"] - eager["median_step_s"]
    diffs = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(row["losses"], eager["losses"])]
    speedup = eager["median_step_s"] / row["median_step_s"]
    equal = len(row["losses"]) == len(eager["losses"]) and max(diffs) <= LOSS_RTOL
    return {"backbone": eager["backbone"], "eager_median_step_s": eager["median_step_s"],
            "compiled_median_step_s": row["median_step_s"], "speedup": speedup, "compile_s": compile_s,
            "break_even_steps": compile_s / saved if saved > 0 else None,
            "compiled_tokens_per_s": row["tokens_per_s"], "compiled_cpu_share": row["cpu_share"],
            "max_loss_rel_diff": max(diffs), "losses_equal": bool(equal),
            "adopt": bool(equal and speedup >= COMPILE_TARGET), "target_speedup": COMPILE_TARGET}


# ---------------------------------------------------------------------------- 2. memory


def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def _reset_peak() -> bool:
    """Reset the peak resident set size (VmHWM) to the current one (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _malloc_trim() -> bool:
    """Give freed heap memory back to the system (glibc), so the baseline is what is in use."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc
        return False
    return True


def _rss_kib() -> int:
    rss = _status_kib("VmRSS")
    if rss is None:  # no /proc: the peak so far is the best available
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss


class PeakMemory(lightning.Callback):
    """Resident memory before batch ``measure`` (0-based) and its peak during it."""

    def __init__(self, measure: int):
        self.measure, self.n = measure, 0
        self.before_kib = self.peak_kib = 0
        self.method, self.trimmed, self.seconds = "", False, 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.n == self.measure:
            gc.collect()
            self.trimmed = _malloc_trim()
            self.method = "VmHWM after clear_refs" if _reset_peak() else "ru_maxrss"
            self.before_kib = _rss_kib()
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.n == self.measure:
            self.seconds = time.perf_counter() - self._t0
            if self.method == "ru_maxrss":
                self.peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            else:
                self.peak_kib = _status_kib("VmHWM")
        self.n += 1


def memory_child(spec: dict) -> dict:
    """One (T, L) of the memory section, run in a fresh process: fit two batches, measure the second."""
    torch.set_num_threads(spec["threads"])
    with tempfile.TemporaryDirectory(prefix="bench_training_mem_") as tmp:
        cfg = train_config(spec["data"], spec["backbone"], spec["batch"], spec["window"], spec["segment"],
                           2, spec["seed"], tmp)
        probe = PeakMemory(measure=1)
        fit(cfg, probe)
    mib = 1 / 1024
    return {"T": spec["window"], "segment": spec["segment"], "segments": -(-spec["window"] // spec["segment"]),
            "rss_before_mib": probe.before_kib * mib, "peak_rss_mib": probe.peak_kib * mib,
            "delta_mib": (probe.peak_kib - probe.before_kib) * mib, "step_s": probe.seconds,
            "method": probe.method, "malloc_trim": probe.trimmed}


def _child_entry(conn, spec: dict) -> None:
    try:
        conn.send(("ok", memory_child(spec)))
    except BaseException:  # noqa: BLE001 - reported by the parent
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def run_memory_child(spec: dict, ctx) -> dict:
    """``memory_child(spec)`` in a new process of the multiprocessing context ``ctx``."""
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_entry, args=(child, spec), daemon=True)
    proc.start()
    child.close()
    try:
        status, value = parent.recv()
    except EOFError:  # died without a word (e.g. killed for lack of memory)
        status, value = "error", "no result"
    proc.join()
    if status != "ok":
        raise RuntimeError(f"memory child {spec} failed (exit code {proc.exitcode}):\n{value}")
    return value


def _ratio(rows: list[dict]) -> float | None:
    """``delta_mib`` at the largest T over that at the smallest (None if the smallest is not > 0)."""
    lo, hi = rows[0]["delta_mib"], rows[-1]["delta_mib"]
    return hi / lo if lo > 0 else None


def bench_memory(data: str, backbone: str, B: int, lengths: list[int], L: int, threads: int, seed: int) -> dict:
    # fork (where there is fork): a new process that has not run anything yet but the imports and the
    # data generation, and does not pay for importing torch and Lightning again
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    rows, truncated, untruncated = [], [], []
    for T in lengths:
        base = {"data": data, "backbone": backbone, "batch": B, "window": T, "threads": threads, "seed": seed}
        tr = run_memory_child({**base, "segment": L}, ctx)
        un = run_memory_child({**base, "segment": T}, ctx)
        truncated.append(tr)
        untruncated.append(un)
        rows.append({"T": T, "truncated": tr, "untruncated": un,
                     "untruncated_over_truncated_delta": un["delta_mib"] / tr["delta_mib"]
                     if tr["delta_mib"] > 0 else None})
        log(f"memory {backbone} B={B} T={T}: L={L} +{tr['delta_mib']:.1f} MiB (peak {tr['peak_rss_mib']:.0f}), "
            f"L=T +{un['delta_mib']:.1f} MiB (peak {un['peak_rss_mib']:.0f})")
    ratio, control = _ratio(truncated), _ratio(untruncated)
    return {"backbone": backbone, "preset": "tiny", "batch": B, "segment": L, "lengths": lengths,
            "rows": rows, "ratio_largest_to_smallest_T": ratio,
            "flat": ratio is not None and ratio <= FLAT_RATIO, "flat_rule": f"ratio_largest_to_smallest_T <= {FLAT_RATIO}",
            "flat_ratio": FLAT_RATIO, "untruncated_ratio_largest_to_smallest_T": control,
            "method": truncated[0]["method"], "process_start": method}


# ---------------------------------------------------------------------------- 3. loading


def bench_loading(data: str, B: int, T: int, workers: int, batches: int, seed: int) -> dict:
    module = OmniRLDataModule(DataSection(train=(data,), window=T, batch_size=B, num_workers=workers, seed=seed))
    loader = module.train_dataloader()
    n, epoch, t0 = 0, 0, None
    total = LOADER_WARMUP + batches
    while n < total:
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            if batch["obs"].shape != (B, T + 1):
                raise RuntimeError(f"loader batch of shape {tuple(batch['obs'].shape)}, expected {(B, T + 1)}")
            n += 1
            if n == LOADER_WARMUP:
                t0 = time.perf_counter()
            if n == total:
                break
        epoch += 1
    seconds = time.perf_counter() - t0
    del loader  # shuts persistent workers down
    return {"num_workers": workers, "batch": B, "window": T, "batches": batches, "seconds": seconds,
            "batches_per_s": batches / seconds, "env_steps_per_s": batches * B * T / seconds,
            "epochs": epoch}


# ---------------------------------------------------------------------------- 4. command line


def run_cli(data: str, s: dict, steps: int, work: Path, name: str, compile_: bool = False) -> dict:
    """``python -m omnirl.train --config CFG`` for ``steps`` optimiser steps, timed as a whole process."""
    run_dir = work / name
    train = {"segment_len": s["segment"], "max_steps": steps, "seed": s["seed"]}
    if compile_:
        train["compile"] = True
    cfg = {"model": {"backbone": s["cli_backbone"], "size": "tiny", "n_obs": S, "n_actions": A},
           "data": {"train": [data], "window": s["window"], "batch_size": s["batch"], "seed": s["seed"]},
           "train": train,
           "logging": {"out_dir": str(run_dir), "wandb_mode": "offline"}}
    path = work / f"{name}.yaml"
    path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML
    rec = run_command([sys.executable, "-m", "omnirl.train", "--config", str(path)], work, name,
                      env={"OMP_NUM_THREADS": str(s["threads"])})
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    done = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] if ckpt.is_file() else None
    if done != steps:
        sys.exit(f"bench_training: the command line {name} trained {done} steps, not {steps}, into {run_dir}")
    rec.update(config=cfg, steps=steps, steps_per_s=steps / rec["seconds"])
    return rec


def bench_cli(data: str, s: dict, training: list[dict], work: Path) -> dict:
    """The command line for ``--cli-steps`` steps and for one, beside the training section's rate."""
    inner = next(r for r in training if r["backbone"] == s["cli_backbone"])
    run = run_cli(data, s, s["cli_steps"], work, "cli")
    one = run_cli(data, s, 1, work, "cli_one_step")
    marginal = (run["steps"] - 1) / (run["seconds"] - one["seconds"]) if run["seconds"] > one["seconds"] else None
    ratio = inner["steps_per_s"] / run["steps_per_s"]
    compiled = None
    if s["cli_backbone"] in s["compile_backbones"]:
        c = run_cli(data, s, s["cli_steps"], work, "cli_compiled", compile_=True)
        compiled = {"seconds": c["seconds"], "cpu_seconds": c["cpu_seconds"], "steps_per_s": c["steps_per_s"],
                    "speedup": run["seconds"] / c["seconds"]}
    return {"compiled": compiled, "backbone": s["cli_backbone"], "command": run["command"], "config": run["config"],
            "steps": run["steps"], "seconds": run["seconds"], "cpu_seconds": run["cpu_seconds"],
            "steps_per_s": run["steps_per_s"], "tokens_per_s": run["steps_per_s"] * s["batch"] * s["window"],
            "startup_s": one["seconds"], "startup_cpu_s": one["cpu_seconds"], "marginal_steps_per_s": marginal,
            "training_steps_per_s": inner["steps_per_s"], "ratio": ratio,
            "marginal_ratio": None if marginal is None else inner["steps_per_s"] / marginal,
            "target_ratio": CLI_TARGET, "meets_target": bool(ratio <= CLI_TARGET)}


# ---------------------------------------------------------------------------- 5. GPU


def bench_gpu(s: dict) -> dict:
    """Paper-preset training steps on a CUDA device (bf16 autocast, fla kernels), or why not."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    from omnirl.model.ops.dispatch import fla_available
    from omnirl.model.omnirl import OmniRL

    B, T, L = s["gpu_batch"], s["gpu_window"], s["segment"]
    device = torch.device("cuda")
    g = torch.Generator(device="cpu").manual_seed(s["seed"])
    batch = {"obs": torch.randint(0, S, (B, T + 1), generator=g), "prompt": torch.full((B, T + 1), 3),
             "tag": torch.randint(0, 8, (B, T + 1), generator=g),
             "action": torch.randint(0, A, (B, T + 1), generator=g),
             "reward": torch.randn(B, T + 1, generator=g)}
    batch = {k: v.to(device) for k, v in batch.items()}
    label = torch.randint(0, A, (B, T), generator=g).to(device)
    rows = []
    for name in s["backbones"]:
        torch.manual_seed(s["seed"])
        model = ModelSection(backbone=name, size="paper", n_obs=S, n_actions=A).build()
        net = OmniRL(model).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step() -> None:
            state = None
            for seg in (slice(i, min(i + L, T)) for i in range(0, T, L)):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    out, state = net(**{k: v[:, seg] for k, v in batch.items()}, state=state)
                    loss = net.losses(out, label[:, seg], batch["obs"][:, 1:][:, seg], batch["reward"][:, seg])
                loss["total"].backward()
                state = detach_model_state(state)
            opt.step()
            opt.zero_grad(set_to_none=True)

        torch.cuda.reset_peak_memory_stats(device)
        times = []
        for i in range(2 + s["gpu_steps"]):
            torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            step()
            torch.cuda.synchronize(device)
            if i >= 2:
                times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        rows.append({"backbone": name, "preset": "paper", "parameters": sum(p.numel() for p in net.parameters()),
                     "batch": B, "window": T, "segment": L, "median_step_s": median, "tokens_per_s": B * T / median,
                     "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20})
        log(f"gpu {name:>6}: {B * T / median:.0f} tokens/s, peak {rows[-1]['peak_memory_mib']:.0f} MiB")
        del net, opt
        torch.cuda.empty_cache()
    return {"device": torch.cuda.get_device_name(device), "fla": fla_available(), "precision": "bf16 autocast",
            "rows": rows}


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    _quiet_lightning()
    s = _settings(args)
    torch.set_num_threads(s["threads"])
    t_start = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        length = max(s["window"], *s["memory_lengths"]) + 1
        dataset = make_dataset(Path(tmp), s["tasks"], s["sequences"], length, s["seed"])
        data = str(Path(tmp) / "train")
        log(f"dataset: {dataset['sequences']} sequences x {dataset['length']} steps of {dataset['tasks']} tasks "
            f"in {dataset['seconds']:.1f} s")

        # memory first: its processes are forked from this one before it has trained anything
        memory = bench_memory(data, s["memory_backbone"], s["batch"], s["memory_lengths"], s["memory_segment"],
                              s["threads"], s["seed"])
        log(f"memory: truncated ratio {memory['ratio_largest_to_smallest_T']}, flat {memory['flat']}; "
            f"untruncated ratio {memory['untruncated_ratio_largest_to_smallest_T']}")

        training = []
        for name in s["backbones"]:
            with tempfile.TemporaryDirectory(prefix="run_", dir=tmp) as run_dir:
                row = bench_training(name, data, s["batch"], s["window"], s["segment"], s["warmup"], s["steps"],
                                     s["seed"], run_dir)
            log(f"training {name:>6} B={s['batch']} T={s['window']} L={s['segment']}: {row['steps_per_s']:.2f} "
                f"steps/s, {row['tokens_per_s']:.0f} env steps/s ({row['parameters']} parameters)")
            training.append(row)

        compiled = []
        for row in training:
            if row["backbone"] not in s["compile_backbones"]:
                continue
            with tempfile.TemporaryDirectory(prefix="run_", dir=tmp) as run_dir:
                c = bench_compile(row, data, s, run_dir)
            log(f"compile {c['backbone']:>6}: speed-up {c['speedup']:.2f} (target >= {COMPILE_TARGET:g}), compile "
                f"{c['compile_s']:.0f} s, losses equal {c['losses_equal']} (max rel diff {c['max_loss_rel_diff']:.1e})")
            compiled.append(c)

        cli = bench_cli(data, s, training, Path(tmp))
        log(f"command line {s['cli_backbone']}: {cli['steps_per_s']:.2f} steps/s over {cli['steps']} steps "
            f"({cli['seconds']:.1f} s whole process; {cli['startup_s']:.1f} s for one step), training section "
            f"{cli['training_steps_per_s']:.2f}: ratio {cli['ratio']:.2f} (target <= {CLI_TARGET:g}), marginal "
            f"ratio {'n/a' if cli['marginal_ratio'] is None else format(cli['marginal_ratio'], '.2f')}")

        rows = []
        for workers in s["loader_workers"]:
            row = bench_loading(data, s["batch"], s["window"], workers, s["loader_batches"], s["seed"])
            log(f"loading workers={workers}: {row['batches_per_s']:.0f} batches/s, "
                f"{row['env_steps_per_s']:.0f} env steps/s")
            rows.append(row)

    fastest = max(training, key=lambda r: r["tokens_per_s"])
    ratio = rows[0]["env_steps_per_s"] / fastest["tokens_per_s"]
    loading = {"rows": rows, "ratio_workers": rows[0]["num_workers"], "fastest_training_backbone": fastest["backbone"],
               "fastest_training_tokens_per_s": fastest["tokens_per_s"], "ratio_to_training": ratio,
               "target_ratio": TARGET_LOADER_RATIO, "meets_target": bool(ratio >= TARGET_LOADER_RATIO)}
    log(f"loading: ratio to training {ratio:.1f} (target >= {TARGET_LOADER_RATIO:g})")

    report = {"benchmark": "training", "settings": s,
              "machine": {**machine_info(("torch", "lightning")), "torch_threads": torch.get_num_threads()},
              "dataset": dataset, "training": training, "memory": memory, "loading": loading, "cli": cli,
              "compile": {"rows": compiled, "adopted": [c["backbone"] for c in compiled if c["adopt"]],
                          "target_speedup": COMPILE_TARGET, "loss_rtol": LOSS_RTOL},
              "gpu": bench_gpu(s),
              "seconds": time.perf_counter() - t_start}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
