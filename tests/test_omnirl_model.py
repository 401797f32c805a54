"""The OmniRL model: causality of the read points, state carried across segments, sizes."""

import pytest
import torch

from omnirl.model.backbone import ALL_BACKBONES, BACKBONES, sized
from omnirl.model.omnirl import LAYOUTS, OmniRL, OmniRLConfig

S, A, B, T = 16, 5, 2, 12
TABLE_6 = {"gdn": 46.3e6, "gsa": 42.9e6, "mamba2": 31.6e6, "rwkv7": 42.9e6}


def make(backbone="gdn", layout="paper", action_rewards=False):
    torch.manual_seed(0)
    return OmniRL(OmniRLConfig(n_obs=S, n_actions=A, backbone=sized("tiny", backbone), layout=layout,
                               world_model=layout != "paired", action_rewards=action_rewards))


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randint(0, S, (B, T), generator=g), "prompt": torch.randint(0, 8, (B, T), generator=g),
            "tag": torch.randint(0, 8, (B, T), generator=g), "action": torch.randint(0, A + 1, (B, T), generator=g),
            "reward": torch.randn(B, T, generator=g)}


def run(model, d, state=None):
    return model(d["obs"], d["prompt"], d["tag"], d["action"], d["reward"], state)


@pytest.mark.parametrize("layout, backbone, action_rewards",
                         [(layout, backbone, False) for layout in LAYOUTS for backbone in ALL_BACKBONES]
                         + [(layout, "gdn", True) for layout in LAYOUTS])
def test_policy_at_t_ignores_the_action_at_t_and_everything_after(backbone, layout, action_rewards):
    model = make(backbone, layout, action_rewards)
    d = batch()
    ref, _ = run(model, d)
    t = 5
    changed = {k: v.clone() for k, v in d.items()}
    changed["action"][:, t] = (d["action"][:, t] + 1) % (A + 1)
    changed["reward"][:, t:] += 3.0
    changed["tag"][:, t:] = (d["tag"][:, t:] + 1) % 8
    for k in ("obs", "prompt", "action"):
        hi = S if k == "obs" else 8 if k == "prompt" else A + 1
        changed[k][:, t + 1:] = (d[k][:, t + 1:] + 1) % hi
    out, _ = run(model, changed)
    torch.testing.assert_close(out["policy"][:, :t + 1], ref["policy"][:, :t + 1], atol=1e-6, rtol=1e-5)
    assert (out["policy"][:, t + 1:] - ref["policy"][:, t + 1:]).abs().max() > 1e-6
    # the policy at t + 1 depends on the reward at t (however it enters)
    reward_t = {k: v.clone() for k, v in d.items()}
    reward_t["reward"][:, t] += 3.0
    out_r, _ = run(model, reward_t)
    torch.testing.assert_close(out_r["policy"][:, :t + 1], ref["policy"][:, :t + 1], atol=1e-6, rtol=1e-5)
    assert (out_r["policy"][:, t + 1] - ref["policy"][:, t + 1]).abs().max() > 1e-6
    if layout == "paired":  # no world model there
        assert set(ref) == {"policy"}
        return
    # the world model at t sees the action at t, but not the reward at t or anything later
    torch.testing.assert_close(out["next_state"][:, :t], ref["next_state"][:, :t], atol=1e-6, rtol=1e-5)
    assert (out["next_state"][:, t] - ref["next_state"][:, t]).abs().max() > 1e-6
    only_reward = {k: v.clone() for k, v in d.items()}
    only_reward["reward"][:, t:] += 3.0
    out, _ = run(model, only_reward)
    torch.testing.assert_close(out["reward"][:, :t + 1], ref["reward"][:, :t + 1], atol=1e-6, rtol=1e-5)
    # and the policy does depend on the state and prompt of step t
    seen = {k: v.clone() for k, v in d.items()}
    seen["obs"][:, t] = (d["obs"][:, t] + 1) % S
    out, _ = run(model, seen)
    assert (out["policy"][:, t] - ref["policy"][:, t]).abs().max() > 1e-6


