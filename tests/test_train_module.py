"""The training module: segment-wise truncated back-propagation, non-finite batches skipped, the
learning-rate schedule, and the per-position validation curves."""

import copy
import dataclasses
import math

import lightning
import numpy as np
import pytest
import torch

from omnirl.config import config_to_dict
from omnirl.model.omnirl import OmniRL
from omnirl.train.config import DataSection, ModelSection, TrainConfig, TrainSection
from omnirl.train.module import (BEHAVIOURS, MIN_WEIGHT, WORLD_MODEL_CURVES, OmniRLModule, detach_model_state,
                                 lr_factor, position_weights, segment_slices, split_window)

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),  # Lightning's data-loader advice
              pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")]  # lightning vs torch 2.13

S, A = 8, 4  # observed states, actions
B, T, L = 4, 64, 16  # batch, window, segment


def make_config(**train) -> TrainConfig:
    train = {"segment_len": L, "max_steps": 30, "lr": 3e-3, "warmup_steps": 3, "position_bins": 8, **train}
    return TrainConfig(model=ModelSection(backbone="gdn", size="tiny", n_obs=S, n_actions=A),
                       data=DataSection(window=T, batch_size=B), train=TrainSection(**train))


def make_module(**train) -> OmniRLModule:
    torch.manual_seed(0)
    return OmniRLModule(make_config(**train))


def make_batch(seed: int = 0, batch: int = B, window: int = T) -> dict[str, torch.Tensor]:
    """Random but valid steps; the label is a function of the observation (learnable), with a few
    end markers (label ``A``) and every tag."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, window + 1)
    obs = torch.randint(0, S, shape, generator=g)
    label = obs % A
    label[torch.rand(shape, generator=g) < 0.05] = A
    return {"obs": obs, "prompt": torch.randint(0, 8, shape, generator=g),
            "tag": torch.randint(0, 8, shape, generator=g), "action": torch.randint(0, A + 2, shape, generator=g),
            "label": label, "reward": torch.randn(shape, generator=g),
            "start": torch.randint(0, 3 * window, (batch,), generator=g)}


def loader(*batches: dict[str, torch.Tensor]) -> torch.utils.data.DataLoader:
    """A data loader yielding ``batches`` in order (as the default collate rebuilds them)."""
    samples = [{k: v[i] for k, v in b.items()} for b in batches for i in range(len(b["start"]))]
    return torch.utils.data.DataLoader(samples, batch_size=len(batches[0]["start"]), shuffle=False)


def trainer(max_steps: int, callbacks=(), **kwargs) -> lightning.Trainer:
    return lightning.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks),
                             **kwargs)


class Record(lightning.Callback):
    """Training metrics after every batch and the gradients the optimiser is about to apply."""

    def __init__(self):
        self.metrics, self.grads = [], []

    def on_train_batch_end(self, trainer, module, *args):
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.grads.append({n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None})


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


# ---------------------------------------------------------------- helpers


def test_position_weights_rise_linearly_then_stay_one():
    w = position_weights(torch.tensor([0, 50, 100, 101, 5000]), warmup=100)
    assert torch.allclose(w, torch.tensor([MIN_WEIGHT, MIN_WEIGHT + (1 - MIN_WEIGHT) / 2, 1.0, 1.0, 1.0]))
    assert torch.equal(position_weights(torch.arange(5), warmup=0), torch.ones(5))


def test_segments_and_window_split():
    assert segment_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    b = make_batch()
    inputs, targets = split_window(b)
    assert all(x.shape == (B, T) for x in [*inputs.values(), *targets.values()])
    assert torch.equal(targets["next_obs"], b["obs"][:, 1:]) and torch.equal(inputs["obs"], b["obs"][:, :-1])


def test_config_round_trips_through_hyperparameters():
    cfg = make_config()
    assert OmniRLModule(config_to_dict(cfg)).config == cfg
    with pytest.raises(ValueError, match="TrainConfig"):
        OmniRLModule(cfg.model)


# ---------------------------------------------------------------- learning-rate schedule


def test_lr_schedule_warms_up_linearly_then_decays_as_inverse_sqrt():
    module = make_module(lr=1e-3, warmup_steps=4)
    sched = module.configure_optimizers()
    optimizer, scheduler = sched["optimizer"], sched["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(16):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [1e-3 * (s + 1) / 4 for s in range(4)] + [1e-3 * math.sqrt(4 / (s + 1)) for s in range(4, 16)]
    assert np.allclose(lrs, expected)
    assert max(lrs) == pytest.approx(1e-3) and lrs[3] == max(lrs)
    assert lr_factor(99, 0) == pytest.approx(0.1)  # no warm-up: decay from the first step


# ---------------------------------------------------------------- training


def test_loss_decreases_on_a_fixed_batch():
    module, record = make_module(), Record()
    trainer(30, [record]).fit(module, loader(make_batch()))
    losses = [m["train/loss"] for m in record.metrics]
    assert len(losses) == 30 and module.trainer.global_step == 30
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:3]), losses
    last = record.metrics[-1]
    assert last["tokens_seen"] == 30 * B * T and last["train/skipped_steps"] == 0
    assert last["train/policy_loss"] < last["train/loss"]  # the world-model terms add to it


def segment_losses(model: OmniRL, batch, *, carry: bool, detach: bool) -> list[torch.Tensor]:
    """Per-segment losses scaled by their share of the window's steps (uniform weights): their sum is
    the window's mean loss. ``carry``: the state crosses segments; ``detach``: but not gradients."""
    inputs, targets = split_window(batch)
    n = (targets["label"] < A).sum()
    state, out = None, []
    for seg in segment_slices(T, L):
        o, new = model(**{k: x[:, seg] for k, x in inputs.items()}, state=state)
        parts = model.losses(o, **{k: x[:, seg] for k, x in targets.items()})
        out.append(parts["total"] * parts["step_mask"].sum() / n)
        state = (detach_model_state(new) if detach else new) if carry else None
    return out


