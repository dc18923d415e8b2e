import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nucseg  # noqa: F401  before any test module imports TensorFlow: it turns on oneDNN, as for users

# pytest-xdist runs one worker per core (scripts/test.sh): each worker's TensorFlow, and oneDNN's
# OpenMP, then get one thread, so that two workers do not fight over two cores. Set before
# TensorFlow is imported; a notebook's kernel inherits it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

ROOT = Path(__file__).resolve().parents[1]
GLIOMA = Path(os.environ.get("NUCSEG_DATA", ROOT.parent / "shared" / "data" / "tcga_glioma"))


def pytest_collection_modifyitems(config, items):
    """Notebook 02 trains networks: it is `slow` too. The files with slow tests go first (a stable
    sort: each file keeps its own order), so that pytest-xdist, run with --no-loadscope-reorder
    (scripts/test.sh), starts the long files early and the short ones fill the end."""
    for item in items:
        if item.path.name == "02_lopo_training.ipynb":
            item.add_marker(pytest.mark.slow)
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="session")
def glioma_path() -> Path:
    if not (GLIOMA / "manifest.csv").is_file():
        pytest.skip(f"the annotated glioma tiles are not at {GLIOMA} (../shared/data/tcga_glioma, or $NUCSEG_DATA)")
    return GLIOMA


@pytest.fixture(scope="session")
def glioma_tiles(glioma_path):
    from nucseg.data.dataset import load_dataset

    return load_dataset(glioma_path)


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def blob_label(size=64, centres=((20, 20), (20, 34), (45, 40)), radius=7) -> np.ndarray:
    """Round nuclei; the first two touch."""
    yy, xx = np.mgrid[:size, :size]
    label = np.zeros((size, size), np.uint16)
    for k, (cy, cx) in enumerate(centres, start=1):
        label[((yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2) & (label == 0)] = k
    return label


def noisy_distance_map(label: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """A stand-in for a DIST net's output: the label's distance map plus smooth noise (normal noise of
    standard deviation `noise`, blurred by a Gaussian of 2 pixels), in float64."""
    from scipy import ndimage

    from nucseg.data.weights import distance_target

    return distance_target(label) + ndimage.gaussian_filter(rng.normal(0, noise, label.shape), 2)


def make_generic_dataset(root: Path, patients=("P1", "P2"), tiles=2, size=64) -> Path:
    rng = np.random.default_rng(0)
    for patient in patients:
        for t in range(tiles):
            write_png(root / patient / f"t{t}.png", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
            write_png(root / patient / f"t{t}_label.png", blob_label(size))
    return root


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """(path, tiles) of a small data set of noise with round nuclei (patients P1, P2, 2 tiles of
    96 x 96 each): for the tests of bookkeeping (a killed run, a resumed one, an export, a
    schedule), where what a net learns is beside the point and 1024 x 1024 tiles only cost time."""
    from nucseg.data.dataset import load_dataset

    root = make_generic_dataset(tmp_path_factory.mktemp("synthetic"), tiles=2, size=96)
    return root, load_dataset(root)


def kill_after_first_checkpoint(monkeypatch):
    """From now on a fold is killed (KeyboardInterrupt) right after its first checkpoint;
    returns the real EpochCheckpoint.on_epoch_end, to put back with monkeypatch.setattr."""
    from nucseg.training.train import EpochCheckpoint

    original = EpochCheckpoint.on_epoch_end

    def killed(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", killed)
    return original


HELD_OUT_PATIENT = "TCGA-DU-8165"


def _small_fold(glioma_tiles, glioma_path, session_folder: Path, arch: str) -> Path:
    """A fold trained once per test session, also when pytest-xdist's workers share the session:
    under a lock, the worker that comes second finds the fold done (train_fold skips a finished
    fold) and trains nothing."""
    import fcntl

    from nucseg.config import Config
    from nucseg.study.fold import train_fold

    config = Config.from_profile("quick", data=str(glioma_path), arch=arch, base_filters=8, unet_depth=2, steps=60,
                                 steps_per_epoch=30, crop=96, tune_postprocess=False)
    with open(session_folder / f"small_{arch}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return train_fold(config, glioma_tiles, HELD_OUT_PATIENT, session_folder / f"small_{arch}", verbose=0).out_dir


@pytest.fixture(scope="session")
def session_folder(tmp_path_factory, worker_id) -> Path:
    """A folder of this test session that pytest-xdist's workers share (`worker_id` is xdist's
    fixture: "master" without workers; then the session's own folder)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="session")
def small_unet_fold(glioma_tiles, glioma_path, session_folder) -> Path:
    """One small U-Net fold (held out: HELD_OUT_PATIENT), trained once for the whole session and
    shared by the tests that need an exported model (.keras and SavedModel) and its config.json."""
    return _small_fold(glioma_tiles, glioma_path, session_folder, "unet")


@pytest.fixture(scope="session")
def small_dist_fold(glioma_tiles, glioma_path, session_folder) -> Path:
    """The same for DIST."""
    return _small_fold(glioma_tiles, glioma_path, session_folder, "dist")


@pytest.fixture(scope="session", autouse=True)
def openvino_cache(session_folder):
    """OpenVINO's converted models go to a folder of the test session, not the user's ~/.cache;
    pytest-xdist's workers share it (a model is converted once; entries are renamed into place)."""
    folder = session_folder / "nucseg_cache"
    folder.mkdir(exist_ok=True)
    previous = os.environ.get("NUCSEG_CACHE")
    os.environ["NUCSEG_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("NUCSEG_CACHE", None)
    else:
        os.environ["NUCSEG_CACHE"] = previous


@pytest.fixture
def nucseg_messages():
    """The messages nucseg logs during the test (progress included), as strings. Attached to the
    "nucseg" logger itself: after the CLI's show_messages() it no longer passes them to the root."""
    import logging

    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger, handler = logging.getLogger("nucseg"), Collect(logging.DEBUG)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(level)

