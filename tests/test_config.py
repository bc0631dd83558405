import copy

import pytest
import yaml

from recon_restore.config import load_params, validate_params
from recon_restore.errors import UserError


def test_repository_params_are_valid_for_every_preset(params_doc):
    for name in params_doc["presets"]:
        validate_params(dict(params_doc, preset=name))


def test_presets_state_their_differences_from_paper(raw_params_doc):
    """``demo`` and ``cifar-small`` inherit ``paper``: a value they do not state is paper's,
    one they state wins, lists replace rather than merge, and the raw file is valid."""
    from recon_restore.config import resolve

    validate_params(raw_params_doc)
    full = resolve(raw_params_doc)["presets"]
    for name in ("demo", "cifar-small"):
        assert raw_params_doc["presets"][name]["base"] == "paper"
        assert "base" not in full[name]
    raw_demo = raw_params_doc["presets"]["demo"]
    assert "good_threshold" not in raw_demo["evaluate"]                  # inherited
    assert full["demo"]["evaluate"]["good_threshold"] == full["paper"]["evaluate"]["good_threshold"]
    assert full["demo"]["attack"]["train"]["epochs"] == raw_demo["attack"]["train"]["epochs"] != full["paper"]["attack"]["train"]["epochs"]
    assert full["demo"]["attack"]["train"]["optimizer"] == full["paper"]["attack"]["train"]["optimizer"]   # merged key by key
    assert full["demo"]["data"]["demo"]["negative"] == raw_demo["data"]["demo"]["negative"]               # a list replaces
    assert full["demo"]["evaluate"]["restore_shard_runs"] == {"edm": 0}


def test_inheritance_chains_merge_in_order_and_bad_bases_are_named(raw_params_doc):
    from recon_restore.config import resolve

    doc = copy.deepcopy(raw_params_doc)
    doc["presets"]["mine"] = {"base": "demo", "seed": 7, "evaluate": {"runs": 2}}
    full = resolve(doc)["presets"]["mine"]
    assert full["seed"] == 7 and full["evaluate"]["runs"] == 2
    assert full["evaluate"]["images_per_class"] == raw_params_doc["presets"]["demo"]["evaluate"]["images_per_class"]
    validate_params(dict(doc, preset="mine"))
    doc["presets"]["mine"]["base"] = "dmeo"
    with pytest.raises(UserError, match=r"presets\.mine\.base.*'dmeo' is not a preset \(did you mean 'demo'\?\)"):
        validate_params(doc)
    doc["presets"]["mine"]["base"] = "demo"
    doc["presets"]["paper"]["base"] = "mine"
    with pytest.raises(UserError, match=r"is a cycle"):
        validate_params(doc)


def test_a_mistake_in_the_base_is_reported_at_the_base(raw_params_doc):
    doc = copy.deepcopy(raw_params_doc)
    doc["presets"]["paper"]["evaluate"]["runz"] = 3
    with pytest.raises(UserError, match=r"unknown key 'presets\.paper\.evaluate\.runz'"):
        validate_params(doc)


def test_the_resolved_file_is_current(raw_params_doc):
    """params.resolved.yaml (what DVC tracks) is params.yaml resolved, byte for byte."""
    from recon_restore.config import resolved_text

    from conftest import REPO

    assert (REPO / "params.resolved.yaml").read_text() == resolved_text(raw_params_doc, "params.yaml"), \
        "params.resolved.yaml is stale: run `recon-restore params resolve`"


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
