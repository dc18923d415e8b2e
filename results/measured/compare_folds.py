"""Fold-by-fold comparison of two leave-one-patient-out runs on the patients they share.

    .venv/bin/python results/measured/compare_folds.py results/measured/tnbc_cpu_dist/folds.csv DIR/folds.csv
"""

import sys

import pandas as pd

SCORES = ["f1", "aji", "object_f1", "pq"]


def compare(reference: str, run: str) -> str:
    a, b = pd.read_csv(reference).set_index("val_patient"), pd.read_csv(run).set_index("val_patient")
    shared = [p for p in b.index if p in a.index]
    lines = ["| patient | " + " | ".join(f"{s} (reference → this run)" for s in SCORES) + " |",
             "|---|" + "---|" * len(SCORES)]
    for patient in shared:
        lines.append(f"| {patient} | " + " | ".join(f"{a.loc[patient, s]:.3f} → {b.loc[patient, s]:.3f}" for s in SCORES) + " |")
    lines.append(f"| **mean of {len(shared)}** | " + " | ".join(
        f"**{a.loc[shared, s].mean():.3f} → {b.loc[shared, s].mean():.3f}**" for s in SCORES) + " |")
    higher = {s: int((b.loc[shared, s] > a.loc[shared, s]).sum()) for s in SCORES}
    lines.append("\nHigher in this run on " + ", ".join(f"{s} {n} of {len(shared)}" for s, n in higher.items()) +
                 f" folds; seconds per fold: reference {a.loc[shared, 'seconds'].mean():.0f}, this run "
                 f"{b.loc[shared, 'seconds'].mean():.0f} (wall time; other jobs shared the cores in both).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(compare(*sys.argv[1:3]))
