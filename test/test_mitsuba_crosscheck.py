"""Cross-check of the thin-lens optics against Mitsuba 3 (scalar_rgb) and our layered renderer.

Runs training.validate_mitsuba's quick mode (4 cases, 4-17 px of blur, in front of and behind
focus, two lenses; a few seconds on 2 cores). The Mitsuba tests skip when mitsuba is missing;
the edge-fit tests need only numpy and scipy.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from training import validate_mitsuba as vm

TOL_PX = 1.0


# ---------------------------------------------------------------------------------------
# The measurement itself (no Mitsuba needed)
# ---------------------------------------------------------------------------------------


def test_disc_esf_basics():
    x = np.linspace(-10, 10, 2001)
    for c in (0.0, 3.0, 12.0):
        e = vm.disc_esf(x, c)
        assert e[0] == 0.0 and e[-1] == 1.0
        assert np.all(np.diff(e) >= 0)
        if c > 0:
            assert float(vm.disc_esf(0.0, c)) == pytest.approx(0.5)
            assert float(vm.disc_esf(c / 2, c)) == 1.0 and float(vm.disc_esf(-c / 2, c)) == 0.0
        # The pixel-integrated ESF is the box average of the point ESF.
        sub = np.linspace(-0.5, 0.5, 4001)
        for x0 in (-1.3, 0.2, 4.7):
            assert vm.disc_esf_pixel(x0, c) == pytest.approx(vm.disc_esf(x0 + sub, c).mean(), abs=1e-3)
    # 10-90 % rise of a disc's edge spread function, in units of its diameter.
    assert vm.disc_esf_10_90_ratio() == pytest.approx(0.6870, abs=1e-3)


@pytest.mark.parametrize("c", [2.0, 4.1, 9.5, 17.3, 24.0])
@pytest.mark.parametrize("bright_right", [True, False])
def test_fit_edge_recovers_diameter(c, bright_right):
    rng = np.random.default_rng(0)
    x = np.arange(96) + 0.5
    u = (x - 47.7) if bright_right else (47.7 - x)
    profile = 0.02 + 0.9 * vm.disc_esf_pixel(u, c) + rng.normal(0, 0.002, x.shape)
    fit = vm.fit_edge(profile)
    assert fit.diameter_px == pytest.approx(c, abs=0.1)
    assert fit.edge_px == pytest.approx(47.7, abs=0.05)
    assert min(fit.lo, fit.hi) == pytest.approx(0.02, abs=0.005)
    assert max(fit.lo, fit.hi) == pytest.approx(0.92, abs=0.005)


# ---------------------------------------------------------------------------------------
# Mitsuba vs optics vs dfd_depth_ros.synthetic.render
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_report():
    pytest.importorskip("mitsuba")
    return vm.run(vm.QUICK_CASES, vm.QUICK_CONFIG, depth_check=True, log=None)


@pytest.mark.parametrize("index", range(len(vm.QUICK_CASES)), ids=[c.name for c in vm.QUICK_CASES])
def test_blur_diameter_matches_optics(quick_report, index):
    r = quick_report["cases"][index]
    case = vm.QUICK_CASES[index]
    assert r["predicted_px"] == pytest.approx(case.predicted_px)
    assert abs(r["mitsuba_px"] - r["predicted_px"]) <= TOL_PX, r
    assert abs(r["ours_px"] - r["predicted_px"]) <= TOL_PX, r


@pytest.mark.parametrize("index", range(len(vm.QUICK_CASES)), ids=[c.name for c in vm.QUICK_CASES])
def test_scene_geometry(quick_report, index):
    """The scene is what the comparison assumes: a 0/1 step on the centre column at z-depth z."""
    r = quick_report["cases"][index]
    assert r["aif_is_step"]
    for fit in (r["mitsuba_fit"], r["ours_fit"]):
        assert fit["edge_px"] == pytest.approx(r["edge_nominal_px"], abs=0.1)
        assert sorted([fit["lo"], fit["hi"]]) == pytest.approx([0.0, 1.0], abs=0.01)
        assert fit["rms"] < 0.01
    assert r["depth_check"]["max_abs_err_m"] < 1e-3


def test_crosscheck_detects_a_wrong_aperture():
    """Guard against a vacuous check: twice the aperture diameter must show up as twice the blur."""
    pytest.importorskip("mitsuba")
    case = vm.QUICK_CASES[1]  # 6.7 px
    wrong = replace(case, f_number=case.f_number / 2)
    measured = vm.fit_edge(vm.render_mitsuba(wrong, vm.QUICK_CONFIG).mean(axis=0)).diameter_px
    assert measured == pytest.approx(2 * case.predicted_px, abs=TOL_PX)
    assert abs(measured - case.predicted_px) > TOL_PX


def test_cli_quick_writes_report(tmp_path):
    pytest.importorskip("mitsuba")
    rc = vm.main(["--out", str(tmp_path), "--quick", "--no-depth-check", "--spp", "64"])
    assert rc == 0
    report = json.loads((tmp_path / "crosscheck.json").read_text())
    assert len(report["cases"]) == len(vm.QUICK_CASES)
    assert "| A_front_0.33m |" in (tmp_path / "crosscheck.md").read_text()
    assert (tmp_path / "crosscheck.png").stat().st_size > 10_000
