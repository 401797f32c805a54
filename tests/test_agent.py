"""OmniRLAgent: incremental acting equals the model's forward pass, context loading, resets,
end markers, constant per-step cost in memory, bad input."""

import pytest
import torch

from omnirl.model.agent import OmniRLAgent
from omnirl.model.backbone import sized
from omnirl.model.omnirl import LAYOUTS, OmniRL, OmniRLConfig
from omnirl.model.rewards import REWARD_TRANSFORMS

S, A, B, T = 16, 5, 3, 10


def model(layout="paper", backbone="gdn", reward_transform="none", action_rewards=False):
    torch.manual_seed(0)
    return OmniRL(OmniRLConfig(n_obs=S, n_actions=A, backbone=sized("tiny", backbone), layout=layout,
                               reward_transform=reward_transform, world_model=layout != "paired",
                               action_rewards=action_rewards))


def traj(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randint(0, S, (B, T), generator=g), "prompt": torch.full((B, T), 3),
            "tag": torch.full((B, T), 7), "action": torch.randint(0, A, (B, T), generator=g),
            "reward": torch.randn(B, T, generator=g)}


def flat(state):
    return torch.cat([t.flatten() for layer in state[0] for t in layer] + [state[1].flatten()])


@pytest.mark.parametrize("layout, transform, backbone, action_rewards",
                         [(layout, transform, "gdn", False) for layout in LAYOUTS for transform in REWARD_TRANSFORMS]
                         + [(layout, "causal", "transformer", False) for layout in LAYOUTS]
                         + [(layout, "causal", "gdn", True) for layout in LAYOUTS])
def test_acting_step_by_step_is_the_forward_pass(layout, transform, backbone, action_rewards):
    m, d = model(layout, backbone, reward_transform=transform, action_rewards=action_rewards), traj()
    d["reward"] = d["reward"] * 5.0 + 2.0
    d["action"][1, 4] = A  # an episode-end marker: no reward, left out of the running statistics
    d["reward"][1, 4] = 0.0
    out, state = m(d["obs"], d["prompt"], d["tag"], d["action"], d["reward"])
    agent = OmniRLAgent(m, B)
    for t in range(T):
        greedy = agent.act(d["obs"][:, t], temperature=0.0)
        assert torch.equal(greedy, out["policy"][:, t, :A].argmax(-1))  # the policy at t, end marker excluded
        torch.testing.assert_close(agent.last_logits, out["policy"][:, t, :A], atol=2e-5, rtol=1e-4)
        agent.observe(d["obs"][:, t], d["action"][:, t], d["reward"][:, t])
    torch.testing.assert_close(flat(agent.state), flat(state), atol=2e-6, rtol=1e-5)


def test_load_context_in_chunks_equals_stepping():
    m, d = model("compact"), traj(2)
    a = OmniRLAgent(m, B, chunk=3)
    a.load_context(d)
    b = OmniRLAgent(m, B)
    for t in range(T):
        b.observe(d["obs"][:, t], d["action"][:, t], d["reward"][:, t], prompt=d["prompt"][:, t],
                  tag=d["tag"][:, t])
    torch.testing.assert_close(flat(a.state), flat(b.state), atol=2e-6, rtol=1e-5)


def test_reset_and_end_markers_touch_only_their_rows():
    m, d = model(), traj(3)
    agent = OmniRLAgent(m, B)
    agent.load_context(d)
    before = [flat((tuple((t[r:r + 1],) for layer in agent.state[0] for t in layer), agent.state[1][r:r + 1]))
              for r in range(B)]
    agent.end_episode(torch.tensor([1, 2, 3]), rows=[1])
    after = [flat((tuple((t[r:r + 1],) for layer in agent.state[0] for t in layer), agent.state[1][r:r + 1]))
             for r in range(B)]
    assert torch.equal(before[0], after[0]) and torch.equal(before[2], after[2])
    assert not torch.equal(before[1], after[1])
    agent.reset(rows=torch.tensor([True, False, False]))
    assert flat((tuple((t[:1],) for layer in agent.state[0] for t in layer), agent.state[1][:1])).abs().max() == 0
    assert flat((tuple((t[2:],) for layer in agent.state[0] for t in layer), agent.state[1][2:])).abs().max() > 0


def test_context_length_does_not_grow_the_state():
    m = model("paper", "rwkv7")
    agent = OmniRLAgent(m, B, chunk=256)
    size = flat(agent.state).numel()
    long = {k: v.repeat(1, 100) for k, v in traj(4).items()}  # 1,000 steps
    agent.load_context(long)
    assert flat(agent.state).numel() == size
    assert agent.act(torch.zeros(B, dtype=torch.long)).shape == (B,)


def test_sampling_is_seeded_and_never_picks_the_end_marker():
    m = model()
    obs = torch.arange(B)
    a1 = torch.stack([OmniRLAgent(m, B, seed=5).act(obs) for _ in range(3)])
    a2 = torch.stack([OmniRLAgent(m, B, seed=5).act(obs) for _ in range(3)])
    assert torch.equal(a1, a2)
    agent = OmniRLAgent(m, B, seed=0)
    acts = torch.stack([agent.act(obs, temperature=5.0) for _ in range(200)])
    assert acts.max() < A and len(acts.unique()) == A


@pytest.mark.parametrize("call, match", [
    (lambda a: a.act(torch.zeros(B + 1, dtype=torch.long)), "obs"),
    (lambda a: a.act(torch.full((B,), S + 1)), "obs"),
    (lambda a: a.act(torch.zeros(B, dtype=torch.long), temperature=-1.0), "temperature"),
    (lambda a: a.observe(torch.zeros(B, dtype=torch.long), torch.full((B,), A + 1), 0.0), "action"),
    (lambda a: a.reset(rows=[B]), "rows"),
    (lambda a: a.load_context({"obs": torch.zeros(B, 2)}), "missing"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(OmniRLAgent(model(), B))


def test_observe_with_done_commits_the_end_markers():
    m, d = model(), traj(6)
    a, b = OmniRLAgent(m, B), OmniRLAgent(m, B)
    done = torch.tensor([False, True, False])
    terminal = torch.tensor([4, 5, 6])
    a.observe(d["obs"][:, 0], d["action"][:, 0], d["reward"][:, 0], done=done, terminal_obs=terminal)
    b.observe(d["obs"][:, 0], d["action"][:, 0], d["reward"][:, 0])
    b.end_episode(terminal, rows=done)
    torch.testing.assert_close(flat(a.state), flat(b.state))
    with pytest.raises(ValueError, match="terminal_obs"):
        a.observe(d["obs"][:, 1], d["action"][:, 1], d["reward"][:, 1], done=done)
