import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import blob_label, make_generic_dataset, write_png
from nucseg.cli import main
from nucseg.data.dataset import DatasetError, load_dataset, read_image, read_label, summarize


def check(path, capsys):
    code = main(["data", "check", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_glioma_counts(glioma_path, capsys):
    code, out, _ = check(glioma_path, capsys)
    assert code == 0
    assert "5 patients, 36 tiles, 4961 nuclei" in out


def test_glioma_summary_matches_manifest(glioma_tiles, glioma_path):
    import pandas as pd

    manifest = pd.read_csv(glioma_path / "manifest.csv")
    rows = {r["patient"]: r for r in summarize(glioma_tiles)}
    for patient, group in manifest.groupby("patient"):
        assert rows[patient]["tiles"] == len(group)
        assert rows[patient]["nuclei"] == group["n_nuclei"].sum()


def test_tnbc_layout(tmp_path, capsys):
    label = (blob_label() > 0).astype(np.uint8) * 255  # TNBC ground truth is a binary mask
    for patient in ("01", "02"):
        write_png(tmp_path / f"Slide_{patient}" / f"{patient}_1.png", np.zeros((64, 64, 3), np.uint8))
        write_png(tmp_path / f"GT_{patient}" / f"{patient}_1.png", label)
    tiles = load_dataset(tmp_path)
    assert sorted(t.patient for t in tiles) == ["01", "02"]
    # the two touching blobs form one component: a binary mask cannot tell them apart
    assert tiles[0].n_nuclei == 2
    code, out, _ = check(tmp_path, capsys)
    assert code == 0 and "2 patients, 2 tiles, 4 nuclei" in out


def test_generic_layout_without_manifest(tmp_path):
    tiles = load_dataset(make_generic_dataset(tmp_path))
    assert len(tiles) == 4 and {t.patient for t in tiles} == {"P1", "P2"}
    assert tiles[0].n_nuclei == 3 and tiles[0].label.dtype == np.int32


def test_three_channel_labels_are_one_nucleus_per_colour(tmp_path):
    ids = blob_label()
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    label = read_label(write_png(tmp_path / "l.png", palette[ids]))
    assert len(np.unique(label)) == 4
    assert np.array_equal(label > 0, ids > 0)


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    gray = read_image(write_png(tmp_path / "g.png", np.full((8, 8), 77, np.uint8)))
    rgba = read_image(write_png(tmp_path / "a.png", np.full((8, 8, 4), 9, np.uint8)))
    assert gray.shape == (8, 8, 3) and (gray == 77).all()
    assert rgba.shape == (8, 8, 3) and (rgba == 9).all()


# ---------------------------------------------------------------- one test per bad input


def assert_fails(path, capsys, *fragments):
    code, _, err = check(path, capsys)
    assert code == 1
    for fragment in fragments:
        assert fragment in err, err


def test_image_without_label(tmp_path, capsys):
    root = make_generic_dataset(tmp_path)
    (root / "P1" / "t1_label.png").unlink()
    assert_fails(root, capsys, "P1/t1.png: image without label", "t1_label.png")


def test_label_without_image(tmp_path, capsys):
    root = make_generic_dataset(tmp_path)
    (root / "P2" / "t0.png").unlink()
    assert_fails(root, capsys, "P2/t0_label.png: label without image")


def test_size_mismatch(tmp_path, capsys):
    root = make_generic_dataset(tmp_path)
    write_png(root / "P1" / "t0_label.png", blob_label(48))
    assert_fails(root, capsys, "P1/t0_label.png: size 48x48 differs from its image", "same width and height")


def test_truncated_png(tmp_path, capsys):
    root = make_generic_dataset(tmp_path)
    data = (root / "P1" / "t1.png").read_bytes()
    (root / "P1" / "t1.png").write_bytes(data[: len(data) // 2])
    assert_fails(root, capsys, "P1/t1.png: unreadable or truncated image", "Re-export")


def test_not_an_image(tmp_path, capsys):
    root = make_generic_dataset(tmp_path)
    (root / "P2" / "t1_label.png").write_text("hello")
    assert_fails(root, capsys, "P2/t1_label.png: unreadable or truncated image")


def test_float_labels(tmp_path, capsys):
    root = make_generic_dataset(tmp_path)
    (root / "P1" / "t0_label.png").unlink()
    Image.fromarray(blob_label().astype(np.float32)).save(root / "P1" / "t0_label.tif")
    assert_fails(root, capsys, "P1/t0_label.tif: labels are float32", "integer instance ids")


def test_negative_labels(tmp_path, capsys):
    root = make_generic_dataset(tmp_path)
    (root / "P1" / "t0_label.png").unlink()
    Image.fromarray(-blob_label().astype(np.int32)).save(root / "P1" / "t0_label.tif")
    assert_fails(root, capsys, "P1/t0_label.tif: labels have negative values")


def test_empty_dataset(tmp_path, capsys):
    assert_fails(tmp_path, capsys, "empty dataset, no tiles found")


def test_missing_dataset_folder(tmp_path, capsys):
    assert_fails(tmp_path / "nowhere", capsys, "does not exist", "nucseg data download tnbc")


def test_patient_with_no_tiles(tmp_path, capsys):
    root = make_generic_dataset(tmp_path)
    (root / "P3").mkdir()
    assert_fails(root, capsys, "P3: patient P3 has no tiles")


def test_tnbc_patient_with_no_tiles(tmp_path, capsys):
    write_png(tmp_path / "Slide_01" / "01_1.png", np.zeros((8, 8, 3), np.uint8))
    write_png(tmp_path / "GT_01" / "01_1.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "Slide_02").mkdir()
    (tmp_path / "GT_02").mkdir()
    assert_fails(tmp_path, capsys, "Slide_02: patient 02 has no tiles")


def test_manifest_pointing_at_missing_file(tmp_path, capsys, glioma_path):
    root = tmp_path / "ds"
    shutil.copytree(glioma_path / "TCGA-DU-8165", root / "TCGA-DU-8165")
    (root / "manifest.csv").write_text("patient,image,label\n"
                                       "TCGA-DU-8165,TCGA-DU-8165/R01_1.png,TCGA-DU-8165/R09_1_label.png\n")
    assert_fails(root, capsys, "R01_1.png: image without label", "manifest.csv:2")


def test_every_problem_is_reported_at_once(tmp_path):
    root = make_generic_dataset(tmp_path)
    (root / "P1" / "t1_label.png").unlink()
    (root / "P2" / "t0.png").unlink()
    with pytest.raises(DatasetError) as raised:
        load_dataset(root)
    assert len(raised.value.problems) == 2


def test_manifest_listing_an_image_twice(tmp_path, capsys):
    root = make_generic_dataset(tmp_path)
    rows = "P1,P1/t0.png,P1/t0_label.png\nP2,P2/t0.png,P2/t0_label.png\nP1,P1/t0.png,P1/t0_label.png\n"
    (root / "manifest.csv").write_text("patient,image,label\n" + rows)
    assert_fails(root, capsys, "manifest.csv:4: image P1/t0.png is listed again (first on line 2)")


def test_manifest_listing_one_image_under_two_patients(tmp_path, capsys):
    root = make_generic_dataset(tmp_path)
    rows = "P1,P1/t0.png,P1/t0_label.png\nP2,P2/t0.png,P2/t0_label.png\nP2,P1/t0.png,P1/t0_label.png\n"
    (root / "manifest.csv").write_text("patient,image,label\n" + rows)
    assert_fails(root, capsys, "under patient P1, here under P2", "both a training and a held-out set")


def blurred(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(mask.astype(float), 1.0).round().astype(np.uint8)


def jpeg_compressed(mask: np.ndarray) -> np.ndarray:
    import io

    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="JPEG", quality=90)
    return np.asarray(Image.open(buffer))


@pytest.mark.parametrize("spoil", [blurred, jpeg_compressed], ids=["blurred", "jpeg"])
def test_a_spoiled_binary_mask_is_not_read_as_instances(tmp_path, spoil, glioma_tiles):
    mask = ((glioma_tiles[0].label > 0) * 255).astype(np.uint8)
    path = write_png(tmp_path / "l.png", spoil(mask))
    with pytest.raises(DatasetError, match="does not look like an instance label.*losslessly"):
        read_label(path)


def test_a_label_with_nearly_every_pixel_its_own_value_is_refused(tmp_path):
    path = write_png(tmp_path / "l.png", (np.arange(128 * 128).reshape(128, 128) + 1).astype(np.uint16))
    with pytest.raises(DatasetError, match="cover under 5 pixels"):
        read_label(path)


def test_real_instance_labels_pass_the_instance_check(glioma_tiles):
    assert sum(t.n_nuclei for t in glioma_tiles) == 4961  # read through the same check, none refused
