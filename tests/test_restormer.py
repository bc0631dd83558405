"""Restormer in the official checkpoints' layout (paper section 5.1.1's pretrained baseline)."""

import pytest
import torch

from recon_restore.errors import UserError
from recon_restore.restorers import restormer

# official parameter counts of the pretrained models (facts of the released checkpoints)
OFFICIAL = {"WithBias": 26_126_644, "BiasFree": 26_111_668}


@pytest.mark.parametrize("setting", list(restormer.SETTINGS))
def test_each_setting_has_the_official_keys_and_parameter_count_and_round_trips(tmp_path, setting):
    norm = restormer.SETTINGS[setting][1]
    torch.manual_seed(0)
    m = restormer.build(setting)
    assert sum(p.numel() for p in m.parameters()) == OFFICIAL[norm]
    sd = m.state_dict()
    shapes = {"patch_embed.proj.weight": (48, 3, 3, 3), "encoder_level1.0.attn.temperature": (1, 1, 1),
              "latent.7.attn.temperature": (8, 1, 1), "encoder_level1.0.attn.qkv_dwconv.weight": (144, 1, 3, 3),
              "encoder_level1.0.ffn.project_in.weight": (254, 48, 1, 1), "down1_2.body.0.weight": (24, 48, 3, 3),
              "up4_3.body.0.weight": (768, 384, 3, 3), "reduce_chan_level3.weight": (192, 384, 1, 1),
              "decoder_level1.3.ffn.project_out.weight": (96, 255, 1, 1), "refinement.3.norm1.body.weight": (96,),
              "output.weight": (3, 96, 3, 3)}
    for k, s in shapes.items():
        assert tuple(sd[k].shape) == s, k
    assert ("encoder_level1.0.norm1.body.bias" in sd) == (norm == "WithBias")
    assert not any(k.endswith(".bias") and "norm" not in k for k in sd)  # bias=False: convs have none
    torch.save({"params": sd}, tmp_path / "w.pth")
    loaded = restormer.load(setting, tmp_path / "w.pth")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in sd.items())
    # restoration: padded to a multiple of 8 and cropped back, a global residual, clipped to [0, 1]
    x = torch.rand(2, 3, 30, 30, generator=torch.Generator().manual_seed(1))
    y = restormer.restore_restormer(loaded, x, batch=2, device=torch.device("cpu"))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    with torch.no_grad():
        ref = loaded(torch.nn.functional.pad(x, (0, 2, 0, 2), mode="reflect"))[..., :30, :30].clamp(0, 1)
    assert torch.allclose(y, ref, atol=1e-6)


def test_a_file_that_does_not_fit_names_its_first_mismatch(tmp_path):
    sd = restormer.build("deraining").state_dict()
    torch.save({"params": sd}, tmp_path / "derain.pth")
    with pytest.raises(UserError, match=r"derain\.pth: unexpected key 'encoder_level1\.0\.norm1\.body\.bias' for the Restormer real"):
        restormer.load("real", tmp_path / "derain.pth")  # a WithBias file for a BiasFree setting
    bad = dict(sd)
    bad["output.weight"] = torch.zeros(1, 96, 3, 3)
    torch.save(bad, tmp_path / "bad.pth")  # a bare state dict is accepted, but this one has a wrong shape
    with pytest.raises(UserError, match=r"key 'output\.weight' has shape \(1, 96, 3, 3\), expected \(3, 96, 3, 3\)"):
        restormer.load("deraining", tmp_path / "bad.pth")
    del bad["output.weight"]
    torch.save(bad, tmp_path / "short.pth")
    with pytest.raises(UserError, match="missing key 'output.weight'"):
        restormer.load("deraining", tmp_path / "short.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.pth: not a readable PyTorch weights file"):
        restormer.load("deraining", tmp_path / "junk.pth")
    with pytest.raises(UserError, match="weights file not found"):
        restormer.load("deraining", tmp_path / "absent.pth")
