import pytest

from nucseg.data.dataset import patients_of
from nucseg.study.folds import FoldError, fold_for, lopo_folds


def test_each_patient_validates_once_and_never_trains_on_itself(glioma_tiles):
    patients = patients_of(glioma_tiles)
    folds = lopo_folds(patients)
    assert sorted(f.val_patient for f in folds) == patients
    for fold in folds:
        assert fold.val_patient not in fold.train_patients
        assert sorted((*fold.train_patients, fold.val_patient)) == patients


def test_unknown_patient_and_single_patient_are_refused():
    with pytest.raises(FoldError, match="'c' not in the data set; its patients are a, b"):
        fold_for(["a", "b"], "c")
    with pytest.raises(FoldError, match="at least 2 patients"):
        lopo_folds(["a"])
