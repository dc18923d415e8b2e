"""Leave-one-patient-out folds: each patient is the validation set exactly once."""

from __future__ import annotations

import dataclasses

from nucseg.errors import InputError


class FoldError(InputError):
    """A held-out patient or a patient list that leave-one-patient-out cannot use."""


@dataclasses.dataclass(frozen=True)
class Fold:
    val_patient: str
    train_patients: tuple[str, ...]


def lopo_folds(patients) -> list[Fold]:
    patients = sorted(set(patients))
    if len(patients) < 2:
        raise FoldError(
            f"leave-one-patient-out needs at least 2 patients; this data set has {len(patients)} "
            f"({', '.join(patients) or 'none'}). Add patients, or check that each patient has its own folder."
        )
    return [Fold(p, tuple(q for q in patients if q != p)) for p in patients]


def fold_for(patients, val_patient: str) -> Fold:
    folds = {f.val_patient: f for f in lopo_folds(patients)}
    check_patients(patients, [val_patient])
    return folds[val_patient]


def check_patients(patients, asked) -> None:
    """FoldError naming every asked patient that the data set does not have."""
    unknown = [p for p in asked if p not in set(patients)]
    if unknown:
        raise FoldError(
            f"patient(s) {', '.join(map(repr, unknown))} not in the data set; its patients are "
            f"{', '.join(sorted(set(patients)))}."
        )
