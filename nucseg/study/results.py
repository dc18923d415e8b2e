"""Result tables: one row per (architecture, held-out patient) in folds.csv, and the summary
per architecture (mean and standard deviation over patients) in the paper's layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nucseg.io import write_text_atomic

SCORE_COLUMNS = [
    "accuracy",
    "f1",
    "perf",
    "iou",
    "tpr",
    "tnr",
    "predicted_fraction",
    "aji",
    "object_precision",
    "object_recall",
    "object_f1",
    "pq",
]
FOLD_COLUMNS = ["arch", "val_patient", *SCORE_COLUMNS, "val_loss", "flags", "steps", "seconds", "seed", "config_hash"]
SUMMARY_SCORES = {"accuracy": "Acc", "f1": "F1", "perf": "Perf", "aji": "AJI", "object_f1": "object F1", "pq": "PQ"}


def read_folds(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=FOLD_COLUMNS)
    folds = pd.read_csv(path, dtype={"val_patient": str, "config_hash": str, "flags": str})
    folds["flags"] = folds["flags"].fillna("") if "flags" in folds else ""
    return folds


def append_fold_row(path: str | Path, row: dict, order: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Add one fold's row, replacing the file atomically; a row already there is not added twice.
    `order`: the study's (arch, val_patient) order, which the rows are kept in whatever order the
    folds end in (rows it does not name stay first, as they were)."""
    folds = read_folds(path)
    done = (folds["arch"] == row["arch"]) & (folds["val_patient"] == row["val_patient"])
    if done.any():
        return folds
    folds = pd.concat([folds, pd.DataFrame([row], columns=FOLD_COLUMNS)], ignore_index=True)
    if order is not None:
        rank = {key: i for i, key in enumerate(order)}
        position = [rank.get((a, p), -1) for a, p in zip(folds["arch"], folds["val_patient"])]
        folds = folds.iloc[sorted(range(len(folds)), key=lambda i: (position[i], i))].reset_index(drop=True)
    write_text_atomic(path, folds.to_csv(index=False))
    return folds


def _learning_flagged(flags: str) -> bool:
    """A fold flagged for not learning (one-class, loss-stuck); `empty` alone says nothing of the model."""
    return any(f and f != "empty" for f in flags.split(";"))


def summarize_folds(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over patients, per architecture."""
    grouped = folds.groupby("arch", sort=False)
    summary = pd.DataFrame(
        {
            "patients": grouped.size(),
            "flagged": grouped["flags"].apply(lambda f: int(f.astype(str).map(_learning_flagged).sum())),
            "empty": grouped["flags"].apply(lambda f: int(f.astype(str).str.contains("empty").sum())),
        }
    )
    for column in SUMMARY_SCORES:
        summary[f"{column}_mean"] = grouped[column].mean()
        summary[f"{column}_std"] = grouped[column].std(ddof=1).fillna(0.0)
    summary["steps"] = grouped["steps"].first()
    return summary.reset_index()


def summary_markdown(summary: pd.DataFrame, digits: int = 3) -> str:
    header = "| net | patients | " + " | ".join(SUMMARY_SCORES.values()) + " |"
    lines = [header, "|---|---:|" + "---:|" * len(SUMMARY_SCORES)]
    for _, row in summary.iterrows():
        cells = [f"{row[f'{c}_mean']:.{digits}f} ± {row[f'{c}_std']:.{digits}f}" for c in SUMMARY_SCORES]
        patients = f"{row['patients']} ({row['flagged']} flagged)" if row["flagged"] else f"{row['patients']}"
        lines.append(f"| {row['arch']} | {patients} | " + " | ".join(cells) + " |")
    if summary["flagged"].sum():
        lines.append(
            "\nFlagged folds did not learn (see the `flags` column of folds.csv); they are in the means above."
        )
    if "empty" in summary and summary["empty"].sum():
        lines.append(
            "\nSome held-out patients have no nucleus in their labels (flag `empty` in folds.csv): their "
            "sensitivity and Perf are undefined and left out of the Perf means; their other scores are in."
        )
    return "\n".join(lines) + "\n"


def write_summary(folds: pd.DataFrame, out_dir: str | Path) -> pd.DataFrame:
    summary = summarize_folds(folds)
    write_text_atomic(Path(out_dir) / "summary.csv", summary.to_csv(index=False))
    write_text_atomic(Path(out_dir) / "summary.md", summary_markdown(summary))
    return summary


def markdown_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A plain Markdown rendering of a DataFrame (floats to `digits` significant digits)."""

    def cell(value):
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
