"""Whole-slide inference on a real slide file: a pyramidal, tiled TIFF built from the shared glioma
tiles with tifffile (three levels, resolution tags set), read through OpenSlide."""

import base64
import csv
import io
import gzip
import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from conftest import noisy_distance_map

from nucseg.inference.baseline import hematoxylin
from nucseg.config import Config
from nucseg.postprocess.kinds import instances_from_config
from nucseg.inference.predict import tile_starts
from nucseg.inference.slide import SlideError, choose_level, run_slide, tile_cores

MPP = 0.25


def write_pyramid(path, mosaic, mpp=MPP, levels=3):
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        for level in range(levels):
            resolution = {} if mpp is None else {"resolution": (1e4 / mpp / 2**level,) * 2,
                                                 "resolutionunit": "CENTIMETER"}
            tif.write(mosaic[:: 2**level, :: 2**level], tile=(256, 256), photometric="rgb", compression="zlib",
                      subfiletype=0 if level == 0 else 1, **resolution)
    return path


@pytest.fixture(scope="module")
def mosaic(glioma_tiles):
    """Six 512 x 512 glioma crops in a 2 x 3 mosaic above a band of white glass."""
    image = np.full((1024 + 700, 1536, 3), 255, np.uint8)
    for k, tile in enumerate(glioma_tiles[:6]):
        row, col = divmod(k, 3)
        image[row * 512 : (row + 1) * 512, col * 512 : (col + 1) * 512] = tile.image[:512, :512]
    return image


def pixelwise_predictor(batch):
    """A stand-in net that looks at each pixel alone (a logistic of its hematoxylin density), so
    that a tile's map is exactly the whole image's there: any difference comes from the tiling."""
    density = np.stack([hematoxylin(np.asarray(b).astype(np.uint8)) for b in batch])
    probability = 1 / (1 + np.exp(-(density - 0.08) * 80))
    return np.stack([1 - probability, probability], -1).astype(np.float32)


def test_tile_cores_partition_the_region():
    cores_by_start = tile_cores(1224, 512, 128)
    starts, cores = list(cores_by_start), list(cores_by_start.values())
    assert cores[0][0] == 0 and cores[-1][1] == 1224
    assert all(a[1] == b[0] for a, b in zip(cores, cores[1:]))
    assert all(s <= lo and hi <= s + 512 for s, (lo, hi) in zip(starts, cores))


def test_fitted_tiles_are_no_more_no_larger_and_overlap_as_asked():
    from nucseg.config import SIZE_MULTIPLE
    from nucseg.inference.tiles import fitted_tile

    assert fitted_tile(4096, 4096, 1024, 128) == 928  # five tiles of 928 where five of 1024 were laid
    assert fitted_tile(20000, 20000, 1024, 128) == 992
    assert fitted_tile(300, 200, 1024, 128) == 320  # a small region: one tile of its own size
    for width, height, tile, overlap in [(4096, 4096, 1024, 128), (20000, 7000, 1024, 128), (1224, 1224, 512, 128),
                                         (1500, 900, 1024, 64), (2049, 10, 1024, 128), (5000, 5000, 2048, 256),
                                         (1025, 1025, 1024, 128), (896, 2000, 512, 64)]:
        side = fitted_tile(width, height, tile, overlap)
        assert side <= tile and side % SIZE_MULTIPLE == 0 and side > overlap
        for length in (width, height):
            fitted, asked = tile_starts(length, side, overlap), tile_starts(length, tile, overlap)
            assert len(fitted) <= len(asked), (length, side)
            ends = [start + side for start in fitted]
            assert fitted[0] == 0 and ends[-1] >= length  # covered
            assert all(end - start >= overlap for start, end in zip(fitted[1:], ends)) or len(fitted) == 1


def test_the_level_read_is_the_coarsest_not_coarser_than_the_model():
    assert choose_level([1, 2, 4], base_mpp=0.25, target_mpp=0.25) == 0
    assert choose_level([1, 2, 4], base_mpp=0.25, target_mpp=0.5) == 1  # a 20x model on a 40x slide
    assert choose_level([1, 2, 4], base_mpp=0.25, target_mpp=0.7) == 1  # never coarser than the model
    assert choose_level([1, 4], base_mpp=0.5, target_mpp=0.25) == 0  # a 20x slide for a 40x model: upsampled


