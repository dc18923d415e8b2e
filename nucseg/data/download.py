"""Downloading the TNBC dataset from Zenodo, checked and unpacked atomically.

The record's metadata (Zenodo's API, `/api/records/<id>`) gives the file's name, size and MD5;
the zip is streamed to `<dest>.part/` beside the destination, checked, unpacked there, and only
then renamed to `dest`. A killed download leaves no half dataset: the next run starts again.
"""

from __future__ import annotations

import logging

import hashlib
import json
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from nucseg.errors import InputError

logger = logging.getLogger(__name__)

TNBC_RECORD = "1175282"
ZENODO_URL = "https://zenodo.org"
TNBC_ARCHIVE = "TNBC_NucleiSegmentation.zip"


class DownloadError(InputError):
    """The download failed; the message says how to get the files by hand."""


def manual_instructions(dest: Path, record: str) -> str:
    return (
        f"Download {TNBC_ARCHIVE} by hand from {ZENODO_URL}/records/{record}, unzip it, and move its "
        f"Slide_NN/ and GT_NN/ folders into {dest}/ (then check with `nucseg data check {dest}`)."
    )


def _fetch(url: str, timeout: float):
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"cannot reach {url} ({err}).") from err


def record_file(record: str, base_url: str, timeout: float) -> dict:
    """Name, size, md5 and download address of the record's zip."""
    with _fetch(f"{base_url}/api/records/{record}", timeout) as response:
        metadata = json.load(response)
    for entry in metadata.get("files", []):
        if entry.get("key", "").endswith(".zip"):
            algorithm, _, digest = entry.get("checksum", "").partition(":")
            if algorithm != "md5":
                raise DownloadError(f"record {record}: no MD5 checksum for {entry['key']} in its metadata")
            return {"name": entry["key"], "size": entry.get("size"), "md5": digest, "url": entry["links"]["self"]}
    raise DownloadError(f"record {record} at {base_url} lists no zip file")


def _stream(url: str, target: Path, timeout: float) -> str:
    digest = hashlib.md5()
    with _fetch(url, timeout) as response, target.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _unpack(archive: Path, into: Path) -> None:
    """Unzip, keeping only the Slide_NN/ and GT_NN/ folders wherever they sit in the archive."""
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            parts = Path(member.filename).parts
            keep = [i for i, p in enumerate(parts) if p.startswith(("Slide_", "GT_"))]
            if member.is_dir() or "__MACOSX" in parts or not keep:
                continue
            relative = Path(*parts[keep[0] :])
            (into / relative).parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, (into / relative).open("wb") as out:
                shutil.copyfileobj(source, out)


def download_tnbc(
    dest: str | Path, record: str = TNBC_RECORD, base_url: str = ZENODO_URL, timeout: float = 60.0
) -> Path:
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise DownloadError(
            f"--dest {dest} is a file, not a folder. Pass a folder to unpack TNBC into (default data/tnbc)."
        )
    if dest.exists() and any(dest.iterdir()):
        logger.info(f"{dest} already holds a dataset; nothing downloaded (remove it to download again).")
        return dest
    staging = dest.parent / f"{dest.name}.part"
    shutil.rmtree(staging, ignore_errors=True)  # what a killed run left
    staging.mkdir(parents=True)
    try:
        try:
            entry = record_file(record, base_url, timeout)
            logger.info(f"downloading {entry['name']} ({entry['size']} bytes) from {base_url}, record {record}")
            archive = staging / entry["name"]
            md5 = _stream(entry["url"], archive, timeout)
        except DownloadError as err:
            raise DownloadError(f"{err} Offline? {manual_instructions(dest, record)}") from err
        if md5 != entry["md5"]:
            raise DownloadError(
                f"{entry['name']}: MD5 {md5} differs from the record's {entry['md5']}: the download "
                f"is corrupted. Run the command again, or {manual_instructions(dest, record)}"
            )
        try:
            _unpack(archive, staging / "tnbc")
        except zipfile.BadZipFile as err:
            raise DownloadError(
                f"{entry['name']}: not a valid zip ({err}). {manual_instructions(dest, record)}"
            ) from err
        if dest.exists():
            dest.rmdir()
        (staging / "tnbc").rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(f"TNBC unpacked into {dest}")
    return dest
