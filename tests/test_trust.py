"""Nothing silently wrong, nothing overwritten, nothing written outside --out (issue 17): blank
input, output names, ground truth, patient names, in-sample scores, 16-bit and float images,
concurrent runs, file modes, and messages instead of tracebacks."""

import functools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

from conftest import HELD_OUT_PATIENT, make_generic_dataset, write_png
from nucseg.cli import main


def run_ok(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, (argv, captured.err)
    return captured.out, captured.err


def refused(argv, capsys, *patterns):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, code, err)
    assert "Traceback" not in err, err
    for pattern in patterns:
        assert pattern in err, (pattern, err)
    return err


# ---------------------------------------------------------------- 1. blank input


def test_per_image_standardisation_keeps_a_white_image_at_zero():
    from nucseg.models.blocks import PerImageStandardization

    white = np.full((1, 512, 512, 3), 255, np.float32)
    out = np.asarray(PerImageStandardization()(white))
    assert np.abs(out).max() < 1e-3  # was 0.749 everywhere: float32's mean of 262,144 pixels of 255 was 254.25
    noisy = np.clip(white + np.random.default_rng(0).normal(0, 1.5, white.shape), 0, 255).astype(np.float32)
    # glass noise is not blown up to unit contrast
    assert np.abs(np.asarray(PerImageStandardization()(noisy))).std() < 0.5


def test_an_old_keras_file_loads_with_the_fixed_layer(small_unet_fold):
    """A .keras file saved before the fix names the layer without `min_std`: it gets the floor."""
    from nucseg.models.blocks import MIN_STD_GREY_LEVELS
    from nucseg.models.loading import load_keras_model

    model = load_keras_model(small_unet_fold / "model.keras")
    assert model.get_layer("normalise").min_std == MIN_STD_GREY_LEVELS


def test_a_blank_tile_is_told_by_its_histogram_as_by_the_standard_deviation(glioma_tiles):
    """is_blank counts a uint8 tile's grey levels instead of taking the std of a float copy: the
    same answer, near the threshold too (flat colours with noise of every size, glass with and without a speck)."""
    from nucseg.config import MIN_STD_GREY_LEVELS
    from nucseg.inference.large import is_blank

    def by_std(image):
        return bool(np.asarray(image, np.float64).reshape(-1, 3).std(axis=0).max() < MIN_STD_GREY_LEVELS)

    rng = np.random.default_rng(0)
    answers = []
    for noise in np.linspace(0.5, 8.0, 40):
        flat = rng.normal(rng.uniform(20, 235, 3), noise, (96, 80, 3))
        image = np.clip(np.round(flat), 0, 255).astype(np.uint8)
        answers.append(is_blank(image))
        assert is_blank(image) == by_std(image), noise
        assert is_blank(image.astype(np.float32)) == by_std(image), noise  # other dtypes: the std itself
    assert any(answers) and not all(answers)  # both sides of the threshold were tried
    glass = np.full((512, 512, 3), 250, np.uint8)
    glass[100:110, 200:212] = (90, 40, 140)  # one nucleus-sized speck: green's deviation 4.5, the net is asked
    assert is_blank(glass) == by_std(glass) is False
    assert is_blank(np.full((512, 512, 3), 250, np.uint8))
    assert not is_blank(glioma_tiles[0].image)


def test_a_blank_tile_is_told_the_same_whether_its_sample_of_every_fourth_pixel_settles_it_or_not():
    """is_blank looks at every fourth row and column first and stops where they prove contrast:
    the same answer as the whole image's deviation, for specks on the sampled grid (the sample
    deviates far more than the image), beside it (the sample sees none) and glass with noise, on
    both sides of the threshold."""
    from nucseg.config import MIN_STD_GREY_LEVELS
    from nucseg.inference.large import is_blank

    def by_std(image):
        return bool(np.asarray(image, np.float64).reshape(-1, 3).std(axis=0).max() < MIN_STD_GREY_LEVELS)

    rng = np.random.default_rng(1)
    answers = []
    for count in (0, 1, 4, 16, 40, 100, 400, 1600):
        for offset in (0, 1, 2):  # 0: the specks are on the sampled rows and columns
            for noise in (0.0, 2.0, 3.5):
                image = np.clip(np.round(rng.normal(240, noise, (203, 198, 3))), 0, 255).astype(np.uint8)
                rows = rng.integers(0, 50, count) * 4 + offset
                cols = rng.integers(0, 49, count) * 4 + offset
                image[rows, cols] = (60, 20, 110)
                answers.append(is_blank(image))
                assert is_blank(image) == by_std(image), (count, offset, noise)
    assert any(answers) and not all(answers)


