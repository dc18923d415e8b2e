"""The inference engines (issue 20): OpenVINO gives TensorFlow's outputs, from both exports, for
a binary net and DIST; the choice of engine and precision follows the device and the CPU."""

import numpy as np
import pytest

from nucseg.inference import engines
from nucseg.inference.predict import load_predictor, predict_nucleus_map

pytest.importorskip("openvino")


@pytest.mark.parametrize("fold", ["small_unet_fold", "small_dist_fold"])
@pytest.mark.parametrize("export", ["model.keras", "saved_model"])
def test_openvino_float32_gives_tensorflows_outputs(fold, export, request, glioma_tiles):
    model = request.getfixturevalue(fold) / export
    batch = np.stack([t.image[:256, :320] for t in glioma_tiles[:2]]).astype(np.float32)
    expected = load_predictor(model)(batch)
    got = load_predictor(model, engine="openvino")(batch)
    assert got.shape == expected.shape
    scale = 1.0 if fold == "small_unet_fold" else max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, atol=2e-3 * scale)  # float32 both; the order of sums differs


def test_openvino_takes_any_tile_size_with_one_compilation(small_dist_fold, glioma_tiles):
    predictor = load_predictor(small_dist_fold / "saved_model", engine="openvino")
    image = glioma_tiles[0].image
    tiled = predict_nucleus_map(predictor, image[:480, :500], tile=256, overlap=32)
    whole = predict_nucleus_map(load_predictor(small_dist_fold / "saved_model"), image[:480, :500], tile=256,
                                overlap=32)
    assert tiled.shape == (480, 500)
    assert np.abs(tiled - whole).max() < 2e-3 * max(1.0, float(np.abs(whole).max()))


def test_openvino_bfloat16_stays_close_where_the_cpu_has_it(small_dist_fold, glioma_tiles):
    if not engines.native_bfloat16():
        pytest.skip("this CPU has no native bfloat16 (AVX512_BF16 or AMX): auto precision is float32 here")
    batch = glioma_tiles[0].image[None, :256, :256].astype(np.float32)
    full = load_predictor(small_dist_fold / "saved_model", engine="openvino")(batch)
    half = load_predictor(small_dist_fold / "saved_model", precision="bfloat16", engine="openvino")(batch)
    assert 0 < np.abs(half - full).max() < 0.1 * max(1.0, float(np.abs(full).max()))
    # the last 1x1 convolution runs in float32: distances rounded to bfloat16 would be plateaus
    rounded_to_bfloat16 = (half.view(np.uint32) & 0xFFFF) == 0
    assert rounded_to_bfloat16.mean() < 0.5


