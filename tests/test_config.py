"""Typed configuration from YAML and dotted overrides: types checked, unknown keys named."""

import dataclasses

import pytest

from omnirl.agents import BehaviourMixConfig
from omnirl.config import config_from_dict, config_to_dict, load_config, parse_overrides
from omnirl.model.omnirl import OmniRLConfig


@dataclasses.dataclass(frozen=True)
class Inner:
    size: int = 4
    """A size."""
    rate: float = 0.5
    """A rate."""
    name: str | None = None
    """An optional name."""

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    """A section."""
    flag: bool = False
    """A switch."""
    pair: tuple[float, float] = (0.0, 1.0)
    """A range."""
    tags: tuple[str, ...] = ()
    """Names."""


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("inner:\n  size: 8\nflag: true\n")
    cfg = load_config(Outer, f, ["--inner.rate=0.25", "pair=[0.1, 0.9]", "--tags", "[a, b]", "--inner.name=x"])
    assert cfg == Outer(Inner(8, 0.25, "x"), True, (0.1, 0.9), ("a", "b"))
    assert load_config(Outer) == Outer()
    assert config_from_dict(Outer, config_to_dict(cfg)) == cfg  # resolved config round-trips
    assert config_from_dict(Outer, {}, {"inner.rate": 1}).inner.rate == 1.0  # ints widen to float


@pytest.mark.parametrize("overrides, message", [
    (["--inner.sise=3"], "'inner'.*'sise'"),
    (["--colour=red"], "'colour'"),
    (["--inner.size=3.5"], "inner.size.*int.*3.5"),
    (["--flag=1"], "flag.*bool.*1"),
    (["--pair=[1, 2, 3]"], "pair.*2 elements"),
    (["--inner.rate=fast"], "inner.rate.*float.*fast"),
    (["--inner=3"], "inner must be a section"),
    (["--flag.x=1"], "flag"),
    (["--inner.size=0"], "inner: size must be >= 1"),
    (["inner.size"], "must be --key=value"),
])
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        load_config(Outer, None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config(Outer, tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping at the top"):
        load_config(Outer, tmp_path / "list.yaml")


def test_parse_overrides_forms():
    assert parse_overrides(["--a.b=1", "c=x", "--d", "2", "--e=", "--f=null"]) == {
        "a.b": 1, "c": "x", "d": 2, "e": "", "f": None}


def test_the_project_configs_load_from_data():
    model = config_from_dict(OmniRLConfig, {"layout": "paper", "backbone": {"name": "gdn", "dim": 32}},
                             ["--backbone.head_dim=8", "--state_weight=0.2"])
    assert (model.layout, model.backbone.name, model.backbone.dim, model.backbone.head_dim) == ("paper", "gdn", 32, 8)
    assert model.state_weight == 0.2
    with pytest.raises(ValueError, match="backbone: name must be one of"):
        config_from_dict(OmniRLConfig, {}, ["--backbone.name=lstm"])
    mix = config_from_dict(BehaviourMixConfig, {"weights": {"random": 1.0}}, ["--mix_noise=[0.0, 0.5]"])
    assert dict(mix.weights) == {"random": 1.0} and mix.mix_noise == (0.0, 0.5)


def test_parse_overrides_reads_wandb_values():
    # W&B's ${args} writes Python str(): 1e-05 (not YAML 1.1 float syntax) and None
    assert parse_overrides(["--lr=1e-05", "--x=None", "--y=1E+3", "--z=[1, 2]", "--w=True"]) == {
        "lr": 1e-05, "x": None, "y": 1000.0, "z": [1, 2], "w": True}


def test_a_range_is_text_not_a_base_60_number(tmp_path):
    # YAML 1.1 reads 16:32 as 16 * 60 + 32 = 992; a MIN:MAX range must stay text (YAML 1.2's reading)
    @dataclasses.dataclass(frozen=True)
    class Sizes:
        states: str | int = "16:64"
        """S or MIN:MAX."""

    assert parse_overrides(["--a=16:32", "--b=1:2:3", "--c=12:30:00.5", "--d=2024-01-01"]) == {
        "a": "16:32", "b": "1:2:3", "c": "12:30:00.5", "d": "2024-01-01"}
    assert load_config(Sizes, None, ["--states=16:32"]).states == "16:32"
    f = tmp_path / "c.yaml"
    f.write_text("states: 16:32\n")
    assert load_config(Sizes, f).states == "16:32"
    f.write_text("states: 32\n")
    assert load_config(Sizes, f).states == 32


def test_an_experiments_state_range_stays_a_range(tmp_path):
    from experiments import ss_ablation
    from experiments._common import parse

    def states(value):
        argv = ["--preset", "smoke", "--out", str(tmp_path / "x"), f"--dataset.states={value}"]
        return parse("ss_ablation", ss_ablation.PRESETS, argv).settings.dataset.states

    assert states("16:32") == "16:32" and states("32") == 32  # a plain size is still a number
    assert not (tmp_path / "x").exists()
