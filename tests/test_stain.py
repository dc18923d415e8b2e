"""Macenko stain normalisation (nucseg.data.stain) on the shared annotated tiles."""

import numpy as np
import pytest

from conftest import ROOT
from nucseg.data.stain import fit_reference, normalise

TNBC = ROOT.parent / "shared" / "data" / "tnbc"


def mean_colour(images) -> np.ndarray:
    return np.concatenate([np.asarray(i, np.float64).reshape(-1, 3) for i in images]).mean(axis=0)


def test_an_image_normalised_to_its_own_stains_barely_changes(glioma_tiles):
    image = glioma_tiles[0].image
    same = normalise(image, fit_reference([image]))
    assert same.dtype == np.uint8 and same.shape == image.shape
    assert np.abs(same.astype(int) - image.astype(int)).mean() < 8


def test_another_labs_tiles_take_the_reference_colours(glioma_tiles):
    from nucseg.data.dataset import load_dataset

    if not TNBC.is_dir():
        pytest.skip(f"the TNBC tiles are not at {TNBC}")
    tnbc = [t.image for t in load_dataset(TNBC)]
    reference = fit_reference(tnbc)
    glioma = [t.image for t in glioma_tiles[:6]]
    before = np.linalg.norm(mean_colour(glioma) - mean_colour(tnbc))  # (144, 85, 164) against (205, 187, 206)
    after = np.linalg.norm(mean_colour([normalise(i, reference) for i in glioma]) - mean_colour(tnbc))
    assert after < before / 2, (before, after)


def test_glass_is_left_as_it_is_and_cannot_be_a_reference(glioma_tiles):
    glass = np.full((128, 128, 3), 235, np.uint8)
    assert np.array_equal(normalise(glass, fit_reference([glioma_tiles[0].image])), glass)
    with pytest.raises(ValueError, match="stained pixels"):
        fit_reference([glass])


def test_evaluate_with_a_stain_reference_that_does_not_exist(glioma_path, tmp_path, capsys):
    from nucseg.cli import main

    code = main(["evaluate", "model.keras", str(glioma_path), "--stain-reference", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--stain-reference" in err and "no such file or folder" in err