def test_the_linear_head_is_kept_in_float32_for_a_dist_net_only(small_dist_fold, small_unet_fold, glioma_tiles):
    import openvino as ov

    def openvino_file(fold):
        engines.openvino_predictor(fold / "saved_model")  # converted into the cache
        return engines._cache_folder() / engines._model_digest(fold / "saved_model") / "model.xml"

    assert not engines.float32_linear_head(ov.Core().read_model(str(openvino_file(small_unet_fold))))  # softmax
    dist = openvino_file(small_dist_fold)
    whole, rewritten = engines.OpenVINOPredictor(dist), engines.OpenVINOPredictor(dist, float32_head=True)
    assert not whole.head_in_float32 and rewritten.head_in_float32
    batch = glioma_tiles[0].image[None, :128, :160].astype(np.float32)
    expected = whole(batch)
    np.testing.assert_allclose(rewritten(batch), expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


def test_auto_choices(monkeypatch):
    import nucseg.hardware

    monkeypatch.setattr(engines, "gpu_visible", lambda: False)
    assert engines.choose_engine("auto") == "openvino"
    monkeypatch.setattr(engines, "gpu_visible", lambda: True)
    assert engines.choose_engine("auto") == "tensorflow"  # on a GPU, TensorFlow
    # the CPU kinds measured (docs/speed.md), by the flags that decide: each auto choice is no slower there
    monkeypatch.setattr(nucseg.hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # AMD EPYC, Zen 3
    assert engines.choose_precision("auto", "openvino") == "float32"
    assert engines.choose_precision("bfloat16", "tensorflow") == "bfloat16"  # asked for: done, with a warning
    assert engines.choose_precision("bfloat16", "openvino") == "float32"  # what OpenVINO compiles there
    for flags in ({"avx2", "avx512_bf16", "amx_bf16"}, {"avx2", "avx512_bf16"}):  # Xeon with AMX; EPYC Zen 4
        monkeypatch.setattr(nucseg.hardware, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert engines.choose_precision("auto", "openvino") == "bfloat16"  # measured faster, nuclei as good
        assert engines.choose_precision("auto", "tensorflow") == "float32"  # TensorFlow rounds the output
        assert engines.choose_precision("float32", "openvino") == "float32"
    with pytest.raises(engines.InputError, match="--engine onnx"):
        engines.choose_engine("onnx")


def test_cli_predict_says_which_engine_and_precision(small_unet_fold, glioma_tiles, tmp_path, capsys):
    from conftest import write_png
    from nucseg.cli import main

    image = write_png(tmp_path / "in" / "x.png", glioma_tiles[0].image[:128, :128])
    for engine in ("tensorflow", "openvino"):
        assert main(["predict", str(small_unet_fold / "saved_model"), str(image), "--out", str(tmp_path / engine),
                     "--engine", engine, "--precision", "float32"]) == 0
        assert f"engine {engine}, float32" in capsys.readouterr().err
    assert main(["predict", str(small_unet_fold / "saved_model"), str(image), "--out", str(tmp_path / "auto")]) == 0
    assert f"engine openvino, {engines.choose_precision('auto', 'openvino')}" in capsys.readouterr().err
    a = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(tmp_path / "tensorflow" / "x_prob.png"), int)
    b = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(tmp_path / "openvino" / "x_prob.png"), int)
    assert np.abs(a - b).max() <= 1  # the same probability map to one grey level


def test_a_model_is_converted_once_and_nothing_is_written_beside_it(small_dist_fold, openvino_cache, glioma_tiles):
    before = sorted(p.name for p in small_dist_fold.iterdir())
    batch = glioma_tiles[0].image[None, :128, :128].astype(np.float32)
    first = load_predictor(small_dist_fold / "model.keras", engine="openvino")(batch)
    entries = sorted((openvino_cache / "openvino").iterdir())
    again = load_predictor(small_dist_fold / "model.keras", engine="openvino")(batch)
    assert sorted((openvino_cache / "openvino").iterdir()) == entries  # the cached conversion, not a new one
    assert any((entry / "model.xml").is_file() for entry in entries)
    np.testing.assert_array_equal(first, again)
    assert sorted(p.name for p in small_dist_fold.iterdir()) == before


def test_a_net_in_openvino_runs_without_tensorflow(small_dist_fold, glioma_tiles, tmp_path):
    """predict (as slide and evaluate) with OpenVINO imports neither TensorFlow nor Keras once the
    model is in OpenVINO's cache: 6.7 s and 0.6 GB less on a 2-core AMD EPYC."""
    import os
    import subprocess
    import sys

    from conftest import write_png

    engines.openvino_predictor(small_dist_fold / "saved_model")  # into the cache: converting needs TensorFlow
    image = write_png(tmp_path / "in" / "x.png", glioma_tiles[0].image[:128, :128])
    argv = ["predict", str(small_dist_fold / "saved_model"), str(image), "--out", str(tmp_path / "out"),
            "--engine", "openvino"]
    probe = (f"import sys; from nucseg.cli import main; c = main({argv!r}); "
             "print(c, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ.copy())
    assert run.stdout.split()[-3:] == ["0", "False", "False"], run.stderr[-2000:]
    assert (tmp_path / "out" / "x_label.png").is_file()


def test_no_gpu_is_sure_only_without_the_device_files_a_gpu_needs(tmp_path, monkeypatch):
    from nucseg import hardware

    monkeypatch.setattr(hardware.platform, "system", lambda: "Linux")
    assert hardware.surely_no_gpu(tmp_path)
    for device in ("nvidia0", "kfd", "dxg"):
        (tmp_path / device).touch()
        assert not hardware.surely_no_gpu(tmp_path)
        (tmp_path / device).unlink()
    (tmp_path / "nvidiactl").touch()  # a driver's control file alone is not a GPU
    assert hardware.surely_no_gpu(tmp_path)
    monkeypatch.setattr(hardware.platform, "system", lambda: "Darwin")  # Metal: no such files to look for
    assert not hardware.surely_no_gpu(tmp_path)


def test_only_commands_that_run_tensorflow_import_it(monkeypatch):
    import nucseg.hardware
    from nucseg.cli import needs_tensorflow
    from nucseg.cli.parser import build_parser

    def needs(*argv):
        return needs_tensorflow(build_parser().parse_args(list(argv)))

    monkeypatch.setattr(nucseg.hardware, "surely_no_gpu", lambda: True)
    assert not needs("predict", "x.png", "--out", "o") and not needs("slide", "s.svs", "--out", "o")
    assert not needs("evaluate", "d", "--out", "o", "--engine", "openvino") and not needs("data", "check")
    assert needs("predict", "x.png", "--out", "o", "--engine", "tensorflow")
    assert needs("bench", "stardist", "--out", "o", "--val-patients", "p")  # StarDist's net is TensorFlow's
    assert needs("train", "--out", "o", "--arch", "unet", "--all-patients")
    monkeypatch.setattr(nucseg.hardware, "surely_no_gpu", lambda: False)  # a GPU's device files: ask TensorFlow
    assert needs("predict", "x.png", "--out", "o")
