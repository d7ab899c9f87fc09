"""Issue 15 follow-up: a dlib_resnet_v1_int8 library on a CPU without VNNI says so instead of silently searching
with descriptors its calibration does not describe (models/cpu_features.py).

A CPU without VNNI cannot be caused on this machine, so the CPU's answer is the one thing replaced here (a fake
/proc/cpuinfo text, or :func:`this_cpu_has_vnni` patched); the libraries, models and calibrations are real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facesearch import Library
from facesearch.api import create_app
from facesearch.governance import add_user
from facesearch.models import cpu_features
from facesearch.models.cpu_features import has_vnni, int8_cpu_warning
from facesearch.models.embed.info import DLIB_RESNET_INT8_KEY, DLIB_RESNET_INT8R_KEY, DLIB_RESNET_KEY
from tests.helpers import cli_ok

HASWELL = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz
flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c avx2 bmi2
"""
ICELAKE = HASWELL.replace("avx2 bmi2", "avx2 bmi2 avx512f avx512bw avx512_vnni")
ALDERLAKE = HASWELL.replace("avx2 bmi2", "avx2 bmi2 avx_vnni")


def test_vnni_is_read_from_the_cpu_flags() -> None:
    """Either VNNI flag counts; a flags line without one is a CPU without VNNI; a flag that merely contains
    the letters (avx512_vnni as a substring of nothing else) is not guessed at."""
    assert has_vnni(ICELAKE, "x86_64") is True
    assert has_vnni(ALDERLAKE, "x86_64") is True
    assert has_vnni(HASWELL, "x86_64") is False
    assert has_vnni(HASWELL.replace("avx2", "avx2 xavx_vnnix"), "x86_64") is False


def test_unknown_when_the_cpu_does_not_say_or_is_not_x86() -> None:
    """No text, no flags line, or an ARM CPU (other int8 kernels altogether): unknown, never a guess."""
    assert has_vnni(None, "x86_64") is None
    assert has_vnni("processor\t: 0\nmodel name\t: something\n", "x86_64") is None
    assert has_vnni(HASWELL, "aarch64") is None
    assert has_vnni(HASWELL, "arm64") is None


def test_only_the_8_bit_int8_model_on_a_cpu_without_vnni_is_warned() -> None:
    """The warning is for dlib_resnet_v1_int8 (a bare key or a recipe key) on a CPU known to lack VNNI; the
    portable int8r model, the float model, a VNNI CPU and an unknown CPU get none."""
    warning = int8_cpu_warning(f"{DLIB_RESNET_INT8_KEY}+flip+jitter2.5", vnni=False)
    assert warning is not None and "no VNNI" in warning and DLIB_RESNET_INT8R_KEY in warning
    assert int8_cpu_warning(DLIB_RESNET_INT8_KEY, vnni=False) == warning
    for key in (DLIB_RESNET_INT8R_KEY, f"{DLIB_RESNET_INT8R_KEY}+flip+jitter2.5y", DLIB_RESNET_KEY):
        assert int8_cpu_warning(key, vnni=False) is None, key
    assert int8_cpu_warning(DLIB_RESNET_INT8_KEY, vnni=True) is None


def test_an_int8_library_on_a_cpu_without_vnni_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    """An existing dlib_resnet_v1_int8 library (its shipped calibration) on a CPU without VNNI: the warning is in
    every result's calibration_warning (beside the held-out one, which stays) and in `stats`, `doctor` and the API's
    collection list, JSON and text (doctor still passes: nothing to repair).
    A portable library on the same CPU, and the int8 library on a VNNI CPU, carry no CPU warning."""
    photo = shared_data / "face_recognition_examples" / "by_identity" / "barack_obama" / "obama.jpg"
    folder = tmp_path / "int8"
    with Library.open(folder, model=DLIB_RESNET_INT8_KEY, jitter_axes="xy") as lib:
        _, source = lib.scoring.score_table("cosine")
        assert source is not None
        monkeypatch.setattr(cpu_features, "this_cpu_has_vnni", lambda: True)
        on_vnni = lib.scoring.calibration_warning(source) or ""
        assert "VNNI" not in on_vnni and lib.stats()["warnings"] == []
        monkeypatch.setattr(cpu_features, "this_cpu_has_vnni", lambda: False)
        warning = lib.scoring.calibration_warning(source)
        assert warning is not None and "no VNNI" in warning
        assert on_vnni and warning.startswith(on_vnni)  # the held-out check's warning is kept, the CPU's added
        assert lib.stats()["warnings"] == [int8_cpu_warning(DLIB_RESNET_INT8_KEY, vnni=False)]
        assert lib.scoring.calibration_warning(None) is None  # no calibration used, nothing it could misdescribe
    cli_ok("index", str(photo), "--library", str(folder), "--workers", "1", "--create-collection")
    stats = json.loads(cli_ok("stats", "--library", str(folder), "--json").stdout)
    assert len(stats["warnings"]) == 1 and "no VNNI" in stats["warnings"][0]
    assert "no VNNI" in " ".join(cli_ok("stats", "--library", str(folder)).stdout.split())
    doctor = json.loads(cli_ok("doctor", "--library", str(folder), "--json").stdout)
    assert (
        doctor["ok"] and len(doctor["warnings"]) == 1 and "no VNNI" in doctor["warnings"][0]
    )  # a warning, not a failure
    assert "no VNNI" in " ".join(cli_ok("doctor", "--library", str(folder)).stdout.split())
    with Library.open(folder) as lib:
        _, key = add_user(lib.catalog, "admin-1", "admin")
    with TestClient(create_app(folder, rate_limit_per_minute=0, ingest_workers=1)) as client:
        listed = client.get("/v1/collections", headers={"X-API-Key": key})
    assert (
        listed.status_code == 200 and len(listed.json()["warnings"]) == 1 and "no VNNI" in listed.json()["warnings"][0]
    )
    with Library.open(tmp_path / "portable", model=DLIB_RESNET_INT8R_KEY) as portable:
        assert portable.stats()["warnings"] == []