def test_state_crosses_segments_but_gradients_do_not():
    module, record = make_module(grad_clip=0.0, context_warmup=0), Record()
    initial = copy.deepcopy(module.model)
    batch = make_batch(1)
    trainer(1, [record]).fit(module, loader(batch))
    logged_loss, grads = record.metrics[0]["train/loss"], record.grads[0]

    def grads_of(loss):
        initial.zero_grad()
        loss.backward()
        return {f"model.{n}": p.grad.clone() for n, p in initial.named_parameters()}

    truncated = segment_losses(initial, batch, carry=True, detach=True)
    assert logged_loss == pytest.approx(float(sum(truncated)), rel=1e-5)
    reset = segment_losses(initial, batch, carry=False, detach=True)
    assert abs(float(sum(reset)) - logged_loss) > 1e-3  # the carried state changes the loss

    expected = grads_of(sum(truncated))
    full_bptt = grads_of(sum(segment_losses(initial, batch, carry=True, detach=False)))
    assert grads.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(grads[name], expected[name], rtol=1e-4, atol=1e-6), name
    mixer = [n for n in expected if "blocks.0" in n]
    assert any(not torch.allclose(full_bptt[n], expected[n], rtol=1e-3, atol=1e-6) for n in mixer)


def test_context_warmup_gives_a_weighted_mean_over_absolute_positions():
    module, record = make_module(context_warmup=100), Record()
    initial = copy.deepcopy(module.model)
    batch = make_batch(2)
    batch["start"] = torch.tensor([0, 30, 90, 500])
    trainer(1, [record]).fit(module, loader(batch))

    inputs, targets = split_window(batch)
    with torch.no_grad():
        out, _ = initial(**inputs)  # one pass over the window: the same as segments with the state carried
        parts = initial.losses(out, **targets)
    per_position = parts["policy"] + 0.1 * parts["next_state"] + 0.1 * parts["reward"]
    w = position_weights(batch["start"][:, None] + torch.arange(T), 100) * parts["step_mask"]
    assert w[0, 0] == pytest.approx(MIN_WEIGHT) and torch.all(w[3][parts["step_mask"][3]] == 1)
    assert record.metrics[0]["train/loss"] == pytest.approx(float((w * per_position).sum() / w.sum()), rel=1e-4)
    assert record.metrics[0]["train/policy_loss"] == pytest.approx(
        float((w * parts["policy"]).sum() / w.sum()), rel=1e-4)


