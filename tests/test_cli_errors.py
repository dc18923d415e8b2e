"""Bad input on the command line: exit 2, one message naming the thing and the fix, no traceback,
and nothing written where nothing should be."""

import re

import numpy as np
import pytest

from conftest import make_generic_dataset, write_png
from nucseg.cli import main


def fails_with(argv, capsys, pattern):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, code, err)
    assert re.search(pattern, err), (pattern, err)
    assert "Traceback" not in err
    return err


def test_train_with_an_unknown_held_out_patient(tmp_path, capsys):
    data = make_generic_dataset(tmp_path / "data")
    fails_with(["train", "--data", str(data), "--arch", "pangnet", "--val-patient", "P9", "--out", str(tmp_path / "o")],
               capsys, "'P9' not in the data set; its patients are P1, P2")
    assert not (tmp_path / "o").exists()


def test_a_data_set_with_one_patient(tmp_path, capsys):
    data = make_generic_dataset(tmp_path / "data", patients=("P1",))
    fails_with(["lopo", "--data", str(data), "--arch", "pangnet", "--out", str(tmp_path / "o")],
               capsys, "needs at least 2 patients; this data set has 1 \\(P1\\)")


@pytest.mark.parametrize("command", [["train", "--arch", "pangnet", "--val-patient", "P1"],
                                     ["lopo", "--arch", "pangnet"]])
def test_out_that_is_a_file(tmp_path, capsys, command):
    data = make_generic_dataset(tmp_path / "data")
    (tmp_path / "results").write_text("keep me")
    fails_with([*command, "--data", str(data), "--out", str(tmp_path / "results")], capsys, "--out .*results is a file")
    assert (tmp_path / "results").read_text() == "keep me"


def test_lopo_with_an_unknown_patient_is_refused_before_the_run_folder_is_claimed(tmp_path, capsys):
    data = make_generic_dataset(tmp_path / "data")
    fails_with(["lopo", "--data", str(data), "--arch", "pangnet", "--val-patients", "P1", "P7", "--out",
                str(tmp_path / "o")], capsys, "'P7' not in the data set")
    assert not (tmp_path / "o").exists()


def test_a_wrongly_typed_value_in_a_config_file(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("profile: quick\ncrop: abc\n")
    fails_with(["bench", "pipeline", "--config", str(config)], capsys, "crop='abc' must be an integer")


@pytest.mark.parametrize("value", ["ture", "2", "maybe"])
def test_a_boolean_that_is_not_a_boolean(capsys, value):
    fails_with(["bench", "pipeline", "--set", f"flip={value}"], capsys, f"flip={value}: expected a boolean")


def test_a_boolean_in_a_config_file_that_is_not_a_boolean(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("flip: ture\n")
    fails_with(["bench", "pipeline", "--config", str(config)], capsys, "flip='ture' must be true or false")


def test_a_crop_larger_than_the_tiles(tmp_path, capsys):
    data = make_generic_dataset(tmp_path / "data", size=64)
    fails_with(["train", "--data", str(data), "--arch", "pangnet", "--val-patient", "P1", "--profile", "quick",
                "--crop", "96", "--out", str(tmp_path / "o")], capsys,
                "crop=96 is larger than 2 tile\\(s\\).*--crop 64")


def test_download_dest_that_is_a_file(tmp_path, capsys):
    (tmp_path / "tnbc").write_text("")
    code = main(["data", "download", "tnbc", "--dest", str(tmp_path / "tnbc"), "--zenodo-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code in (1, 2) and "is a file, not a folder" in err and "Traceback" not in err


def test_data_check_on_a_file(tmp_path, capsys):
    path = write_png(tmp_path / "tile.png", np.zeros((8, 8, 3), np.uint8))
    assert main(["data", "check", str(path)]) == 1
    assert "is a file, not a dataset folder" in capsys.readouterr().err


def test_manifest_row_with_too_few_fields(tmp_path, capsys):
    data = make_generic_dataset(tmp_path / "data")
    (data / "manifest.csv").write_text("patient,image,label\nP1,P1/t0.png,P1/t0_label.png\nP2,P2/t0.png\n")
    assert main(["data", "check", str(data)]) == 1
    assert "manifest.csv:3: the row has no patient, image or label value" in capsys.readouterr().err


def test_bench_stardist_refuses_a_table_of_other_fold_times(tmp_path, capsys):
    data = make_generic_dataset(tmp_path / "data")
    out = tmp_path / "stardist"
    out.mkdir()
    table = "method,val_patient,f1,budget_seconds\nstardist,P1,0.7,100.0\n"
    (out / "folds.csv").write_text(table)
    fails_with(["bench", "stardist", "--data", str(data), "--val-patients", "P1", "P2", "--seconds", "316",
                "--out", str(out)], capsys, "folds run with --seconds 100, not 316: rerun with that --seconds")
    assert (out / "folds.csv").read_text() == table


def test_bench_stardist_refuses_an_unknown_patient(tmp_path, capsys):
    data = make_generic_dataset(tmp_path / "data")
    fails_with(["bench", "stardist", "--data", str(data), "--val-patients", "P7", "--seconds", "10",
                "--out", str(tmp_path / "o")], capsys, "no patient P7; its patients are P1, P2")