def white_canvas_with_tissue(tissue, side=1500):
    canvas = np.full((side, side, 3), 255, np.uint8)
    canvas[: tissue.shape[0], : tissue.shape[1]] = tissue
    return canvas


@pytest.mark.parametrize("fold, export", [("small_unet_fold", "model.keras"), ("small_unet_fold", "saved_model"),
                                          ("small_dist_fold", "model.keras")])
def test_blank_input_gives_no_nuclei(fold, export, request, glioma_tiles, tmp_path, capsys):
    model = request.getfixturevalue(fold) / export
    white = write_png(tmp_path / "in" / "white.png", np.full((512, 512, 3), 255, np.uint8))
    white_big = write_png(tmp_path / "in" / "white_big.png", np.full((1100, 1300, 3), 255, np.uint8))
    on_white = write_png(tmp_path / "in" / "on_white.png", white_canvas_with_tissue(glioma_tiles[0].image))
    out, _ = run_ok(["predict", str(model), str(white), str(white_big), str(on_white), "--out", str(tmp_path / "o")],
                    capsys)
    assert f"{white}: 0 nuclei" in out and f"{white_big}: 0 nuclei" in out
    from nucseg.data.dataset import read_label

    labels = read_label(tmp_path / "o" / "on_white_label.png") if (tmp_path / "o" / "on_white_label.png").is_file() \
        else None
    if labels is None:
        import tifffile

        labels = tifffile.imread(tmp_path / "o" / "on_white_label.tif")
    side = glioma_tiles[0].image.shape[0]
    outside = labels.copy()
    outside[: side + 8, : side + 8] = 0  # the tissue, and a margin for a nucleus cut by its edge
    assert outside.max() == 0, np.bincount(outside.ravel())[1:].max()  # nothing on the white (were 323,000-pixel blobs)


# ---------------------------------------------------------------- 2, 3. outputs never land on inputs, never collide


def test_predict_into_a_data_set_folder_is_refused_and_the_labels_are_kept(small_unet_fold, tmp_path, capsys):
    data = make_generic_dataset(tmp_path / "data")
    label = data / "P1" / "t0_label.png"
    before = label.read_bytes()
    model = str(small_unet_fold / "model.keras")
    refused(["predict", model, str(data / "P1" / "t0.png"), "--out", str(data / "P1")], capsys,
            f"--out {data / 'P1'} is the folder of the input")
    refused(["predict", model, str(data / "P1" / "t0.png"), "--out", str(data / "P3")], capsys,
            "is inside the data set")
    refused(["evaluate", model, str(data), "--out", str(data / "scores")], capsys, "is inside the data set")
    refused(["evaluate", model, str(data), "--out", str(tmp_path)], capsys, "holds the data set")
    assert label.read_bytes() == before and not (data / "P3").exists() and not (data / "scores").exists()


def test_output_names_are_unique_per_input_path():
    from nucseg.inference.predict import output_names

    names = output_names(["d/same.png", "d/same.jpg", "a/x.png", "b/x.png", "a__x.png"])
    assert len(set(names)) == 5, names
    assert output_names(["a/one.png", "b/two.png"]) == ["one", "two"]  # unique stems keep their plain names


def test_same_stem_with_two_suffixes_writes_two_sets_of_files(small_unet_fold, glioma_tiles, tmp_path, capsys):
    from PIL import Image

    png = write_png(tmp_path / "in" / "same.png", glioma_tiles[0].image[:128, :128])
    jpg = tmp_path / "in" / "same.jpg"
    Image.fromarray(glioma_tiles[1].image[:128, :128]).save(jpg)
    run_ok(["predict", str(small_unet_fold / "model.keras"), str(png), str(jpg), "--out", str(tmp_path / "o")], capsys)
    written = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert any(n.startswith("same_png") for n in written) and any(n.startswith("same_jpg") for n in written), written


# ---------------------------------------------------------------- 4. nothing to find


def test_a_patient_with_nothing_to_find_is_not_given_a_perfect_sensitivity():
    from nucseg.metrics import pixel_counts

    truth = np.zeros((10, 10), int)
    predicted = np.zeros((10, 10), int)
    predicted[:2] = 1
    scores = pixel_counts(predicted, truth).scores()
    assert np.isnan(scores["tpr"]) and np.isnan(scores["perf"])  # was TPR 1.0 and an inflated Perf
    assert scores["f1"] == 0.0


