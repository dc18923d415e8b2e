"""Run folders belong to one configuration: the first run writes its config.json, a later run
in the same folder must bring the same configuration (but the fields it may vary), else it is
refused with a message, so that a folder never mixes results of two configurations. A folder
that holds its config.json alone (its run stopped before training began) is taken over."""

from __future__ import annotations

from pathlib import Path

from nucseg.config import Config, ConfigError
from nucseg.io import RunLock, write_json_atomic

CONFIG_FILE = "config.json"


def claim_folder(out_dir: str | Path, config: Config, ignore=("data",)) -> None:
    """Write config.json, or check that the folder's one is this configuration (but `ignore`)."""
    out_dir = Path(out_dir)
    path = out_dir / CONFIG_FILE
    if path.is_file():
        previous = Config.read_json(path)
        if previous.config_hash(ignore) != config.config_hash(ignore):
            if {p.name for p in out_dir.iterdir()} <= {CONFIG_FILE, RunLock.NAME}:
                # a run stopped before it began (a bad --init, say): nothing of it to keep, so the
                # corrected command may take the folder
                write_json_atomic(path, config.to_dict())
                return
            changed = sorted(k for k, v in config.to_dict().items() if getattr(previous, k) != v and k not in ignore)
            raise ConfigError(
                f"{out_dir} holds a run with another configuration (differs in {changed}). "
                "Use a new --out folder for this one, or remove the old folder to start again."
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, config.to_dict())
