"""The task figures draw the numbers they claim to draw, and files are written atomically."""

import matplotlib.image as mpimg
import numpy as np
import pytest

from omnirl.tasks import sample_anymdp, sample_garnet
from omnirl.tasks.__main__ import main as cli
from omnirl.tasks.plots import (KERNEL_IMAGE_LABEL, kernel_order, plot_stationary_distributions,
                                plot_transition_kernel, save_figure, stationary_profiles)
from omnirl.tasks.solver import (random_stationary_distribution, reset_chain, solve,
                                 start_distribution, stationary_distribution, one_hot_policy)
from omnirl.tasks.taskset import TaskSet


@pytest.fixture(scope="module")
def task():
    return sample_anymdp(32, 5, seed=3)


def test_kernel_order_sorts_the_stationary_distribution(task):
    order = kernel_order(task)
    assert sorted(order) == list(range(task.n_states))
    sd = random_stationary_distribution(task)
    assert np.all(np.diff(sd[order]) <= 0)
    # the oracle's order comes from the oracle's own chain
    pi = one_hot_policy(solve(task, 0.994).policy, task.n_actions)
    sd_o = stationary_distribution(reset_chain(task, pi), start_distribution(task))
    assert np.all(np.diff(sd_o[kernel_order(task, "oracle")]) <= 0)


def test_kernel_figure_draws_the_reordered_kernel(task):
    fig = plot_transition_kernel(task)
    img = [im for ax in fig.axes for im in ax.get_images() if im.get_label() == KERNEL_IMAGE_LABEL]
    assert len(img) == 1
    order = kernel_order(task)
    M = task.transition.astype(np.float64).mean(1)  # random-policy kernel, terminal rows zero
    np.testing.assert_allclose(img[0].get_array(), M[order][:, order], atol=1e-12)


def test_profiles_show_the_decay_and_sorting():
    tasks = [sample_anymdp(32, 5, seed=(2, i)) for i in range(8)]
    by_rank = stationary_profiles(tasks, order="rank")
    q = 8
    assert by_rank["random_median"][:q].sum() > 5 * by_rank["random_median"][-q:].sum()
    np.testing.assert_allclose(by_rank["random"][0], random_stationary_distribution(tasks[0]))
    by_sd = stationary_profiles(tasks)
    assert np.all(np.diff(by_sd["random"], axis=1) <= 0)
    garnet = stationary_profiles([sample_garnet(32, 5, seed=(2, i)) for i in range(8)])
    # AnyMDP's random walk is far more concentrated than Garnet's
    assert by_sd["random_median"][-1] < garnet["random_median"][-1] / 3
    mixed = stationary_profiles([sample_anymdp(32, 5, seed=(3, i), min_states=16) for i in range(4)])
    assert mixed["normalised"] and mixed["x"][0] == 0.0 and mixed["x"][-1] == 1.0


def test_pngs_are_written_atomically(task, tmp_path):
    k = save_figure(plot_transition_kernel(task), tmp_path / "a" / "kernel.png")
    fig = plot_stationary_distributions([task, sample_anymdp(32, 5, seed=4)], label="AnyMDP")
    fig = plot_stationary_distributions([sample_garnet(32, 5, seed=1)], ax=fig.axes[0], label="Garnet")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("AnyMDP" in x for x in labels) and any("Garnet" in x for x in labels)
    d = save_figure(fig, tmp_path / "sd.png")
    for p in (k, d):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        h, w = mpimg.imread(p).shape[:2]
        assert h > 300 and w > 400
    assert not list(tmp_path.glob("**/*.tmp"))


def test_cli_plot(tmp_path, capsys):
    TaskSet.generate(4, 16, 3, seed=0).save(tmp_path / "set")
    assert cli(["plot", str(tmp_path / "set"), "--out", str(tmp_path / "png"), "--index", "1"]) == 0
    assert (tmp_path / "png" / "kernel_00001.png").stat().st_size > 1000
    assert (tmp_path / "png" / "stationary_distribution.png").stat().st_size > 1000
    assert cli(["plot", str(tmp_path / "set"), "--index", "9"]) == 2
    assert "--index" in capsys.readouterr().err


@pytest.mark.parametrize("call, name", [
    (lambda t: plot_transition_kernel(t, policy="greedy"), "policy"),
    (lambda t: plot_transition_kernel("task"), "task"),
    (lambda t: plot_stationary_distributions([]), "tasks"),
    (lambda t: stationary_profiles([t], order="value"), "order"),
    (lambda t: plot_stationary_distributions([t], gamma=1.0), "gamma"),
    (lambda t: save_figure(plot_transition_kernel(t), "x.jpg"), "path"),
    (lambda t: save_figure("figure", "x.png"), "fig"),
])
def test_bad_input(task, call, name):
    with pytest.raises(ValueError, match=name):
        call(task)