def test_slide_finds_the_nuclei_of_the_whole_mosaic_once_and_whole(mosaic, tmp_path):
    slide = write_pyramid(tmp_path / "mosaic.tif", mosaic)
    summary = run_slide(pixelwise_predictor, Config(), slide, tmp_path / "out", tile=512, overlap=128, verbose=0)
    table = pd.read_csv(tmp_path / "out" / "nuclei.csv")
    whole = instances_from_config(pixelwise_predictor(mosaic[None])[0, ..., 1], Config())
    truth = np.asarray(ndimage.center_of_mass(np.ones_like(whole), whole, np.arange(1, whole.max() + 1))) + 0.5
    assert summary["nuclei"] == len(table) and summary["cut"] == 0
    assert abs(len(table) - len(truth)) <= 0.02 * len(truth), (len(table), len(truth))
    found = table[["centroid_y", "centroid_x"]].to_numpy()
    distance, _ = cKDTree(truth).query(found)
    assert np.mean(distance < 1.0) > 0.95  # the same nuclei, at the same places
    pairs = cKDTree(found).query_pairs(3.0)
    assert not pairs  # no nucleus twice (two tiles keeping it)
    assert table["centroid_y"].max() < 1024  # the white glass below has none
    grid = len(tile_starts(mosaic.shape[0], 512, 128)) * len(tile_starts(mosaic.shape[1], 512, 128))
    assert summary["tiles"] == grid - 2 * 4  # and the two rows of tiles on glass alone were skipped
    assert summary["tile_side"] <= 512 and summary["tile_side"] % 32 == 0  # fitted, never above --tile
    collection = json.loads((tmp_path / "out" / "nuclei.geojson").read_text())
    assert len(collection["features"]) == len(table)
    assert [f["properties"]["measurements"]["id"] for f in collection["features"]] == list(table["id"])


