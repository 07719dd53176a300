import dataclasses
from pathlib import Path

import pytest

from mage_lite.config import PRESET_NAMES, ConfigError, check_variant, load_preset
from mage_lite.device import pick_device
from mage_lite.mage_c import MAGEC
from mage_lite.mage_continuous import ContinuousMAGE
from mage_lite.mage_family import build_mage

REPO = Path(__file__).resolve().parents[2]


def test_presets_exist_and_grow():
    assert PRESET_NAMES == ("smoke", "ci", "cpu", "gpu", "report")
    steps = [load_preset(n).mage_train.steps for n in ("smoke", "ci", "cpu", "gpu")]
    assert steps == sorted(steps)
    assert load_preset("smoke").data.dataset == "shapes"
    assert all(load_preset(n).data.dataset == "cifar10" for n in ("ci", "cpu", "gpu", "report"))
    # the report preset is ci's models at ci's budgets, below cpu's
    assert load_preset("ci").mage_train.steps == load_preset("report").mage_train.steps < load_preset("cpu").mage_train.steps


def test_the_mage_section_keeps_every_field_of_every_mage_variant():
    # Its dict is part of a trained model's reuse key and of the seed of its initial weights: the
    # split into mage.py / mage_c.py / mage_continuous.py must not add, drop or rename a field.
    fields = dataclasses.asdict(load_preset("ci").mage)
    assert set(fields) == {
        "codebook_size", "num_tokens", "dim", "depth", "heads", "decoder_dim", "decoder_depth", "decoder_heads",
        "mlp_ratio", "dropout", "mask_ratio", "per_sample_ratio", "drop_ratio", "padding", "decoder_pos", "decoder_pos_scale",
        "loss_on",
        "label_smoothing", "input", "feature_dim", "contrastive_weight", "contrastive_temperature", "contrastive_hidden",
        "contrastive_out", "contrastive_input"}
    assert fields["contrastive_weight"] == 0.0 and fields["input"] == "tokens"  # plain MAGE unless asked
    over = load_preset("ci", {"mage.contrastive_weight": 0.1, "mage.padding": "mask_token", "mage.decoder_pos": "sincos"}).mage
    assert type(build_mage(dataclasses.replace(over, codebook_size=16, num_tokens=64))) is MAGEC
    assert type(build_mage(load_preset("ci", {"mage.input": "continuous", "mage.feature_dim": 4}).mage)) is ContinuousMAGE
    with pytest.raises(ConfigError, match="mage.input"):
        load_preset("ci", {"mage.input": "pixels"})


def test_overrides_apply_in_both_spellings():
    a = load_preset("ci", {"mae_train.steps": 7, "data.crop_scale": [0.8, 1.0]})
    b = load_preset("ci", {"mae_train": {"steps": 7}, "data": {"crop_scale": (0.8, 1.0)}})
    assert a == b and a.mae_train.steps == 7 and a.data.crop_scale == (0.8, 1.0)
    assert load_preset("ci", dataset="shapes").data.dataset == "shapes"
    assert load_preset("ci", {"mae_ratio_sweep": [0.5]}).mae_ratio_sweep == (0.5,)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: load_preset("huge"), "choose one of smoke, ci, cpu, gpu, report"),
        (lambda: load_preset("ci", {"mae_train.stepz": 3}), "mae_train has steps, batch_size"),
        (lambda: load_preset("ci", {"maee.dim": 3}), "choose one of"),
        (lambda: load_preset("ci", {"mae.mask_ratio": 1.5}), "mae.mask_ratio must be in [0, 1)"),
        (lambda: load_preset("ci", {"data.crop_scale": (0.0, 1.0)}), "0 < low <= high <= 1"),
        (lambda: load_preset("ci", {"mae_train.steps": "many"}), "takes a value like"),
        (lambda: load_preset("ci", {"mae_train.steps": 0}), "at least 1"),
    ],
)
def test_bad_input_refused_in_one_sentence(call, fragment):
    with pytest.raises(ConfigError) as e:
        call()
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="auto"):
        pick_device("tpu")


def test_ablations_are_config_and_the_variant_a_parameter_of_the_run():
    # ci leaves out the ablation models (CI runs it); every other preset trains them.
    assert not any(dataclasses.asdict(load_preset("ci").ablations).values())
    assert all(all(dataclasses.asdict(load_preset(n).ablations).values()) for n in ("smoke", "cpu", "gpu", "report"))
    assert not load_preset("report", {"ablations.fixed_ratio": False}).ablations.fixed_ratio
    # the variant names a run (the report's arms), not a preset: no field of any preset, checked where a run starts
    with pytest.raises(ConfigError, match="unknown parameter 'variant'"):
        load_preset("report", {"variant": "padding-mask_token"})
    assert check_variant("padding-mask_token") == "padding-mask_token" and check_variant("") == ""
    with pytest.raises(ConfigError, match="variant must be letters"):
        check_variant("../elsewhere")
    for stem in ("03_mage_variable_masking", "04_contrastive_cotraining", "05_quantization_shortcut"):
        source = (REPO / "notebooks" / f"{stem}.py").read_text()
        params = source.split('tags=["parameters"]')[1].split("# %%")[0]
        assert not any(name in params for name in ("tag =", "masking_ablation", "crop_ablation")), stem