@pytest.mark.parametrize("layout, action_rewards", [(layout, False) for layout in LAYOUTS] + [("compact", True)])
def test_segments_carry_the_state(layout, action_rewards):
    model = make("rwkv7", layout, action_rewards)
    d = batch(1)
    ref, _ = run(model, d)
    state, parts = None, []
    for lo, hi in ((0, 4), (4, 5), (5, 12)):
        out, state = run(model, {k: v[:, lo:hi] for k, v in d.items()}, state)
        parts.append(out["policy"])
    torch.testing.assert_close(torch.cat(parts, 1), ref["policy"], atol=3e-5, rtol=1e-4)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_action_rewards_put_each_reward_along_the_action_it_followed(layout):
    model, d = make("gdn", layout, action_rewards=True), batch(2)
    memory = model.init_state(B)[1]
    with_term, r, _ = model.slots(d["obs"], d["prompt"], d["tag"], d["action"], d["reward"], memory)
    E = model.action_reward_embed.weight.detach().clone()
    with torch.no_grad():
        model.action_reward_embed.weight.zero_()
    without, _, _ = model.slots(d["obs"], d["prompt"], d["tag"], d["action"], d["reward"], memory)
    term = (with_term - without).detach()  # (B, T, k, D)
    if layout == "compact":  # step t's first token: r_{t-1} along a_{t-1} (nothing before the first step)
        expected = torch.zeros_like(term[:, :, 0])
        expected[:, 1:] = r[:, :-1, None] * E[d["action"][:, :-1]]
        torch.testing.assert_close(term[:, :, 0], expected)
        assert term[:, :, 1].abs().max() == 0
    else:  # the reward's own token (paper: the fifth; paired: the action's): r_t along a_t
        at = 4 if layout == "paper" else 1
        torch.testing.assert_close(term[:, :, at], r[..., None] * E[d["action"]])
        assert term[:, :, [i for i in range(term.shape[2]) if i != at]].abs().max() == 0


@pytest.mark.parametrize("name", BACKBONES)
def test_paper_model_size(name):
    with torch.device("meta"):
        m = OmniRL(OmniRLConfig(backbone=sized("paper", name)))
    n = sum(p.numel() for p in m.parameters())
    assert abs(n / TABLE_6[name] - 1) < 0.1, (name, n)


def test_compact_layout_is_cheaper_and_heads_are_optional():
    assert OmniRLConfig().layout == "compact" and OmniRLConfig().tokens_per_step == 2
    assert OmniRLConfig(layout="paper").tokens_per_step == 5
    m = OmniRL(OmniRLConfig(n_obs=S, n_actions=A, world_model=False))
    out, _ = run(m, batch())
    assert set(out) == {"policy"} and out["policy"].shape == (B, T, A + 1)


@pytest.mark.parametrize("field, value, match", [
    ("obs", S + 1, "obs"), ("prompt", 8, "prompt"), ("action", A + 2, "action"), ("tag", -1, "tag"),
])
def test_bad_ids_are_refused(field, value, match):
    model = make()
    d = batch()
    d[field][0, 0] = value
    with pytest.raises(ValueError, match=match):
        run(model, d)
    with pytest.raises(ValueError, match="layout"):
        OmniRLConfig(layout="interleaved")
    with pytest.raises(ValueError, match="layout='paired'.*world_model=False"):
        OmniRLConfig(layout="paired")


def test_losses_mask_end_markers_and_weigh_the_world_model():
    m = OmniRL(OmniRLConfig(n_obs=S, n_actions=A, backbone=sized("tiny", "gdn"), state_weight=0.5,
                            reward_weight=2.0))
    d = batch(5)
    label = d["action"] % A  # valid actions everywhere but the marker below
    label[:, 3] = A  # an end marker
    out, _ = run(m, d)
    next_obs = torch.roll(d["obs"], -1, 1)
    loss = m.losses(out, label, next_obs, d["reward"])
    assert (loss["policy"][:, 3] == 0).all() and (loss["policy"][:, :3] > 0).all()
    n = (label < A).sum()
    expected = (loss["policy"].sum() + 0.5 * loss["next_state"].sum() + 2.0 * loss["reward"].sum()) / n
    torch.testing.assert_close(loss["total"], expected)
    ce = torch.nn.functional.cross_entropy(out["policy"][0, 0:1], label[0, 0:1])
    torch.testing.assert_close(loss["policy"][0, 0], ce)
    loss["total"].backward()
    assert m.policy_head.out.weight.grad.abs().sum() > 0
    only_policy = OmniRL(OmniRLConfig(n_obs=S, n_actions=A, world_model=False)).losses(
        {"policy": out["policy"].detach()}, label)
    assert set(only_policy) == {"policy", "step_mask", "total"}
    with pytest.raises(ValueError, match="reward_weight"):
        OmniRLConfig(reward_weight=-1.0)