def nan_reward_batch() -> dict[str, torch.Tensor]:
    batch = make_batch(3)
    batch["reward"][1, 40] = float("nan")
    return batch


@pytest.mark.parametrize("cause", ["nan_reward", "nan_gradient"])
def test_non_finite_batch_is_skipped(cause):
    module, record = make_module(), Record()
    before = params(module)
    if cause == "nan_reward":
        bad = nan_reward_batch()
    else:
        bad = make_batch(3)
        module.model.policy_head.out.weight.register_hook(lambda g: torch.full_like(g, float("nan")))
    fit = trainer(10, [record], max_epochs=1)  # one pass over the data: skipped batches do not count as steps
    fit.fit(module, loader(bad))
    assert module.skipped_steps == 1 and fit.global_step == 0
    assert record.metrics[-1]["train/skipped_steps"] == 1
    after = params(module)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert not fit.optimizers[0].state  # AdamW never stepped
    assert all(p.grad is None for p in module.parameters())
    if cause == "nan_reward":
        assert math.isnan(record.metrics[-1]["train/loss"])
    else:
        assert math.isfinite(record.metrics[-1]["train/loss"])


def test_training_goes_on_after_a_skipped_batch():
    module, record = make_module(), Record()
    fit = trainer(10, [record], max_epochs=1)
    fit.fit(module, loader(make_batch(4), nan_reward_batch(), make_batch(5)))
    assert [m["train/skipped_steps"] for m in record.metrics] == [0, 1, 1]
    assert fit.global_step == 2 and len(record.grads) == 2
    assert all(torch.isfinite(p).all() for p in module.parameters())


# ---------------------------------------------------------------- validation


def test_validation_curves_per_set_and_behaviour():
    module = make_module(position_bins=8)
    module.val_names = ["seen", "unseen"]
    sets = {"seen": [make_batch(6), make_batch(7, batch=3)], "unseen": [make_batch(8)]}
    for b in [*sets["seen"], *sets["unseen"]]:
        b["start"].zero_()
    check = trainer(1)
    check.validate(module, dataloaders=[torch.utils.data.DataLoader(
        [{k: v[i] for k, v in b.items()} for b in bs for i in range(len(b["start"]))], batch_size=B)
        for bs in sets.values()], verbose=False)
    metrics = {k: float(v) for k, v in check.callback_metrics.items()}

    for name, batches in sets.items():
        curves = module.position_curves[name]
        world = set(WORLD_MODEL_CURVES)
        assert module.model.state_head is not None  # the world-model curves are checked too
        assert set(curves) == {"position", *BEHAVIOURS, *world}
        assert all(v.shape == (8,) for v in curves.values())
        assert np.allclose(curves["position"], np.arange(8) * 8 + 3.5)

        with torch.no_grad():  # the reference: one pass over each window
            losses, tags, masks, wm = [], [], [], {k: [] for k in WORLD_MODEL_CURVES.values()}
            for b in batches:
                inputs, targets = split_window(b)
                parts = module.model.losses(module.model(**inputs)[0], **targets)
                losses.append(parts["policy"]), tags.append(inputs["tag"]), masks.append(parts["step_mask"])
                for k in wm:
                    wm[k].append(parts[k])
        loss, tag, mask = torch.cat(losses), torch.cat(tags), torch.cat(masks)
        for key, part in WORLD_MODEL_CURVES.items():  # world-model losses over every step, by position
            if key in world:
                w = torch.cat(wm[part])
                assert metrics[f"val/{name}/{part}_loss"] == pytest.approx(float((w * mask).sum() / mask.sum()), rel=1e-4)
                per_bin = [(w[:, i:i + 8] * mask[:, i:i + 8]).sum() / mask[:, i:i + 8].sum() for i in range(0, T, 8)]
                assert np.allclose(curves[key], torch.stack(per_bin).numpy(), rtol=1e-4), key
                assert f"val/{name}/{part}_loss_last_quarter" in metrics

        def mean(m, positions=slice(None)):
            return float((loss[:, positions] * m[:, positions]).sum() / m[:, positions].sum())

        assert metrics[f"val/{name}/policy_loss"] == pytest.approx(mean(mask), rel=1e-4)
        assert metrics[f"val/{name}/policy_loss_first_steps"] == pytest.approx(mean(mask, slice(0, 32)), rel=1e-4)
        assert metrics[f"val/{name}/policy_loss_last_quarter"] == pytest.approx(mean(mask, slice(48, None)), rel=1e-4)
        for behaviour, ids in BEHAVIOURS.items():
            m = mask if ids is None else mask & torch.isin(tag, torch.tensor(ids))
            per_bin = [(loss[:, i:i + 8] * m[:, i:i + 8]).sum() / m[:, i:i + 8].sum() for i in range(0, T, 8)]
            assert np.allclose(curves[behaviour], torch.stack(per_bin).numpy(), rtol=1e-4), behaviour
            if behaviour != "all":
                assert metrics[f"val/{name}/{behaviour}/policy_loss"] == pytest.approx(mean(m), rel=1e-4)
    assert not np.allclose(module.position_curves["seen"]["random"], module.position_curves["seen"]["oracle"])


