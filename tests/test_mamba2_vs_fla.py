"""Our Mamba2 mixer against fla's ``Mamba2`` layer, on the CPU, in pure torch.

fla's layer has no CPU kernels, but without ``mamba_ssm`` it runs ``Mamba2.torch_forward`` (a
chunked torch SSD), which only calls two Triton modules: ``act`` (fla's swish) and ``norm``
(``RMSNormGated``). Both are swapped for torch (``nn.SiLU`` and fla's own ``rms_norm_ref``), fla's
weights are loaded into our mixer, and the two must agree on the output, the final SSM state and
the convolution cache.

Weight mapping (fla -> ours): the parameter names and shapes are identical, so fla's
``state_dict`` loads as is with ``strict=True``:

* ``in_proj.weight (I + (I + 2 G N) + H, D)``: rows ordered ``z (gate) | xBC | dt`` in both
  (fla's leading ``d_mlp`` split is empty since ``in_proj`` has no MLP part);
* ``conv1d.weight (I + 2 G N, 1, W)`` and ``conv1d.bias``: fla's depthwise ``nn.Conv1d`` (padding
  ``W - 1``, first ``T`` outputs kept) and our ``ShortConv`` use the same orientation (last tap on
  the newest input);
* ``dt_bias (H,)``, ``A_log (H,)``, ``D (H,)`` (fla's default ``D_has_hdim=False``; ours has no
  per-channel ``D``), ``norm.weight (I,)``, ``out_proj.weight (D, I)``.

State layouts: fla's SSM state is ``[B, H, P, N]``, ours ``[B, H, N, P]``; both convolution
caches are the last ``W`` inputs of ``xBC``, ``[B, I + 2 G N, W]``, oldest first.

Groups (``n_groups > 1``): fla's torch *prefill* path tiles the groups over the heads
(``B.repeat``: head ``h`` reads group ``h % G``) while its decode path, ``mamba_ssm``'s kernels and
our mixer assign contiguous blocks (head ``h`` reads group ``h // (H / G)``), so the grouped tests
below use fla's decode path or make all groups' ``B``/``C`` equal. Like fla and ``mamba_ssm``, our
mixer normalises the gated output per group (``group_size = I / G``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from omnirl.model.mixers import Mamba2

try:
    from fla.layers.mamba2 import Mamba2 as FlaMamba2
    from fla.models.cache_utils import Cache
    from fla.modules.norm.layernorm_gated import rms_norm_ref
except Exception as exc:  # noqa: BLE001 - any import failure (no fla, broken triton) means skip
    pytest.skip(f"fla's Mamba2 layer cannot be imported ({type(exc).__name__}: {exc})",
                allow_module_level=True)

DIM, HEAD_DIM, EXPAND, STATE, CONV = 32, 16, 2, 8, 4
INNER = EXPAND * DIM
HEADS = INNER // HEAD_DIM
BATCH, STEPS = 2, 40
ATOL, RTOL = 1e-5, 1e-5


def torch_norm(norm: nn.Module, group_size: int | None):
    """A torch forward for fla's ``RMSNormGated`` (the same math as its Triton kernel)."""
    def forward(x, z=None):
        return rms_norm_ref(x, norm.weight, norm.bias, z=z, eps=norm.eps, group_size=group_size,
                            norm_before_gate=norm.norm_before_gate)
    return forward


def make_pair(n_groups: int = 1, chunk_size: int = 16, seed: int = 0) -> tuple[nn.Module, Mamba2]:
    """fla's layer (Triton modules swapped for torch, every parameter randomised) and our mixer
    loaded with its weights. ``chunk_size=16`` makes fla's SSD cross chunk boundaries at T=40."""
    torch.manual_seed(seed)
    ref = FlaMamba2(num_heads=HEADS, head_dim=HEAD_DIM, hidden_size=DIM, state_size=STATE,
                    expand=EXPAND, n_groups=n_groups, conv_kernel=CONV, chunk_size=chunk_size,
                    layer_idx=0)
    ref.act = nn.SiLU()
    ref.norm.forward = torch_norm(ref.norm, ref.norm.group_size)
    assert ref.norm.norm_before_gate is False and not ref.D_has_hdim
    assert ref.norm.group_size == INNER // n_groups
    with torch.no_grad():  # D and the norm weight start at ones: randomise so a mix-up shows
        ref.D.copy_(torch.randn(HEADS))
        ref.norm.weight.copy_(1 + 0.5 * torch.randn(INNER))
        ref.conv1d.bias.copy_(0.3 * torch.randn_like(ref.conv1d.bias))
        ref.A_log.copy_(torch.log(torch.empty(HEADS).uniform_(0.5, 4.0)))
        ref.dt_bias.add_(1.5)  # larger steps, so the state decays visibly within 40 steps

    ours = Mamba2(DIM, head_dim=HEAD_DIM, expand=EXPAND, state_size=STATE, n_groups=n_groups,
                  conv_kernel=CONV)
    ref_sd, ours_sd = ref.state_dict(), ours.state_dict()
    assert set(ref_sd) == set(ours_sd)
    for name, t in ref_sd.items():
        assert ours_sd[name].shape == t.shape, name
    ours.load_state_dict(ref_sd, strict=True)
    return ref, ours


