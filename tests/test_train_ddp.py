"""DDP training (2 CPU processes, gloo): the gradients the optimiser applies in each process equal
the single-process gradients of the whole global batch, although only the last segment of the
window synchronises them, and both processes end with the same parameters."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.ddp_worker import Record, global_batch, loader, make_module, trainer

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),  # Lightning's data-loader advice
              pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")]  # lightning vs torch 2.13

WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ddp(out_dir: Path) -> list[dict]:
    """Both ranks' results of ``ddp_worker.py`` under ``torchrun --nproc-per-node=2``."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
           "--master-addr=127.0.0.1", f"--master-port={free_port()}", str(WORKER), str(out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                          cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(2)]


def test_ddp_gradients_equal_single_process_gradients_of_the_global_batch(tmp_path):
    ranks = run_ddp(tmp_path)
    assert [r["rank"] for r in ranks] == [0, 1]

    module, record = make_module(), Record()
    initial = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer(1, record).fit(module, loader(global_batch()))
    expected = record.grads

    # each rank's own (half-batch) loss differs; their mean is the global mean loss
    assert ranks[0]["loss"] != pytest.approx(ranks[1]["loss"], rel=1e-3)
    assert (ranks[0]["loss"] + ranks[1]["loss"]) / 2 == pytest.approx(record.loss, rel=1e-5)

    for r in ranks:
        assert r["grads"].keys() == expected.keys()
        for name, g in expected.items():
            torch.testing.assert_close(r["grads"][name], g, rtol=1e-5, atol=1e-7, msg=name)

    p0, p1 = ranks[0]["params"], ranks[1]["params"]
    assert p0.keys() == p1.keys() == initial.keys()
    assert all(torch.equal(p0[n], p1[n]) for n in p0)
    assert any(not torch.equal(p0[n], initial[n]) for n in p0)  # the step did update them