def test_validation_logs_the_reference_and_the_gain():
    from omnirl.agents.reference import learning_gain
    from omnirl.train.data import REFERENCE_FIELDS
    from omnirl.train.module import REFERENCE_CURVES

    module = make_module(position_bins=4)
    module.val_names = ["unseen"]
    batch = make_batch(6)
    batch["start"].zero_()
    g = torch.Generator().manual_seed(1)
    for f in REFERENCE_FIELDS:  # (B, T) per-step reference losses, 0 at end markers like the model's
        batch[f] = torch.rand(B, T, generator=g) * (batch["label"][:, :-1] < A)
    batch["ref_policy"] = torch.linspace(2.0, 0.5, T).repeat(B, 1) * (batch["label"][:, :-1] < A)
    check = trainer(1)
    check.validate(module, dataloaders=[torch.utils.data.DataLoader(
        [{k: v[i] for k, v in batch.items()} for i in range(B)], batch_size=B)], verbose=False)
    metrics = {k: float(v) for k, v in check.callback_metrics.items()}
    curves = module.position_curves["unseen"]
    assert set(REFERENCE_CURVES) <= set(curves)

    mask = (batch["label"][:, :-1] < A).float()
    with torch.no_grad():
        inputs, targets = split_window(batch)
        loss = module.model.losses(module.model(**inputs)[0], **targets)["policy"]

    def mean(x, positions=slice(None)):
        return float((x[:, positions] * mask[:, positions]).sum() / mask[:, positions].sum())

    q1, q4 = slice(0, T // 4), slice(3 * T // 4, None)
    ref = batch["ref_policy"]
    assert metrics["val/unseen/reference_policy_loss"] == pytest.approx(mean(ref), rel=1e-5)
    assert metrics["val/unseen/reference_policy_loss_first_quarter"] == pytest.approx(mean(ref, q1), rel=1e-5)
    assert metrics["val/unseen/reference_policy_loss_last_quarter"] == pytest.approx(mean(ref, q4), rel=1e-5)
    assert metrics["val/unseen/policy_loss_first_quarter"] == pytest.approx(mean(loss, q1), rel=1e-4)
    expected = learning_gain(mean(loss, q1), mean(loss, q4), mean(ref, q1), mean(ref, q4))
    assert metrics["val/unseen/gain"] == pytest.approx(expected, rel=1e-3, abs=1e-5)
    for key, field in REFERENCE_CURVES.items():
        if key != "reference":
            metric = key.split("/")[1] + "_loss_" + key.split("/")[2]
            assert metrics[f"val/unseen/{metric}"] == pytest.approx(mean(batch[field]), rel=1e-5), key


def test_soft_policy_targets_train_the_cross_entropy_against_them():
    """With ``policy_target`` in the batch, the logged policy loss is ``-sum_a q_a log p_a`` (``p`` the
    model's softmax over its ``A + 1`` outputs) averaged over the steps, computed here by hand."""
    module, record = make_module(context_warmup=0), Record()
    initial = copy.deepcopy(module.model)
    batch = make_batch(4)
    torch.manual_seed(5)
    batch["policy_target"] = torch.distributions.Dirichlet(torch.ones(A)).sample((B, T))
    trainer(1, [record]).fit(module, loader(batch))

    inputs, targets = split_window(batch)
    assert targets["policy_target"].shape == (B, T, A)
    with torch.no_grad():
        out, _ = initial(**inputs)
    logits = out["policy"].double().numpy()  # (B, T, A + 1)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    q = batch["policy_target"].double().numpy()
    step = (targets["label"] < A).numpy()
    expected = (-(q * logp[..., :A]).sum(-1) * step).sum() / step.sum()
    assert record.metrics[0]["train/policy_loss"] == pytest.approx(expected, rel=1e-4)
    hard = (-np.take_along_axis(logp, np.minimum(targets["label"].numpy(), A)[..., None], -1)[..., 0] * step).sum()
    assert abs(hard / step.sum() - expected) > 1e-3  # the labels were not used (10x the tolerance above)


def test_soft_policy_targets_of_the_wrong_shape_are_refused():
    model = make_module().model
    inputs, targets = split_window(make_batch(6))
    with torch.no_grad():
        out, _ = model(**inputs)
    with pytest.raises(ValueError, match="policy_target must have shape"):
        model.losses(out, **targets, policy_target=torch.full((B, T, A + 1), 1.0 / (A + 1)))


def test_pair_reward_means_are_the_earlier_mean_reward_of_each_action_in_the_state():
    from omnirl.train.module import pair_reward_means

    b = make_batch(3, batch=3, window=40)
    obs, action, reward = b["obs"][:, :-1], b["action"][:, :-1], b["reward"][:, :-1]
    got = pair_reward_means(obs, action, reward, S, A)  # (B, T, A)
    assert got.shape == (3, 40, A)
    for i in range(3):
        for t in range(40):
            for a in range(A):
                past = [float(reward[i, u]) for u in range(t) if obs[i, u] == obs[i, t] and action[i, u] == a]
                if past:
                    assert got[i, t, a].item() == pytest.approx(np.mean(past), rel=1e-5, abs=1e-6)
                else:
                    assert torch.isnan(got[i, t, a])
    # causal: step t's own action and reward (and any later step's) do not enter its targets
    changed = reward.clone()
    changed[:, 20:] += 100.0
    np.testing.assert_array_equal(pair_reward_means(obs, action, changed, S, A)[:, :21].numpy(), got[:, :21].numpy())


def test_the_action_value_head_trains_on_whole_window_targets():
    from omnirl.train.module import tbptt_backward, value_targets

    cfg = make_config()
    plain = OmniRL(cfg.model.build())
    assert plain.value_head is None and plain.config.value_weight == 0.0
    torch.manual_seed(0)
    model = OmniRL(dataclasses.replace(cfg.model, value_weight=0.5).build())
    assert model.value_head is not None
    batch = make_batch(5)
    inputs, _ = split_window(batch)
    target = value_targets(model, inputs)
    assert target.shape == (B, T, A) and torch.isfinite(target[:, -1]).any()
    # the loss is the same whether the window is cut into segments or not: the targets are the
    # whole window's (per-segment targets would forget the earlier segments' rewards)
    losses = []
    for seg in (L, T):
        model.zero_grad()
        loss, _ = tbptt_backward(model, batch, seg)
        losses.append(loss.item())
        assert model.value_head.out.weight.grad is not None and model.value_head.out.weight.grad.abs().sum() > 0
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    # and it includes the value term: without the head's loss the same weights give a smaller loss
    out, _ = model(**inputs)
    with_values = model.losses(out, label=batch["label"][:, :-1], next_obs=batch["obs"][:, 1:],
                               reward=batch["reward"][:, :-1], value_target=target)
    without = model.losses(out, label=batch["label"][:, :-1], next_obs=batch["obs"][:, 1:],
                           reward=batch["reward"][:, :-1])
    assert "values" in with_values and "values" not in without
    assert with_values["total"].item() > without["total"].item()
    with pytest.raises(ValueError, match="value_target must have shape"):
        model.losses(out, label=batch["label"][:, :-1], value_target=target[..., :-1])
