import re
import json

import pytest

from nucseg.cli import build_parser, config_from_args, main
from nucseg.config import PROFILES, Config, ConfigError


def test_profiles_and_overrides():
    quick = Config.from_profile("quick", lr=0.2)
    assert quick.steps == PROFILES["quick"]["steps"] and quick.lr == 0.2
    assert Config.from_profile("paper") == Config()


def test_yaml_file_with_a_profile_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("profile: quick\narch: fcn8\nlr: 0.003\n")
    config = Config.load(path)
    assert (config.arch, config.lr, config.crop) == ("fcn8", 0.003, PROFILES["quick"]["crop"])


def test_json_round_trip(tmp_path):
    config = Config.from_profile("quick", arch="deconvnet")
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert Config(**json.loads(path.read_text())) == config
    assert Config.load(path) == config


def test_hash_names_what_changes_results():
    config = Config()
    assert config.config_hash() == config.replace(data="elsewhere").config_hash()
    assert config.config_hash() != config.replace(lr=0.02).config_hash()


@pytest.mark.parametrize("changes, message", [
    ({"arch": "resnet"}, "arch='resnet'"),
    ({"crop": 100}, "multiple of 32"),
    ({"lr": 0}, "lr=0 must be positive"),
    ({"blur_probability": 2}, "between 0 and 1"),
])
def test_invalid_values_are_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(**changes)


def test_unknown_fields_in_a_file_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown fields.*learning_rate"):
        Config.load(path)


def test_cli_options_map_onto_the_config(glioma_path):
    args = build_parser().parse_args(["train", "--data", str(glioma_path), "--arch", "unet", "--val-patient", "x",
                                      "--out", "o", "--profile", "quick", "--lr", "0.3", "--set", "base_filters=16",
                                      "--set", "batch_norm=false", "--mixed-precision"])
    config = config_from_args(args, arch=args.arch)
    assert (config.lr, config.base_filters, config.batch_norm, config.mixed_precision) == (0.3, 16, False, True)
    assert config.data == str(glioma_path) and config.crop == PROFILES["quick"]["crop"]


def test_cli_reports_a_bad_option_without_a_traceback(capsys):
    assert main(["bench", "pipeline", "--set", "nonsense=1"]) == 2
    assert "no such Config field" in capsys.readouterr().err


@pytest.mark.parametrize("changes, message", [
    ({"border_sigma": 0}, "border_sigma=0 must be positive"),
    ({"border_sigma": -2.0}, "border_sigma=-2.0 must be positive"),
    ({"blur_sigma_max": 0}, "blur_sigma_max=0 must be positive"),
    ({"border_weight": -1.0}, "border_weight=-1.0 must not be negative"),
    ({"elastic_sigma": -3.0}, "elastic_sigma=-3.0 must not be negative"),
    ({"threshold": 1.2}, "threshold=1.2 must be between 0 and 1"),
    ({"threshold": -0.1}, "threshold=-0.1 must be between 0 and 1"),
    ({"flip": "ture"}, "flip='ture' must be true or false"),
    ({"crop": "abc"}, "crop='abc' must be an integer"),
    ({"lr": "fast"}, "lr='fast' must be a number"),
    ({"deconvnet_filters": -1}, "deconvnet_filters=-1 must be 0 (DeconvNet at base_filters) or a positive width"),
])
def test_out_of_range_or_mistyped_values_are_named(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config().replace(**changes)


def test_one_version():
    import re
    from pathlib import Path

    import nucseg

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1) == nucseg.__version__
