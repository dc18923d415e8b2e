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


def openvino_file(fold):
    engines.openvino_predictor(fold / "saved_model")  # converted into the cache
    return engines._cache_folder() / engines._model_digest(fold / "saved_model") / "model.xml"


def test_the_linear_head_is_kept_in_float32_for_a_dist_net_only(small_dist_fold, small_unet_fold, glioma_tiles):
    import openvino as ov

    from nucseg.inference.openvino_graph import float32_linear_head

    assert not float32_linear_head(ov.Core().read_model(str(openvino_file(small_unet_fold))))  # softmax
    dist = openvino_file(small_dist_fold)
    whole, rewritten = engines.OpenVINOPredictor(dist), engines.OpenVINOPredictor(dist, float32_head=True)
    assert not whole.head_in_float32 and rewritten.head_in_float32
    batch = glioma_tiles[0].image[None, :128, :160].astype(np.float32)
    expected = whole(batch)
    np.testing.assert_allclose(rewritten(batch), expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


@pytest.mark.parametrize("fold", ["small_unet_fold", "small_dist_fold"])
def test_float32_runs_the_skip_connections_without_concatenating(fold, request, glioma_tiles):
    """The U-Net's and DIST's skip concatenations, each rewritten as two convolutions added (faster
    in OpenVINO's float32: docs/speed.md), give the same outputs; bfloat16 and int8 keep them."""
    model = openvino_file(request.getfixturevalue(fold))  # the test folds' nets: 2 poolings
    kept, split = engines.OpenVINOPredictor(model, split_concatenations=False), engines.OpenVINOPredictor(model)
    assert (kept.concatenations_split, split.concatenations_split) == (0, 2)
    batch = np.stack([t.image[:160, :224] for t in glioma_tiles[:2]]).astype(np.float32)
    expected = kept(batch)
    np.testing.assert_allclose(split(batch), expected, atol=1e-5 * max(1.0, float(np.abs(expected).max())))
    assert engines.OpenVINOPredictor(model, "bfloat16").concatenations_split == 0


def test_the_int8_copy_keeps_its_concatenations_and_rewrites_its_upsampling_where_the_cpu_has_avx512(monkeypatch):
    """Its upsampling is rewritten to run in int8 on a CPU with AVX512 (measured there); on an
    AVX2-only one, whose OpenVINO keeps those layers in float32 anyway, the graph stays as measured."""
    import nucseg.hardware
    from nucseg import pretrained

    model = pretrained.resolve(None)
    monkeypatch.setattr(nucseg.hardware, "cpu_flags", lambda: frozenset({"avx2", "fma", "avx512f", "amx_int8"}))
    int8, float32 = engines.openvino_predictor(model, "int8"), engines.openvino_predictor(model, "float32")
    assert (int8.concatenations_split, int8.transposed_rewritten) == (0, 4)
    assert (float32.concatenations_split, float32.transposed_rewritten) == (4, 0)
    monkeypatch.setattr(nucseg.hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # AMD EPYC, Zen 3
    assert engines.openvino_predictor(model, "int8").transposed_rewritten == 0


def upsampling_model(extra: int):
    """One 2 x 2, stride-2 transposed convolution given its output's shape as an input, worked out
    at run time as OpenVINO converts Keras's: the input's sides times 2, plus `extra`."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, 4, -1, -1], np.float32)
    sides = ops.gather(ops.shape_of(x), ops.constant(np.array([2, 3])), ops.constant(0))
    shape = ops.add(ops.multiply(sides, ops.constant(np.array([2]))), ops.constant(np.array([extra])))
    kernel = ops.constant(np.random.default_rng(0).normal(size=(4, 3, 2, 2)).astype(np.float32))
    return ov.Model([ops.convolution_backprop_data(x, kernel, [2, 2], output_shape=shape)], [x])


def test_a_transposed_convolution_loses_its_shape_input_only_where_that_shape_is_the_strides():
    """The rewrite that lets OpenVINO run the int8 copy's upsampling in int8 (docs/speed.md): the
    same outputs where the shape input is the input's sides times the stride; left as it is where
    it is anything else (here one pixel more, as an output padding would make it)."""
    import openvino as ov

    from nucseg.inference.openvino_graph import transposed_convolutions_without_output_shape

    before, after = upsampling_model(0), upsampling_model(0)
    assert transposed_convolutions_without_output_shape(after) == 1
    assert [op.get_input_size() for op in after.get_ordered_ops() if "Backprop" in op.get_type_name()] == [2]
    batch = np.random.default_rng(1).normal(size=(2, 4, 12, 20)).astype(np.float32)
    expected = ov.Core().compile_model(before, "CPU")(batch)[0]
    assert expected.shape == (2, 3, 24, 40)
    np.testing.assert_allclose(ov.Core().compile_model(after, "CPU")(batch)[0], expected, atol=1e-5)
    assert transposed_convolutions_without_output_shape(upsampling_model(1)) == 0


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
    # int8: on the AVX2-only kind, for a model with an int8 copy only (measured there; docs/speed.md)
    monkeypatch.setattr(nucseg.hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert engines.choose_precision("auto", "openvino", int8_copy=True) == "int8"
    assert engines.choose_precision("auto", "tensorflow", int8_copy=True) == "float32"
    for flags in ({"avx2", "avx512f", "avx512_vnni"}, {"avx2", "avx512f", "avx512_bf16"}):  # not measured; bfloat16
        monkeypatch.setattr(nucseg.hardware, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert engines.choose_precision("auto", "openvino", int8_copy=True) != "int8"
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


def test_the_default_models_int8_copy_finds_float32s_nuclei(glioma_tiles):
    """`--precision int8`: the shipped int8 copy (scripts/quantise_pretrained.py) against the
    model in float32 on real tiles: its distances close, its foreground and its nuclei nearly the
    same."""
    from nucseg import pretrained
    from nucseg.metrics import all_scores, object_counts, pixel_counts
    from nucseg.postprocess.instances import instances_from_distance

    model = pretrained.resolve(None)
    batch = np.stack([t.image[:512, :512] for t in glioma_tiles[:2]]).astype(np.float32)
    full = load_predictor(model, "float32", "openvino")(batch)[..., 0]
    int8 = load_predictor(model, "int8", "openvino")(batch)[..., 0]
    assert 0 < np.abs(int8 - full).mean() < 0.1  # pixels of distance
    for a, b in zip(full, int8):
        nuclei = instances_from_distance(a, 1.0, 1.0)
        found = instances_from_distance(b, 1.0, 1.0)
        agreement = all_scores(pixel_counts(b > 1.0, nuclei), object_counts(found, nuclei))
        assert agreement["f1"] > 0.95 and agreement["aji"] > 0.85, agreement


def test_the_int8_copy_keeps_the_standardisation_the_first_block_and_the_head_in_float32():
    """What made int8 lose nuclei (results/measured/engines/README.md): no FakeQuantize upstream of
    the net's standardisation (its Divide), nor at the input of the first block's convolutions
    (before the first pooling) or of the last one; the other convolutions' inputs are quantised."""
    import openvino as ov

    from nucseg import pretrained

    model = ov.Core().read_model(str(engines.int8_model_file(pretrained.resolve(None))))
    ops = model.get_ordered_ops()

    def upstream(node) -> set[str]:
        seen, stack = set(), [node]
        while stack:
            for value in stack.pop().input_values():
                source = value.get_node()
                if source.get_friendly_name() not in seen:
                    seen.add(source.get_friendly_name())
                    stack.append(source)
        return {op.get_type_name() for op in ops if op.get_friendly_name() in seen}

    divide = next(op for op in ops if op.get_type_name() == "Divide")
    convolutions = [op for op in ops if op.get_type_name() == "Convolution"]
    first_pooling = next(i for i, op in enumerate(ops) if op.get_type_name() == "MaxPool")
    first_block = [op for op in ops[:first_pooling] if op.get_type_name() == "Convolution"]
    assert "FakeQuantize" not in upstream(divide)
    assert len(first_block) == 2
    in_float32, in_int8 = [*first_block, convolutions[-1]], convolutions[len(first_block) : -1]
    assert all(c.input_value(0).get_node().get_type_name() != "FakeQuantize" for c in in_float32)

    def quantised(node) -> bool:  # a FakeQuantize, or a max pooling or concatenation of quantised inputs
        if node.get_type_name() in ("MaxPool", "Concat"):
            return all(quantised(value.get_node()) for value in node.input_values())
        return node.get_type_name() == "FakeQuantize"

    assert all(quantised(c.input_value(0).get_node()) for c in in_int8)


def test_cli_predict_runs_int8_where_asked(glioma_tiles, tmp_path, capsys):
    from conftest import write_png
    from nucseg.cli import main

    image = write_png(tmp_path / "in" / "x.png", glioma_tiles[0].image[:128, :128])
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--precision", "int8"]) == 0
    assert "engine openvino, int8" in capsys.readouterr().err
    assert (tmp_path / "out" / "x_label.png").is_file()
    assert main(["predict", str(image), "--out", str(tmp_path / "auto")]) == 0  # the default model has a copy
    assert f"engine openvino, {engines.choose_precision('auto', 'openvino', True)}" in capsys.readouterr().err


def test_int8_needs_openvino_and_a_model_with_an_int8_copy(small_dist_fold):
    with pytest.raises(engines.InputError, match="--precision int8 runs in OpenVINO only"):
        engines.choose_precision("int8", "tensorflow")
    assert engines.choose_precision("int8", "openvino") == "int8"
    with pytest.raises(engines.InputError, match=r"no int8 model beside it .*int8/model.xml is missing"):
        load_predictor(small_dist_fold / "model.keras", "int8", "openvino")