def test_killed_and_rerun_gives_the_same_outputs(mosaic, tmp_path, monkeypatch):
    import nucseg.inference.slide as slide_module

    slide = write_pyramid(tmp_path / "mosaic.tif", mosaic)
    monkeypatch.setattr(slide_module, "PART_TILES", 2)
    # the uncut and the resumed runs find their nuclei in a thread (the same nuclei as processes:
    # test_nuclei_workers_in_processes_give_what_one_thread_gives); the killed run in 2 processes
    whole = run_slide(pixelwise_predictor, Config(), slide, tmp_path / "whole", tile=512, overlap=128, verbose=0,
                      gzip_geojson=True, nuclei_workers=0)
    calls = []

    def dies_in_the_third_part(batch):  # 2 workers: 3 batches in flight, so parts 1 and 2 are written by then
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return pixelwise_predictor(batch)

    with pytest.raises(KeyboardInterrupt):
        run_slide(dies_in_the_third_part, Config(), slide, tmp_path / "cut", tile=512, overlap=128, verbose=0,
                  batch_size=1, gzip_geojson=True, nuclei_workers=2)
    assert len(list((tmp_path / "cut" / "parts").glob("*.json"))) == 2
    first = tmp_path / "cut" / "parts" / "00000.json"
    older = json.loads(first.read_text())
    del older["outline_points"]  # a part as an earlier nucseg wrote it (outlines in its features only)
    first.write_text(json.dumps(older))
    resumed = run_slide(pixelwise_predictor, Config(), slide, tmp_path / "cut", tile=512, overlap=128, verbose=0,
                        gzip_geojson=True, nuclei_workers=0)
    assert resumed["nuclei"] == whole["nuclei"]
    for name in ("nuclei.csv", "overview.jpg"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    read = lambda folder: gzip.decompress((tmp_path / folder / "nuclei.geojson.gz").read_bytes())  # noqa: E731
    assert read("cut") == read("whole")
    assert '"outline_points":' in first.read_text()  # that part was found again


def test_region_and_refusals(mosaic, tmp_path):
    slide = write_pyramid(tmp_path / "mosaic.tif", mosaic)
    part = run_slide(pixelwise_predictor, Config(), slide, tmp_path / "region", tile=512, overlap=128, verbose=0,
                     region=(512, 0, 512, 512))
    table = pd.read_csv(tmp_path / "region" / "nuclei.csv")
    assert part["tiles"] == 1 and table["centroid_x"].between(512, 1024).all()

    with pytest.raises(SlideError, match="another slide, region"):
        run_slide(pixelwise_predictor, Config(), slide, tmp_path / "region", tile=512, overlap=128, verbose=0)
    with pytest.raises(SlideError, match="not inside the slide"):
        run_slide(pixelwise_predictor, Config(), slide, tmp_path / "r2", region=(1000, 0, 1000, 100), verbose=0)
    no_resolution = write_pyramid(tmp_path / "plain.tif", mosaic, mpp=None)
    with pytest.raises(SlideError, match=r"plain.tif: the slide does not say its resolution.*--mpp"):
        run_slide(pixelwise_predictor, Config(), no_resolution, tmp_path / "r3", verbose=0)
    broken = tmp_path / "broken.svs"
    broken.write_bytes(b"not a slide at all")
    with pytest.raises(SlideError, match="broken.svs: OpenSlide cannot read it"):
        run_slide(pixelwise_predictor, Config(), broken, tmp_path / "r4", verbose=0)


def test_a_20x_slide_is_read_at_the_models_40x(mosaic, tmp_path):
    """A slide scanned at half the resolution (0.5 µm/px) is upsampled to the training 0.25: the
    nuclei keep their size in µm and land at the same level-0 places (halved coordinates)."""
    half = mosaic[::2, ::2]
    slide = write_pyramid(tmp_path / "half.tif", half, mpp=0.5, levels=2)
    summary = run_slide(pixelwise_predictor, Config(), slide, tmp_path / "out", tile=512, overlap=128, verbose=0)
    table = pd.read_csv(tmp_path / "out" / "nuclei.csv")
    assert summary["nuclei"] > 100
    assert table["centroid_x"].max() < half.shape[1] and table["centroid_y"].max() < half.shape[0]
    run_slide(pixelwise_predictor, Config(), write_pyramid(tmp_path / "full.tif", mosaic), tmp_path / "full",
               tile=512, overlap=128, verbose=0)
    full_table = pd.read_csv(tmp_path / "full" / "nuclei.csv")
    assert table["area_um2"].median() == pytest.approx(full_table["area_um2"].median(), rel=0.25)


def test_the_slide_benchmark_builds_a_pyramid_and_prints_its_numbers(glioma_tiles, tmp_path):
    import openslide

    from nucseg.bench.slide import bench_slide, format_slide_benchmark

    result = bench_slide(pixelwise_predictor, Config(), glioma_tiles, tmp_path, side=1024, tile=512, overlap=64,
                         batch_size=2)
    slide = openslide.OpenSlide(str(tmp_path / "mosaic_1024.tif"))
    assert slide.dimensions == (1024, 1024) and slide.level_count == 3
    assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(MPP)
    assert result["tiles"] == 9 and result["nuclei"] > 100  # 3 x 3 tiles overlapping by 64 or more
    assert result["tile_side"] == 384 and "9 tiles of 384" in format_slide_benchmark(result)  # fitted: 512 is the most
    assert result["megapixels_per_second"] > 0 and result["net_megapixels_per_second"] > 0
    assert result["peak_memory_mb"] > 0
    assert "megapixels/s" in format_slide_benchmark(result)
    # the CPU of the nuclei workers (child processes, counted once the pool has shut down) holds
    # the CPU they spent finding nuclei, which each worker measured for itself
    cpu, finding = result["cpu_seconds"], result["stages"]["nuclei_cpu"]
    assert cpu["main"] > 0 and 0 < finding <= cpu["workers"]
    assert "CPU-seconds: main process" in format_slide_benchmark(result)


def test_the_benchmarks_mosaic_takes_tiles_smaller_than_its_crops(glioma_tiles, tmp_path):
    """CoNSeP's tiles are 256 x 256: the mosaic's crops shrink to them (it raised a broadcast error)."""
    import dataclasses

    import tifffile

    from nucseg.bench.slide import MOSAIC_CROP, mosaic_crop, mosaic_tile, write_mosaic_slide

    small = [dataclasses.replace(t, image=t.image[:256, :256], label=t.label[:256, :256]) for t in glioma_tiles[:5]]
    assert mosaic_crop(glioma_tiles) == MOSAIC_CROP and mosaic_crop(small) == 256
    path = write_mosaic_slide(tmp_path / "mosaic.tif", small, 640)
    level0 = tifffile.imread(path, level=0)
    assert level0.shape == (640, 640, 3)
    for row, column in ((0, 0), (0, 1), (1, 2), (2, 1)):
        crop = small[mosaic_tile(row, column, len(small))].image
        top, left = row * 256, column * 256
        expected = crop[: 640 - top, : 640 - left]
        assert np.array_equal(level0[top : top + 256, left : left + 256], expected), (row, column)
    assert [p.name for p in tmp_path.iterdir()] == ["mosaic.tif"]  # written under another name, then renamed


def test_nuclei_workers_in_processes_give_what_one_thread_gives(mosaic, tmp_path):
    slide = write_pyramid(tmp_path / "mosaic.tif", mosaic)
    thread = run_slide(pixelwise_predictor, Config(), slide, tmp_path / "thread", tile=512, overlap=128, verbose=0,
                       nuclei_workers=0)
    timings = {}
    processes = run_slide(pixelwise_predictor, Config(), slide, tmp_path / "processes", tile=512, overlap=128,
                          verbose=0, nuclei_workers=2, timings=timings)
    assert processes["nuclei"] == thread["nuclei"] > 0
    for name in ("nuclei.csv", "nuclei.geojson"):
        assert (tmp_path / "processes" / name).read_bytes() == (tmp_path / "thread" / name).read_bytes(), name
    assert timings["nuclei"] > 0  # measured in the workers and sent back


def test_nuclei_workers_run_below_the_nets_priority():
    import os

    from nucseg.inference.slide import nuclei_pool
    from nucseg.inference.tiles import NUCLEI_NICENESS

    with nuclei_pool(1) as pool:
        worker = pool.submit(os.nice, 0).result()  # os.nice(0) returns the niceness, unchanged
    assert worker == min(os.nice(0) + NUCLEI_NICENESS, 19)


def test_nuclei_workers_start_without_tensorflow():
    """A worker that imported TensorFlow (as unpickling a function of a module that imports it
    does) took 5 s more to start than the whole first batch's nuclei."""
    from worker_probe import imported

    from nucseg.inference.slide import nuclei_pool
    from nucseg.inference.tiles import batch_nuclei  # what the workers run

    with nuclei_pool(1) as pool:
        pool.submit(batch_nuclei, None, Config(), {}, {}, "mean_probability", [], [], []).result()
        assert pool.submit(imported, ["tensorflow", "keras", "openvino"]).result() == []


def test_a_negative_number_of_nuclei_workers_is_refused(tmp_path):
    with pytest.raises(SlideError, match="--nuclei-workers -1: 0 .one thread. or more"):
        run_slide(pixelwise_predictor, Config(), tmp_path / "any.tif", tmp_path / "out", nuclei_workers=-1, verbose=0)
    assert not (tmp_path / "out").exists()


def test_the_label_image_holds_each_nucleus_of_the_table_with_its_id(mosaic, tmp_path):
    import tifffile

    slide = write_pyramid(tmp_path / "mosaic.tif", mosaic)
    summary = run_slide(pixelwise_predictor, Config(), slide, tmp_path / "out", tile=512, overlap=128, verbose=0,
                        label_image=True)
    labels = tifffile.imread(tmp_path / "out" / "labels.tif")
    table = pd.read_csv(tmp_path / "out" / "nuclei.csv")
    assert summary["label_image"] == "labels.tif" and labels.shape == mosaic.shape[:2] and labels.dtype == np.uint32
    ids = np.arange(1, len(table) + 1)
    assert set(np.unique(labels)) == {0, *ids.tolist()}
    area = ndimage.sum_labels(np.ones_like(labels), labels, ids) * MPP**2
    centre = np.asarray(ndimage.center_of_mass(np.ones_like(labels), labels, ids)) + 0.5
    np.testing.assert_allclose(area, table["area_um2"], rtol=1e-6)  # every pixel of each nucleus, no more
    np.testing.assert_allclose(centre[:, ::-1], table[["centroid_x", "centroid_y"]], atol=1e-3)


def test_label_tiles_give_back_a_label_image_from_its_outlines(glioma_tiles):
    from nucseg.inference.label_image import BAND, label_tiles
    from nucseg.inference.objects import nucleus_outlines

    quad = [[glioma_tiles[k].label[:512, :512] for k in row] for row in ((0, 1), (2, 3))]
    foreground = np.block(quad)[:700, :600] > 0
    # an outline is a nucleus's outer edge: pieces connected by their sides, holes filled (as nuclei are)
    labels = ndimage.label(ndimage.binary_fill_holes(foreground))[0].astype(np.uint32)  # 700 x 600: cut bands, tiles
    outlines = nucleus_outlines(np.asarray(labels))
    in_order = sorted(outlines.items(), key=lambda item: min(y for _, y in item[1]))  # tile order with one band
    tiles = list(label_tiles(in_order, 600, 700, tile_side=0))
    per_row = -(-600 // BAND)
    rebuilt = np.block([tiles[r * per_row : (r + 1) * per_row] for r in range(-(-700 // BAND))])[:700, :600]
    assert labels.max() > 50
    np.testing.assert_array_equal(rebuilt, labels)


def test_pieces_beyond_the_core_are_cleared_and_the_kept_nuclei_stay_the_same(glioma_tiles):
    """A tile's nuclei found without the pieces of its map that cannot reach its core (and from
    the pieces found there, not found again): the nuclei it keeps are the same pixels, in the
    same order, for a DIST map (rounded, so with ties and plateaus) and a probability map, with
    the core anywhere in the tile."""
    from nucseg.inference.tiles import SlidePlan, kept_nuclei, without_pieces_beyond_core
    from nucseg.postprocess.instances import foreground_pieces
    from nucseg.postprocess.kinds import foreground

    rng = np.random.default_rng(3)
    label = np.concatenate([tile.label[:256, :384] for tile in glioma_tiles[:2]], axis=0)
    noisy = noisy_distance_map(label, rng, 1.5)
    maps = {
        "dist": np.round(noisy, 1).astype(np.float32),
        "unet": (1 / (1 + np.exp(-(noisy - 1.0)))).astype(np.float32),
    }
    plan = SlidePlan("s", (0, 0, 2000, 2000), 0, 1.0, 512, 128, ((700, 700),), 2000, 2000, 0.25)
    cleared_somewhere = False
    for arch, nucleus_map in maps.items():
        config = Config(arch=arch, dist_threshold=0.5, dist_lambda=1.0)
        for core_y, core_x in (((700.0, 900.0), (750.0, 1000.0)), ((650.5, 1212.0), (700.0, 812.5))):
            core_rows, core_cols = (core_y[0] - 700, core_y[1] - 700), (core_x[0] - 700, core_x[1] - 700)
            within, pieces = without_pieces_beyond_core(nucleus_map, config, core_rows, core_cols)
            cleared_somewhere |= bool(np.any(within != nucleus_map))
            # the pieces handed on are the cleared map's own
            np.testing.assert_array_equal(pieces.filled, foreground_pieces(foreground(within, config)).filled)
            np.testing.assert_array_equal(pieces.labels > 0, pieces.filled)
            results = []
            for this_map, its_pieces in ((nucleus_map, None), (within, pieces)):
                labels = instances_from_config(this_map, config, its_pieces)
                kept, cut = kept_nuclei(labels, plan, 700, 700, core_x, core_y)
                results.append(([labels == index for index in kept], cut))
            (all_masks, all_cut), (within_masks, within_cut) = results
            assert len(all_masks) == len(within_masks) > 5 and all_cut == within_cut, (arch, core_y, core_x)
            assert all(np.array_equal(a, b) for a, b in zip(all_masks, within_masks)), (arch, core_y, core_x)
    assert cleared_somewhere


def test_the_progress_line_times_only_the_tiles_of_this_run(capsys):
    from nucseg.inference.slide import TileProgress

    bar = TileProgress(10, done_before=4)  # 4 tiles of parts a resumed run found on disk
    bar.update(6)
    bar.update(10)
    err = capsys.readouterr().err
    assert err.startswith("\r6/10 tiles, ") and "\r10/10 tiles, " in err
    assert err.endswith(" 0:00 left\n")  # done: the line is ended


def test_a_part_file_reads_back_whichever_json_wrote_it(tmp_path):
    """Parts are written with orjson, their table as CSV text; one that Python's json wrote (an
    interrupted run of an earlier nucseg: NaN allowed, the table as numbers) is read as well, with
    its outlines, and its table as csv.writer writes it."""
    from nucseg.inference.slide import _read_part, _split_outlines, _write_part

    points = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0], [7.0, 8.0], [5.0, 6.0]])
    record = {
        "features": ['{"type":"Feature","properties":{"name":"nucleus @ID@"}}'] * 2,
        "outline_lengths": [3, 3],
        "outline_points": base64.b64encode(points.astype("<f8").tobytes()).decode("ascii"),
        "columns": ["area_um2", "solidity"],
        "cut": 1,
    }
    (tmp_path / "parts").mkdir()
    older_rows = [[1.5, 0.1], [float("nan"), 1 / 3]]
    (tmp_path / "parts" / "00000.json").write_text(json.dumps({**record, "rows": older_rows}))
    _write_part(tmp_path / "parts" / "00001.json", {**record, "csv_lines": ["1.5,0.1", "2.5,0.3333333333333333"]})
    written_by_csv = io.StringIO()
    csv.writer(written_by_csv).writerows(older_rows)
    for number, lines in ((0, written_by_csv.getvalue().split("\r\n")[:2]), (1, ["1.5,0.1", "2.5,0.3333333333333333"])):
        part, read_points = _read_part(tmp_path, number)
        assert part["features"] == record["features"] and part["cut"] == 1
        outlines = _split_outlines(read_points, part["outline_lengths"])
        assert [o.tolist() for o in outlines] == [points[:3].tolist(), points[3:].tolist()]
        assert part["csv_lines"] == lines
    assert lines[0] == "1.5,0.1" and written_by_csv.getvalue().startswith("1.5,0.1\r\nnan,0.3333333333333333\r\n")
