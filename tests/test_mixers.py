"""Mixers with explicit state: segments carry exactly, one-step decode equals the parallel pass,
rows are independent, gradients reach the carried state, sizes match the paper's Table 6."""

import pytest
import torch

from omnirl.model.layers import GatedRMSNorm, GeluMLP, ShortConv, SwiGLU, token_shift
from omnirl.model.mixers import RWKV7, GatedDeltaNet, GatedSlotAttention, Mamba2, RWKV7FeedForward


class FirstRWKV7(RWKV7):
    """RWKV-7's first layer seen through the common ``(y, state)`` interface (it makes ``v_first``)."""

    def forward(self, x, state=None):
        y, state, _ = super().forward(x, state)
        return y, state


MIXERS = {
    "gdn": lambda: GatedDeltaNet(32, heads=2, head_dim=8),
    "mamba2": lambda: Mamba2(32, head_dim=16, state_size=8),
    "rwkv7": lambda: FirstRWKV7(32, heads=2, head_dim=16, layer_idx=0),
    "gsa": lambda: GatedSlotAttention(32, heads=2, head_dim=16, num_slots=8),
    "rwkv7_ffn": lambda: RWKV7FeedForward(32, 64),
}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(params=list(MIXERS))
def mixer(request):
    torch.manual_seed(0)
    return MIXERS[request.param]()


def test_segments_carry_state_exactly(mixer):
    x = torch.randn(2, 75, 32)
    y, final = mixer(x)
    state, parts = None, []
    for lo, hi in ((0, 13), (13, 64), (64, 75)):  # splits inside and across chunks
        yi, state = mixer(x[:, lo:hi], state)
        parts.append(yi)
    torch.testing.assert_close(torch.cat(parts, 1), y, atol=2e-5, rtol=1e-4)
    for a, b in zip(state, final):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_one_step_decode_equals_the_parallel_pass(mixer):
    x = torch.randn(2, 20, 32)
    y, _ = mixer(x)
    state, steps = mixer.init_state(2), []
    with torch.no_grad():
        for t in range(20):
            yt, state = mixer(x[:, t:t + 1], state)
            steps.append(yt)
    torch.testing.assert_close(torch.cat(steps, 1), y.detach(), atol=2e-5, rtol=1e-4)


def test_state_matters_and_rows_are_independent(mixer):
    x = torch.randn(3, 16, 32)
    _, s = mixer(x[:, :8])
    y_carry, _ = mixer(x[:, 8:], s)
    y_fresh, _ = mixer(x[:, 8:])
    assert (y_carry - y_fresh).abs().max() > 1e-3  # the carried context changes the output
    y_row, _ = mixer(x[1:2, 8:], tuple(t[1:2] for t in s))  # a row alone, with its own state
    torch.testing.assert_close(y_row, y_carry[1:2], atol=1e-6, rtol=1e-5)


def test_gradients_reach_the_carried_state(mixer):
    x = torch.randn(2, 10, 32)
    _, s = mixer(x[:, :5])
    s = tuple(t.detach().requires_grad_(True) for t in s)
    y, _ = mixer(x[:, 5:], s)
    grads = torch.autograd.grad(y.square().sum(), s)
    assert all(torch.isfinite(g).all() for g in grads)
    assert grads[-1].abs().sum() > 0  # the carried state influences the output


def test_paper_sizes_match_table_6():
    # one block = pre-norm mixer + pre-norm feed-forward (GDN); Mamba2 blocks have no feed-forward.
    gdn = n_params(GatedDeltaNet(512, 8, 48)) + n_params(SwiGLU(512, 1024)) + 2 * 512
    mamba = n_params(Mamba2(512, 128, 2.0, 128)) + 512
    rwkv = n_params(RWKV7(512, 8, 64, layer_idx=1)) + n_params(RWKV7FeedForward(512, 1024)) + 2 * 512
    gsa = n_params(GatedSlotAttention(512, 8, 64, 64)) + n_params(GeluMLP(512, 1024)) + 2 * 512
    for blocks, target in ((gdn, 46.3e6), (mamba, 31.6e6), (rwkv, 42.9e6), (gsa, 42.9e6)):
        assert abs(18 * blocks / target - 1) < 0.1


def test_rwkv7_later_layers_need_v_first():
    torch.manual_seed(0)
    first, later = RWKV7(32, 2, 16, layer_idx=0), RWKV7(32, 2, 16, layer_idx=1)
    x = torch.randn(1, 5, 32)
    _, _, v_first = first(x)
    y, _, passed = later(x, None, v_first)
    assert passed is v_first and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="v_first"):
        later(x)


def test_layers():
    conv = ShortConv(4, kernel=3, activation=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, 0, -2] = 1.0  # y_t = x_{t-1}: a pure delay
    x = torch.randn(1, 6, 4)
    y, cache = conv(x)
    torch.testing.assert_close(y[:, 1:], x[:, :-1])
    torch.testing.assert_close(y[:, 0], torch.zeros(1, 4))
    torch.testing.assert_close(cache, x[:, -3:].transpose(1, 2))
    shifted, last = token_shift(x, None)
    torch.testing.assert_close(shifted[:, 1:], x[:, :-1])
    torch.testing.assert_close(last, x[:, -1])
    norm = GatedRMSNorm(4)
    out = norm(torch.ones(1, 4) * 3.0, torch.zeros(1, 4))
    torch.testing.assert_close(out, torch.zeros(1, 4))  # silu(0) = 0 closes the gate
    with pytest.raises(ValueError, match="channels"):
        conv(torch.randn(1, 3, 5))


@pytest.mark.parametrize("make, name", [
    (lambda: GatedDeltaNet(32, heads=0, head_dim=8), "heads"),
    (lambda: GatedDeltaNet(32, heads=2, head_dim=8, expand_v=0.0), "expand_v"),
    (lambda: Mamba2(32, head_dim=5), "head_dim"),
    (lambda: Mamba2(32, head_dim=16, n_groups=3), "n_groups"),
])
def test_bad_sizes(make, name):
    with pytest.raises(ValueError, match=name):
        make()
