"""One backbone interface over the four mixers: explicit state that carries, decodes, detaches,
is indexed and reset by row; paper sizes match Table 6."""

import pytest
import torch

from omnirl.model.backbone import (ALL_BACKBONES, BACKBONES, BackboneConfig, build_backbone, detach_state, sized,
                                   reset_rows, select_rows)
from omnirl.model.mixers import CausalSelfAttention

TABLE_6 = {"gdn": 46.3e6, "gsa": 42.9e6, "mamba2": 31.6e6, "rwkv7": 42.9e6}


@pytest.fixture(params=ALL_BACKBONES)
def backbone(request):
    torch.manual_seed(0)
    return build_backbone(sized("tiny", request.param))


def test_segments_and_decode_equal_one_pass(backbone):
    x = torch.randn(2, 70, 64)
    y, final = backbone(x)
    state, parts = None, []
    for lo, hi in ((0, 5), (5, 66), (66, 70)):
        out, state = backbone(x[:, lo:hi], state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, 1), y, atol=3e-5, rtol=1e-4)
    with torch.no_grad():
        state, steps = backbone.init_state(2), []
        for t in range(12):
            out, state = backbone(x[:, t:t + 1], state)
            steps.append(out)
    torch.testing.assert_close(torch.cat(steps, 1), y[:, :12].detach(), atol=3e-5, rtol=1e-4)


def test_state_is_an_explicit_value(backbone):
    x = torch.randn(3, 9, 64)
    _, s = backbone(x)
    assert all(t.dtype == torch.float32 and t.shape[0] == 3 for layer in s for t in layer)
    d = detach_state(s)
    assert all(not t.requires_grad for layer in d for t in layer)
    # a row's state alone gives that row's output
    y_all, _ = backbone(x, s)
    y_one, _ = backbone(x[1:2], select_rows(s, slice(1, 2)))
    torch.testing.assert_close(y_one, y_all[1:2], atol=1e-6, rtol=1e-5)
    # resetting a row gives it an empty context, the others keep theirs
    r = reset_rows(d, torch.tensor([True, False, False]))
    y_reset, _ = backbone(x, r)
    y_fresh, _ = backbone(x[:1])
    torch.testing.assert_close(y_reset[:1], y_fresh, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(y_reset[1:], y_all[1:].detach(), atol=1e-6, rtol=1e-5)
    assert (y_all[:1] - y_fresh).abs().max() > 1e-4  # the context mattered


def test_state_can_be_saved_and_loaded(backbone, tmp_path):
    x = torch.randn(2, 6, 64)
    _, s = backbone(x)
    torch.save(detach_state(s), tmp_path / "state.pt")
    loaded = torch.load(tmp_path / "state.pt")
    torch.testing.assert_close(backbone(x, loaded)[0], backbone(x, s)[0])


@pytest.mark.parametrize("name", BACKBONES)
def test_paper_preset_matches_table_6(name):
    with torch.device("meta"):  # counts parameters without allocating them
        model = build_backbone(sized("paper", name))
    n = sum(p.numel() for p in model.parameters())
    assert abs(n / TABLE_6[name] - 1) < 0.1, (name, n)
    c = model.config
    assert (c.layers, c.dim, c.heads) == (18, 512, 8)


@pytest.mark.parametrize("kwargs, name", [
    (dict(name="lstm"), "name"),
    (dict(window=0), "window"),
    (dict(layers=0), "layers"),
    (dict(dim=64.0), "dim"),
    (dict(head_dim=0), "head_dim"),
])
def test_bad_config(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BackboneConfig(**kwargs)
    with pytest.raises(ValueError, match="size"):
        sized("huge", "gdn")


def test_gradients_do_not_cross_a_detached_segment_boundary(backbone):
    x1 = torch.randn(2, 7, 64, requires_grad=True)
    x2 = torch.randn(2, 5, 64)
    _, s1 = backbone(x1)
    # detached: no gradient reaches segment 1's input, the weights still get one
    y_cut, _ = backbone(x2, detach_state(s1))
    params = list(backbone.parameters())
    g_cut, *g_params = torch.autograd.grad(y_cut.square().sum(), [x1, *params], allow_unused=True)
    assert g_cut is None or not g_cut.any()
    assert any(g is not None and g.abs().max() > 0 for g in g_params)
    # carried without detaching: the same output, and its loss reaches segment 1's input through the state
    y_carry, _ = backbone(x2, s1)
    torch.testing.assert_close(y_carry.detach(), y_cut.detach())
    (g_carry,) = torch.autograd.grad(y_carry.square().sum(), x1)
    assert g_carry.abs().max() > 1e-6


def test_attention_window_holds_the_last_tokens_and_positions_are_relative():
    torch.manual_seed(0)
    attn = CausalSelfAttention(dim=16, heads=2, head_dim=8, window=5, conv_kernel=0)  # attention alone
    x = torch.randn(2, 14, 16)
    with torch.no_grad():
        state, steps = None, []
        for t in range(14):
            y, state = attn(x[:, t:t + 1], state)
            steps.append(y)
        # step t sees itself and the 5 tokens before it; rotary scores depend on distance only,
        # so it equals the last output of a fresh pass over those 6 tokens
        for t in (3, 9, 13):
            fresh, _ = attn(x[:, max(0, t - 5):t + 1])
            torch.testing.assert_close(steps[t][:, 0], fresh[:, -1], atol=1e-5, rtol=1e-4)
        # a token further back changes nothing once out of the window; within it, it does
        x2 = x.clone()
        x2[:, 2] += 1.0
        state2, out2 = None, []
        for t in range(14):
            y, state2 = attn(x2[:, t:t + 1], state2)
            out2.append(y)
    assert (out2[7] - steps[7]).abs().max() > 1e-4
    torch.testing.assert_close(out2[8], steps[8])
    assert state[3].tolist() == [14.0, 14.0] and state[2].shape == (2, 5)
