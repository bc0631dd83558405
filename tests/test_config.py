import copy

import pytest
import yaml

from recon_restore.config import load_params, validate_params
from recon_restore.errors import UserError


def test_repository_params_are_valid_for_every_preset(params_doc):
    for name in params_doc["presets"]:
        validate_params(dict(params_doc, preset=name))


def test_mistyped_key_is_named_with_a_suggestion(params_doc):
    doc = copy.deepcopy(params_doc)
    doc["presets"]["demo"]["attack"]["train"]["epoks"] = doc["presets"]["demo"]["attack"]["train"].pop("epochs")
    with pytest.raises(UserError) as e:
        validate_params(doc, "params.yaml")
    msg = str(e.value)
    assert "presets.demo.attack.train.epoks" in msg and "did you mean 'epochs'" in msg
    assert msg.startswith("params.yaml:")


def test_unknown_top_level_key(params_doc):
    doc = dict(params_doc, presett="demo")
    with pytest.raises(UserError, match="unknown key 'presett'"):
        validate_params(doc)


def test_wrong_type_names_key_and_value(params_doc):
    doc = copy.deepcopy(params_doc)
    doc["presets"]["paper"]["evaluate"]["runs"] = "many"
    with pytest.raises(UserError, match=r"presets\.paper\.evaluate\.runs.*'many'"):
        validate_params(doc)


def test_bad_enum_value(params_doc):
    doc = copy.deepcopy(params_doc)
    doc["presets"]["demo"]["dataset"]["match"]["ssim_variant"] = "kornia"
    with pytest.raises(UserError, match=r"ssim_variant.*'kornia'.*haim"):
        validate_params(doc)


def test_missing_key(params_doc):
    doc = copy.deepcopy(params_doc)
    del doc["presets"]["demo"]["evaluate"]["good_threshold"]
    with pytest.raises(UserError, match="good_threshold"):
        validate_params(doc)


def test_undefined_preset(params_doc, tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(params_doc))
    with pytest.raises(UserError, match="'nope' is not defined under 'presets'"):
        load_params(p, preset="nope")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="params file does not exist"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(bad)


def test_unsigned_exponent_is_rejected_not_misread(params_doc, tmp_path):
    """PyYAML reads 1.0e8 as a string; the schema must say so instead of passing it on."""
    text = yaml.safe_dump(params_doc).replace("xflip: 100000000.0", "xflip: 1.0e8")
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(UserError, match="xflip"):
        load_params(p)
