"""What the tokens alone carry (input probes), the tokenizer's yardstick, and the design check's plumbing."""

import pytest
import torch

from mage_lite.lab import design_check
from mage_lite.config import ConfigError
from mage_lite.data import make_shapes
from mage_lite.mage_eval import input_features, probe_inputs
from mage_lite.probe import ProbeConfig, ProbeData
from mage_lite.tokenizer_eval import reconstruction_quality, thumbnail
from mage_lite.vqgan import VQGAN, VQGANConfig


def tiny_tokenizer(**kw) -> VQGAN:
    torch.manual_seed(0)
    vq = VQGAN(VQGANConfig(channels=8, norm_groups=4, codebook_size=16, code_dim=4, disc_channels=4, **kw))
    vq.quantizer.initialized.fill_(True)
    return vq.eval()


def test_input_features_by_hand():
    vq = tiny_tokenizer()
    ids = torch.tensor([[0, 0, 3, 5], [1, 1, 1, 1]])
    f = input_features(vq, ids)
    bag, vec = f["bag_of_codes"], f["code_vectors"]
    assert bag.shape == (2, 16) and torch.allclose(bag.sum(1), torch.ones(2))
    assert bag[0, 0] == 0.5 and bag[0, 3] == 0.25 and bag[1, 1] == 1.0
    codes = vq.quantizer.codes().detach()  # (K, D), l2-normalised as the quantizer compares them
    assert vec.shape == (2, 4 * 4) and torch.allclose(vec[0, 8:12], codes[3])
    assert torch.allclose(vec[1].view(4, 4), codes[1].expand(4, 4))


def test_probe_inputs_reads_a_label_carried_by_the_codes():
    # images whose class decides which code they are made of: the bag of codes separates them perfectly
    ds = make_shapes(200, 50, seed=0)
    probe = ProbeData(ds, ProbeConfig(train_size=200, test_size=50, epochs=30))
    vq = tiny_tokenizer()
    ids_tr = (probe.train_labels % 16)[:, None].expand(-1, 4).clone()
    ids_te = (probe.test_labels % 16)[:, None].expand(-1, 4).clone()
    acc = probe_inputs(probe, vq, ids_tr, ids_te)
    assert set(acc) == {"bag_of_codes", "code_vectors"}
    noise = probe_inputs(probe, vq, torch.randint(0, 16, ids_tr.shape), torch.randint(0, 16, ids_te.shape))
    assert acc["bag_of_codes"] > 80  # one code per class: a histogram separates them linearly
    # codes unrelated to the label carry nothing (4-d code vectors separate fewer classes linearly than a histogram)
    assert noise["bag_of_codes"] < acc["bag_of_codes"] - 30 and noise["code_vectors"] < acc["code_vectors"] - 20


def test_thumbnail_keeps_flat_images_and_blurs_detail():
    flat = torch.full((2, 3, 32, 32), 0.3)
    assert torch.allclose(thumbnail(flat, 4), flat)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2  # pixel checkerboard
    img = checker.float().expand(1, 3, 32, 32)
    assert torch.allclose(thumbnail(img, 4), torch.full_like(img, 0.5))


def test_reconstruction_quality_fields():
    vq = tiny_tokenizer()
    imgs = (torch.rand(6, 3, 32, 32) * 255).to(torch.uint8)
    q = reconstruction_quality(vq, imgs, batch_size=4)
    assert q["ids"].shape == (6, 8, 8) and q["rec"].shape == (6, 3, 32, 32)
    assert 0 < q["usage"] <= 1 and q["psnr"] > 0 and q["psnr_thumbnail"] > q["psnr"]  # an untrained tokenizer loses


def test_overrides_are_parsed_and_bad_ones_refused():
    assert design_check.parse_overrides(["mage.decoder_pos=sincos", "vqgan.codebook_size=64", "data.crop_scale=[0.8, 1]"]) == {
        "mage.decoder_pos": "sincos", "vqgan.codebook_size": 64, "data.crop_scale": [0.8, 1]}
    with pytest.raises(ConfigError, match="key=value"):
        design_check.parse_overrides(["mage.decoder_pos"])


def test_bad_arm_is_refused_before_training(capsys):
    assert design_check.main(["--arm", "x", "mage.decoder_pos=diagonal", "--out", "/nonexistent/x.json"]) == 2
    assert "decoder_pos" in capsys.readouterr().err


def test_render_table_has_one_row_per_arm():
    arm = {"tokenizer": {"codebook_size": 256, "epochs": 1.02, "psnr": 22.25, "psnr_thumbnail": 20.71, "usage": 1.0},
           "mage": {"epochs": 0.51}, "decoder_pos": "sincos", "overrides": {"mage.decoder_pos_scale": 2}, "padding": "cls", "masked_acc": 3.5, "masked_acc_baseline": 1.14,
           "mode_share": 0.76, "mode_share_true": 0.09, "probe_mage": 30.8, "probe_random_encoder": 28.4,
           "probe_inputs": {"bag_of_codes": 32.5, "code_vectors": 38.3}}
    table = design_check.render_table({"preset": "ci", "seed": 0, "command": "cmd", "arms": {"a": arm, "b": arm}})
    rows = [l for l in table.splitlines() if l.startswith("| a ") or l.startswith("| b ")]
    assert len(rows) == 2 and "22.25 (20.71)" in rows[0] and "76.0" in rows[0] and "3.50 (1.14)" in rows[0] and "| sincos x2 |" in rows[0]


def test_readme_design_tables_are_rendered_from_their_files():
    import re

    from mage_lite.artifacts import REPO_ROOT
    from mage_lite.lab.readme import read_block

    block = read_block(design_check.BLOCK)
    files = re.findall(r"--out (reports/design/\S+\.json)", block)
    assert files, "the README's design tables name no result file"
    assert block == design_check.render_tables([str(REPO_ROOT / f) for f in files]).strip(), \
        "README's design tables are stale: run python -m mage_lite design-check --render " + " ".join(files)