def test_data_check_and_evaluate_flag_an_all_background_patient(small_unet_fold, tmp_path, capsys):
    data = make_generic_dataset(tmp_path / "data", patients=("P1", "P2"))
    for label in (data / "P2").glob("*_label.png"):
        write_png(label, np.zeros((64, 64), np.uint16))
    code = main(["data", "check", str(data)])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err, captured.err
    assert "patient P2 has no nucleus" in captured.err
    run_ok(["evaluate", str(small_unet_fold / "model.keras"), str(data), "--out", str(tmp_path / "e")], capsys)
    import pandas as pd

    patients = pd.read_csv(tmp_path / "e" / "patients.csv")
    p2 = patients[patients["patient"] == "P2"]
    assert p2["tpr"].isna().all() and p2["perf"].isna().all()


def test_fold_flags_name_an_empty_held_out_patient():
    from nucseg.study.health import describe_flags, fold_flags

    flags = fold_flags({"tpr": float("nan"), "predicted_fraction": 0.1}, [1.0, 0.5])
    assert flags == "empty" and "undefined" in describe_flags(flags)


# ---------------------------------------------------------------- 5. in-sample scores


def test_evaluate_warns_naming_the_training_patients_it_scores(small_unet_fold, glioma_path, tmp_path, capsys):
    model = str(small_unet_fold / "model.keras")
    code = main(["evaluate", model, str(glioma_path), "--patients", "TCGA-DB-5270", HELD_OUT_PATIENT,
                 "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 0 and "was trained on 1 of the scored patients (TCGA-DB-5270 of" in err, err
    main(["evaluate", model, str(glioma_path), "--patients", HELD_OUT_PATIENT, "--out", str(tmp_path / "f")])
    assert "in-sample" not in capsys.readouterr().err


# ---------------------------------------------------------------- 6. 16-bit and float images


def test_a_16_bit_png_of_12_bit_data_is_scaled_by_its_true_range(tmp_path, caplog):
    import png

    from nucseg.data.dataset import read_image

    rng = np.random.default_rng(0)
    eight = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    eight[0, 0] = 255
    twelve = (eight.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    with open(tmp_path / "t.png", "wb") as handle:
        png.Writer(32, 32, bitdepth=16, greyscale=False).write(handle, twelve.reshape(32, -1).tolist())
    image = read_image(tmp_path / "t.png")
    assert np.abs(image.astype(int) - eight).max() <= 1  # not the top byte: 16 grey levels
    assert "read as 12-bit data" in caplog.text


def test_a_float_tiff_is_refused_as_float_not_as_unreadable(tmp_path):
    import tifffile

    from nucseg.data.dataset import DatasetError, read_image

    tifffile.imwrite(tmp_path / "f.tif", np.random.default_rng(0).random((16, 16, 3), np.float32))
    with pytest.raises(DatasetError, match="float images are not supported: save as 8-bit RGB"):
        read_image(tmp_path / "f.tif")


# ---------------------------------------------------------------- 7. patient names and manifest paths


@pytest.mark.parametrize("patient", ["../../../elsewhere", "/abs/where", "a/b", ".."])
def test_a_patient_name_that_is_a_path_is_refused(tmp_path, capsys, patient):
    data = make_generic_dataset(tmp_path / "data")
    rows = ["patient,image,label", "P1,P1/t0.png,P1/t0_label.png", f"{patient},P2/t0.png,P2/t0_label.png"]
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    code = main(["data", "check", str(data)])
    err = capsys.readouterr().err
    assert code == 1 and f"patient {patient!r} cannot be used" in err, err
    refused(["lopo", "--data", str(data), "--arch", "pangnet", "--profile", "quick", "--out",
             str(tmp_path / "o" / "run")],
            capsys, "cannot be used")
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("path", ["../outside.png", "/etc/passwd"])
def test_a_manifest_path_outside_the_data_set_is_refused(tmp_path, capsys, path):
    data = make_generic_dataset(tmp_path / "data")
    rows = ["patient,image,label", "P1,P1/t0.png,P1/t0_label.png", f"P2,{path},P2/t0_label.png"]
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    main(["data", "check", str(data)])
    assert "cannot be used: it " in capsys.readouterr().err


# ---------------------------------------------------------------- 8. one run per folder


def test_a_second_run_on_a_busy_folder_is_refused_naming_the_first(small_unet_fold, glioma_tiles, tmp_path, capsys):
    from nucseg.io import RunLock

    image = write_png(tmp_path / "in" / "x.png", glioma_tiles[0].image[:64, :64])
    out = tmp_path / "o"
    with RunLock(out, command="nucseg predict"):
        refused(["predict", str(small_unet_fold / "model.keras"), str(image), "--out", str(out)], capsys,
                f"is in use by another run (nucseg predict, PID {os.getpid()}")
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".nucseg.lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "command": "x"}))
    code = main(["predict", str(small_unet_fold / "model.keras"), str(image), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0 and "taking over the lock" in err and not (out / ".nucseg.lock").exists()


def test_replace_dir_atomic_needs_no_shared_scratch_name(tmp_path):
    from nucseg.io import replace_dir_atomic

    def write(folder):
        folder.mkdir()
        (folder / "f").write_text("new")
        (tmp_path / ".target.old").mkdir(exist_ok=True)  # what another writer's fixed name would have been

    replace_dir_atomic(tmp_path / "target", write)
    replace_dir_atomic(tmp_path / "target", write)
    assert (tmp_path / "target" / "f").read_text() == "new"


# ---------------------------------------------------------------- 9. file modes


def test_atomic_files_get_the_umask_mode(tmp_path):
    from nucseg.io import write_json_atomic, write_png_atomic

    old = os.umask(0o022)
    try:
        json_file = write_json_atomic(tmp_path / "a.json", {"a": 1})
        png_file = write_png_atomic(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(old)
    assert stat.S_IMODE(json_file.stat().st_mode) == 0o644 and stat.S_IMODE(png_file.stat().st_mode) == 0o644


# ---------------------------------------------------------------- 10. messages, not tracebacks


def test_broken_models_and_configs_are_named(small_unet_fold, glioma_tiles, tmp_path, capsys):
    image = str(write_png(tmp_path / "in" / "x.png", glioma_tiles[0].image[:64, :64]))
    no_variables = tmp_path / "sm"
    shutil.copytree(small_unet_fold / "saved_model", no_variables)
    shutil.rmtree(no_variables / "variables")
    refused(["predict", str(no_variables), image, "--out", str(tmp_path / "o1")], capsys, "has no variables/")
    truncated = tmp_path / "cut" / "model.keras"
    truncated.parent.mkdir()
    truncated.write_bytes((small_unet_fold / "model.keras").read_bytes()[:5000])
    refused(["predict", str(truncated), image, "--out", str(tmp_path / "o2")], capsys, "not a complete .keras file")
    broken = tmp_path / "broken"
    shutil.copytree(small_unet_fold, broken, ignore=shutil.ignore_patterns("saved_model"))
    (broken / "config.json").write_text('{"arch": "unet", ')
    refused(["predict", str(broken / "model.keras"), image, "--out", str(tmp_path / "o3")], capsys,
            "config.json: not a readable configuration")
    values = json.loads((small_unet_fold / "config.json").read_text())
    values["base_width"] = values.pop("base_filters")  # a renamed field
    (broken / "config.json").write_text(json.dumps(values))
    refused(["predict", str(broken / "model.keras"), image, "--out", str(tmp_path / "o4")], capsys,
            "unknown configuration field(s) ['base_width']")


def test_a_keras_file_with_a_lambda_layer_is_refused_by_name(tmp_path, capsys, glioma_tiles):
    import keras

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x[..., :2] * 0.0)(inputs))
    model.save(tmp_path / "lambda.keras")
    image = str(write_png(tmp_path / "in" / "x.png", glioma_tiles[0].image[:64, :64]))
    refused(["predict", str(tmp_path / "lambda.keras"), image, "--out", str(tmp_path / "o")], capsys,
            "holds a Lambda layer")


def test_ctrl_c_during_train_says_how_to_resume(glioma_path, tmp_path):
    """A real SIGINT to a real `nucseg train`: one line, exit 130; the resume is tested in test_train."""
    command = [sys.executable, "-m", "nucseg.cli", "train", "--data", str(glioma_path), "--arch", "pangnet",
               "--val-patient", HELD_OUT_PATIENT, "--profile", "quick", "--steps", "2000", "--out", str(tmp_path / "f"),
               "--verbose", "0"]
    # SIGINT at its default in the child, as a terminal gives it: a process that ignores SIGINT (a
    # pytest worker can, after other tests) passes that on, and Python then keeps ignoring it
    restore = functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL)
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, preexec_fn=restore)
    import time

    deadline = time.time() + 120
    while not (tmp_path / "f" / "config.json").is_file() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err
