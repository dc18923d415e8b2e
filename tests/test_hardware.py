import os
import subprocess
import sys
import warnings

import pytest

from nucseg import hardware

AVX2_ONLY = frozenset({"avx2", "fma"})  # AMD EPYC, Zen 3: TensorFlow leaves oneDNN off by itself
ZEN4 = frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"})  # TensorFlow turns it on


def turned_on(monkeypatch, flags, environ, imported):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hardware.turn_on_onednn(environ, imported)
    return environ.get(hardware.ONEDNN_VARIABLE), [str(w.message) for w in caught]


def test_onednn_is_asked_for_on_every_cpu_with_avx2_unless_the_user_chose(monkeypatch):
    assert turned_on(monkeypatch, AVX2_ONLY, {}, {}) == ("1", [])
    assert turned_on(monkeypatch, ZEN4, {}, {}) == ("1", [])
    assert turned_on(monkeypatch, AVX2_ONLY, {hardware.ONEDNN_VARIABLE: "0"}, {}) == ("0", [])
    # not measured there: TensorFlow's own default stays
    assert turned_on(monkeypatch, frozenset({"sse4_2"}), {}, {}) == (None, [])
    assert turned_on(monkeypatch, frozenset(), {}, {}) == (None, [])


def test_too_late_is_said_only_where_it_costs(monkeypatch):
    value, said = turned_on(monkeypatch, AVX2_ONLY, {}, {"tensorflow": object()})
    assert value is None and len(said) == 1
    assert "Import nucseg first" in said[0] and "TF_ENABLE_ONEDNN_OPTS=1" in said[0]
    assert turned_on(monkeypatch, ZEN4, {}, {"tensorflow": object()}) == (None, [])


def test_tensorflow_imported_after_nucseg_runs_through_onednn(tmp_path):
    """What the CLI and the notebooks get: nucseg first, then TensorFlow, whatever the CPU decides
    by itself."""
    if "avx2" not in hardware.cpu_flags():
        pytest.skip("a CPU without AVX2 keeps TensorFlow's default")
    env = {k: v for k, v in os.environ.items() if k != hardware.ONEDNN_VARIABLE}
    check = (
        "import nucseg, tensorflow\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print(_pywrap_util_port.IsMklEnabled())"
    )
    out = subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "True"


def test_a_benchmark_can_tell_when_onednn_is_nucseg_s_doing(monkeypatch):
    monkeypatch.setenv(hardware.ONEDNN_VARIABLE, "1")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: AVX2_ONLY)
    assert hardware.onednn_by_nucseg()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: ZEN4)  # TensorFlow's own choice there
    assert not hardware.onednn_by_nucseg()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: AVX2_ONLY)
    monkeypatch.setenv(hardware.ONEDNN_VARIABLE, "0")
    assert not hardware.onednn_by_nucseg()
