import hashlib
import http.server
import io
import json
import threading
import zipfile

import numpy as np
import pytest

from conftest import blob_label
from nucseg.cli import main
from nucseg.data.dataset import load_dataset
from nucseg.data.download import download_tnbc, DownloadError


def tnbc_zip() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for patient in ("01", "02"):
            for folder, array in ((f"Slide_{patient}", np.zeros((64, 64, 3), np.uint8)),
                                  (f"GT_{patient}", (blob_label() > 0).astype(np.uint8) * 255)):
                png = io.BytesIO()
                Image.fromarray(array).save(png, format="PNG")
                archive.writestr(f"TNBC_NucleiSegmentation/{folder}/{patient}_1.png", png.getvalue())
        archive.writestr("__MACOSX/TNBC_NucleiSegmentation/._junk", b"x")
    return buffer.getvalue()


@pytest.fixture
def zenodo():
    """A local stand-in for Zenodo on 127.0.0.1: record metadata and the zip it lists."""
    state = {"zip": tnbc_zip(), "md5": None}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            base = f"http://127.0.0.1:{self.server.server_port}"
            if self.path == "/api/records/1175282":
                md5 = state["md5"] or hashlib.md5(state["zip"]).hexdigest()
                record = {"key": "TNBC_NucleiSegmentation.zip", "size": len(state["zip"]), "checksum": f"md5:{md5}",
                          "links": {"self": f"{base}/files/TNBC_NucleiSegmentation.zip"}}
                body = json.dumps({"files": [record]}).encode()
            elif self.path == "/files/TNBC_NucleiSegmentation.zip":
                body = state["zip"]
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()


def test_download_checks_and_unpacks(zenodo, tmp_path):
    dest = download_tnbc(tmp_path / "tnbc", base_url=zenodo["url"])
    assert sorted(p.name for p in dest.iterdir()) == ["GT_01", "GT_02", "Slide_01", "Slide_02"]
    assert len(load_dataset(dest)) == 2
    assert not (tmp_path / "tnbc.part").exists()


def test_corrupted_download_leaves_nothing(zenodo, tmp_path, capsys):
    zenodo["zip"] = zenodo["zip"][:-100] + b"\0" * 100
    zenodo["md5"] = "0" * 32
    code = main(["data", "download", "tnbc", "--dest", str(tmp_path / "tnbc"), "--zenodo-url", zenodo["url"]])
    assert code == 1
    assert "corrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_killed_download_restarts_cleanly(zenodo, tmp_path):
    leftover = tmp_path / "tnbc.part"
    leftover.mkdir()
    (leftover / "TNBC_NucleiSegmentation.zip").write_bytes(b"half a zip")
    dest = download_tnbc(tmp_path / "tnbc", base_url=zenodo["url"])
    assert len(load_dataset(dest)) == 2 and not leftover.exists()


def test_offline_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DownloadError) as raised:
        download_tnbc(tmp_path / "tnbc", base_url="http://127.0.0.1:9", timeout=2)
    message = str(raised.value)
    assert "by hand" in message and "zenodo.org/records/1175282" in message and "Slide_NN/" in message
    assert not (tmp_path / "tnbc").exists()
