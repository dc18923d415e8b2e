"""`nucseg data check | download`."""

from __future__ import annotations

import sys

from nucseg.config import resolve_data_path


def cmd_data_check(args) -> int:
    from nucseg.data.dataset import DatasetError, load_dataset, summarize

    path = resolve_data_path(args.path or args.data)
    try:
        tiles = load_dataset(path)
    except DatasetError as err:
        print(f"{path}: {len(err.problems)} problem(s):", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    rows = summarize(tiles)
    print(f"{path}")
    print(f"{'patient':<16} {'tiles':>5} {'nuclei':>6}  sizes")
    for row in rows:
        print(f"{row['patient']:<16} {row['tiles']:>5} {row['nuclei']:>6}  {row['sizes']}")
    print(f"{len(rows)} patients, {len(tiles)} tiles, {sum(r['nuclei'] for r in rows)} nuclei")
    for row in rows:
        if row["nuclei"] == 0:
            print(
                f"warning: patient {row['patient']} has no nucleus in its labels: as a held-out patient its "
                "sensitivity (TPR) and Perf are undefined (NaN, flagged `empty` in folds.csv); check its "
                "label files",
                file=sys.stderr,
            )
    return 0


def cmd_data_download(args) -> int:
    from nucseg.data.download import DownloadError, download_tnbc

    try:
        download_tnbc(args.dest, record=args.record, base_url=args.zenodo_url)
    except DownloadError as err:
        print(f"download failed: {err}", file=sys.stderr)
        return 1
    return 0