def fla_prefill(ref: nn.Module, x: torch.Tensor):
    """fla's single-segment forward through the layer API -> ``(y, S [B,H,P,N], conv [B,C,W])``."""
    cache = Cache()
    y, _, cache = ref(x, past_key_values=cache, use_cache=True)
    return y, cache[0]["recurrent_state"], cache[0]["conv_state"]


def fla_decode(ref: nn.Module, x: torch.Tensor, S_bhpn: torch.Tensor, conv: torch.Tensor):
    """fla's one-token decode path over every step of ``x``, starting from the given state."""
    cache = Cache.from_legacy_cache(({"recurrent_state": S_bhpn.clone(), "conv_state": conv.clone(),
                                      "attn_state": None, "ffn_state": None},))
    ys = []
    for t in range(x.shape[1]):
        y, _, cache = ref(x[:, t:t + 1], past_key_values=cache, use_cache=True)
        ys.append(y)
    return torch.cat(ys, 1), cache[0]["recurrent_state"]


def test_fla_layer_takes_the_torch_path():
    ref, _ = make_pair()
    assert not ref.in_proj.weight.is_cuda
    d_mlp = (ref.in_proj.out_features - 2 * ref.intermediate_size
             - 2 * ref.n_groups * ref.ssm_state_size - ref.num_heads) // 2
    assert d_mlp == 0  # fla splits in_proj as (z, xBC, dt), like ours
    assert ref.conv1d.weight.shape == (INNER + 2 * STATE, 1, CONV)


@torch.no_grad()
def test_single_segment_matches_fla():
    ref, ours = make_pair()
    x = torch.randn(BATCH, STEPS, DIM)
    y_ref, S_ref, conv_ref = fla_prefill(ref, x)
    y, (conv, S) = ours(x)

    assert y.abs().max() > 1e-2  # a non-trivial output
    torch.testing.assert_close(y, y_ref, atol=ATOL, rtol=RTOL)
    assert S_ref.shape == (BATCH, HEADS, HEAD_DIM, STATE)  # fla: [B, H, P, N]
    assert S.shape == (BATCH, HEADS, STATE, HEAD_DIM)  # ours: [B, H, N, P]
    torch.testing.assert_close(S, S_ref.transpose(-1, -2), atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(conv, conv_ref, atol=0.0, rtol=0.0)


def test_gradients_match_fla():
    ref, ours = make_pair(seed=1)
    x = torch.randn(BATCH, STEPS, DIM)
    w = torch.randn(BATCH, STEPS, DIM)
    x_ref, x_ours = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    (ref(x_ref)[0] * w).sum().backward()
    (ours(x_ours)[0] * w).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-5, rtol=1e-4)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[name].grad, atol=1e-4, rtol=1e-4, msg=name)


@torch.no_grad()
def test_our_state_continues_in_fla_decode():
    """Our state after 30 steps, handed to fla's decode path (S transposed to [B,H,P,N]), gives
    the last 10 outputs and the final state of our single pass."""
    ref, ours = make_pair(seed=2)
    x = torch.randn(BATCH, STEPS, DIM)
    y, (_, S_full) = ours(x)
    _, (conv, S) = ours(x[:, :30])
    y_dec, S_dec = fla_decode(ref, x[:, 30:], S.transpose(-1, -2), conv)
    torch.testing.assert_close(y_dec, y[:, 30:], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(S_dec.transpose(-1, -2), S_full, atol=ATOL, rtol=RTOL)


@torch.no_grad()
def test_groups_assign_heads_like_fla_decode():
    """n_groups=2 with distinct B/C per group: ours matches fla's decode path (contiguous head
    blocks per group, the gated norm per group)."""
    ref, ours = make_pair(n_groups=2, seed=3)
    x = torch.randn(BATCH, 12, DIM)
    y, (_, S) = ours(x)
    zeros_S = torch.zeros(BATCH, HEADS, HEAD_DIM, STATE)
    zeros_conv = torch.zeros(BATCH, INNER + 4 * STATE, CONV)
    y_dec, S_dec = fla_decode(ref, x, zeros_S, zeros_conv)
    torch.testing.assert_close(y, y_dec, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(S, S_dec.transpose(-1, -2), atol=ATOL, rtol=RTOL)


def equal_groups(ref: nn.Module) -> None:
    """Make every group's B and C equal to group 0's (in_proj rows and conv channels), so the
    group-to-head assignment cannot matter."""
    G, N, I = ref.n_groups, ref.ssm_state_size, ref.intermediate_size
    with torch.no_grad():
        for base in (I, I + G * N):  # B, then C, within xBC
            for g in range(1, G):
                src, dst = slice(base, base + N), slice(base + g * N, base + (g + 1) * N)
                ref.in_proj.weight[I:][dst] = ref.in_proj.weight[I:][src]
                ref.conv1d.weight[dst] = ref.conv1d.weight[src]
                ref.conv1d.bias[dst] = ref.conv1d.bias[src]


@torch.no_grad()
def test_grouped_gated_norm_matches_fla():
    """n_groups=2 through fla's prefill path (groups made equal, see the module docstring): the
    gated norm is taken per group on both sides."""
    ref, ours = make_pair(n_groups=2, seed=4)
    equal_groups(ref)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(BATCH, STEPS, DIM)
    y_ref, _, _ = fla_prefill(ref, x)
    y, _ = ours(x)
    torch.testing.assert_close(y, y_ref, atol=ATOL, rtol=RTOL)
