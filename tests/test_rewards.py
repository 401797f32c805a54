"""Reward transforms (omnirl.model.rewards): values, causality, segment independence, and the
model's policy never seeing a reward before its step."""

import math

import pytest
import torch

from omnirl.model.backbone import sized
from omnirl.model.omnirl import LAYOUTS, OmniRL, OmniRLConfig
from omnirl.model.rewards import CLIP, RANGE_EPS, REWARD_TRANSFORMS, STD_EPS, init_memory, transform_rewards


def run(kind, rewards, valid=None, memory=None):
    r = torch.tensor([rewards], dtype=torch.float32)
    v = torch.ones_like(r, dtype=torch.bool) if valid is None else torch.tensor([valid])
    return transform_rewards(kind, r, v, init_memory(1) if memory is None else memory)


def test_causal_values_by_hand():
    out, memory = run("causal", [1.0, 3.0, 0.0, 5.0], valid=[True, True, False, True])
    # t=0: one reward seen -> 0; t=1: mean 2, std 1; t=2: an end marker -> 0, not counted;
    # t=3: rewards 1, 3, 5: mean 3, std sqrt(8/3)
    expect = [0.0, 1.0 / (1.0 + STD_EPS), 0.0, 2.0 / (math.sqrt(8 / 3) + STD_EPS)]
    torch.testing.assert_close(out[0], torch.tensor(expect), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(memory[0], torch.tensor([expect[-1], 3.0, 9.0, 35.0, 1.0, 5.0], dtype=torch.float64))


def test_symlog_and_none():
    out, memory = run("symlog", [-3.0, 0.0, 8.0])
    torch.testing.assert_close(out[0], torch.tensor([-math.log(4.0), 0.0, math.log(9.0)]))
    assert memory[0, 0] == pytest.approx(math.log(9.0))
    assert memory[0, 1:].tolist() == [3.0, 5.0, 73.0, -3.0, 8.0]  # the statistics are kept whatever the kind
    out, memory = run("none", [-3.0, 0.5])
    assert out[0].tolist() == [-3.0, 0.5] and memory[0, 0] == 0.5


def test_range_values_by_hand():
    out, memory = run("range", [2.0, 6.0, 0.0, 4.0, 10.0, 6.0], valid=[True, True, False, True, True, True])
    # t=0: one reward -> 0; t=1: range [2, 6], 6 -> 1; t=2: an end marker -> 0, not counted;
    # t=3: 4 in [2, 6] -> 0; t=4: range [2, 10], 10 -> 1; t=5: 6 in [2, 10] -> 0
    span = lambda lo, hi: hi - lo + RANGE_EPS * hi  # noqa: E731
    expect = [0.0, 2 * 4 / span(2, 6) - 1, 0.0, 2 * 2 / span(2, 6) - 1, 2 * 8 / span(2, 10) - 1,
              2 * 4 / span(2, 10) - 1]
    torch.testing.assert_close(out[0], torch.tensor(expect), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(memory[0, 1:], torch.tensor([5.0, 28.0, 192.0, 2.0, 10.0], dtype=torch.float64))


def test_range_is_scale_free_and_keeps_its_scale_when_pulls_concentrate():
    g = torch.Generator().manual_seed(3)
    r = torch.rand(2, 50, generator=g) + 0.5
    v = torch.ones_like(r, dtype=torch.bool)
    a, _ = transform_rewards("range", r, v, init_memory(2))
    b, _ = transform_rewards("range", 7.0 * r - 3.0, v, init_memory(2))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # two arms seen, then one arm only: its reward keeps its value under range, drifts under causal
    x = torch.tensor([[0.5, 1.0] * 5 + [1.0] * 200])
    v = torch.ones_like(x, dtype=torch.bool)
    rng, _ = transform_rewards("range", x, v, init_memory(1))
    causal, _ = transform_rewards("causal", x, v, init_memory(1))
    assert rng[0, 9] == pytest.approx(1.0, abs=1e-5) and rng[0, -1] == pytest.approx(1.0, abs=1e-5)
    assert causal[0, -1] < 0.5 * causal[0, 9]


def test_causal_is_clipped_and_zero_for_constant_rewards():
    out, _ = run("causal", [2.0] * 5)
    assert out.abs().max() == 0
    out, _ = run("causal", [0.0] * 200 + [1e6])
    assert out[0, -1] == pytest.approx(CLIP)


@pytest.mark.parametrize("kind", REWARD_TRANSFORMS)
def test_each_value_depends_only_on_rewards_up_to_it(kind):
    g = torch.Generator().manual_seed(0)
    r = torch.randn(4, 30, generator=g) * 3
    v = torch.rand(4, 30, generator=g) > 0.2
    base, _ = transform_rewards(kind, r, v, init_memory(4))
    for t in (0, 7, 29):
        r2 = r.clone()
        r2[:, t:] = torch.randn(4, 30 - t, generator=g) * 100
        out, _ = transform_rewards(kind, r2, v, init_memory(4))
        torch.testing.assert_close(out[:, :t], base[:, :t])


@pytest.mark.parametrize("kind", REWARD_TRANSFORMS)
def test_segments_continue_through_the_memory(kind):
    g = torch.Generator().manual_seed(1)
    r = torch.randn(3, 40, generator=g) * 2 + 1
    v = torch.rand(3, 40, generator=g) > 0.1
    whole, m_whole = transform_rewards(kind, r, v, init_memory(3))
    a, m = transform_rewards(kind, r[:, :13], v[:, :13], init_memory(3))
    e, m = transform_rewards(kind, r[:, 13:13], v[:, 13:13], m)  # an empty segment changes nothing
    b, m = transform_rewards(kind, r[:, 13:], v[:, 13:], m)
    assert e.shape == (3, 0)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(m, m_whole)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", REWARD_TRANSFORMS)
def test_policy_at_a_step_never_sees_its_reward_or_later_ones(layout, kind):
    torch.manual_seed(0)
    S, A, B, T = 8, 3, 2, 12
    m = OmniRL(OmniRLConfig(n_obs=S, n_actions=A, backbone=sized("tiny", "gdn"), layout=layout,
                            reward_transform=kind, world_model=layout != "paired")).eval()
    g = torch.Generator().manual_seed(2)
    obs, act = torch.randint(0, S, (B, T), generator=g), torch.randint(0, A, (B, T), generator=g)
    prompt, tag = torch.full((B, T), 3), torch.full((B, T), 6)
    r = torch.randn(B, T, generator=g)
    with torch.no_grad():
        base = m(obs, prompt, tag, act, r)[0]["policy"]
        for t in (0, 5, 11):
            r2 = r.clone()
            r2[:, t:] = torch.randn(B, T - t, generator=g) * 50.0  # not a shift: causal undoes shifts
            out = m(obs, prompt, tag, act, r2)[0]["policy"]
            torch.testing.assert_close(out[:, :t + 1], base[:, :t + 1])  # r_t enters after step t's policy
            if t < T - 1:
                assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])  # and later steps see it


def test_reward_head_predicts_the_transformed_reward():
    torch.manual_seed(0)
    m = OmniRL(OmniRLConfig(n_obs=8, n_actions=3, backbone=sized("tiny", "gdn"), reward_transform="symlog",
                            reward_loss="huber"))
    obs, act = torch.randint(0, 8, (2, 6)), torch.randint(0, 3, (2, 6))
    r = torch.randn(2, 6) * 10
    out, _ = m(obs, torch.full((2, 6), 3), torch.full((2, 6), 6), act, r)
    torch.testing.assert_close(out["reward_target"], torch.sign(r) * torch.log1p(r.abs()))
    loss = m.losses(out, act, obs, r)
    expect = torch.nn.functional.huber_loss(out["reward"], out["reward_target"], reduction="none")
    torch.testing.assert_close(loss["reward"], expect)


@pytest.mark.parametrize("field, value", [("reward_transform", "log"), ("reward_loss", "l1")])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        OmniRLConfig(**{field: value})
