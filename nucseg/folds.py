"""Leave-one-patient-out folds: each patient is the validation set exactly once."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Fold:
    val_patient: str
    train_patients: tuple[str, ...]


def lopo_folds(patients) -> list[Fold]:
    patients = sorted(set(patients))
    if len(patients) < 2:
        raise ValueError(f"leave-one-patient-out needs at least 2 patients, got {patients}")
    return [Fold(p, tuple(q for q in patients if q != p)) for p in patients]


def fold_for(patients, val_patient: str) -> Fold:
    folds = {f.val_patient: f for f in lopo_folds(patients)}
    if val_patient not in folds:
        raise ValueError(f"patient {val_patient!r} is not in the dataset; its patients are {sorted(folds)}")
    return folds[val_patient]
