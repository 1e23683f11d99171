"""The report of the Mitsuba cross-check (training/validate_mitsuba.py): table, edge-profile plot, files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dfd_depth_ros.evaluation.edge_fit import disc_esf_pixel, pixel_centres

DEFAULT_TOL_PX = 1.0


def _table(report: dict, tol_px: float) -> str:
    head = (
        "| case | z (m) | focus (m) | f (mm) | N | fx (px) | predicted (px) | Mitsuba (px) | ours (px) "
        "| Mitsuba - pred | ours - pred | ours - Mitsuba | ok |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in report["cases"]:
        c = r["case"]
        ok = abs(r["mitsuba_minus_predicted_px"]) <= tol_px and abs(r["ours_minus_predicted_px"]) <= tol_px
        rows.append(
            f"| {c['name']} | {c['z_m']:g} | {c['focus_distance_m']:g} | {1000 * c['focal_length_m']:g} "
            f"| {c['f_number']:g} | {c['fx_px']:g} | {r['predicted_px']:.2f} | {r['mitsuba_px']:.2f} "
            f"| {r['ours_px']:.2f} | {r['mitsuba_minus_predicted_px']:+.2f} | {r['ours_minus_predicted_px']:+.2f} "
            f"| {r['ours_minus_mitsuba_px']:+.2f} | {'yes' if ok else 'NO'} |"
        )
    return head + "\n".join(rows) + "\n"


def _plot(report: dict, path: Path) -> None:
    """One column per case: edge profiles on top, differences from the optics' prediction below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = report["cases"]
    ncol = min(4, len(cases))
    nrow = math.ceil(len(cases) / ncol)
    fig, axes = plt.subplots(
        2 * nrow,
        ncol,
        figsize=(4.2 * ncol, 4.4 * nrow),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1] * nrow},
    )
    for i in range(nrow * ncol):
        ax, res = axes[2 * (i // ncol), i % ncol], axes[2 * (i // ncol) + 1, i % ncol]
        if i >= len(cases):
            ax.axis("off")
            res.axis("off")
            continue
        r = cases[i]
        m = np.asarray(r["profiles"]["mitsuba"])
        o = np.asarray(r["profiles"]["ours"])
        x = pixel_centres(len(m))
        # Analytic prediction at the nominal edge and levels 0/1, polarity from the all-in-focus image.
        aif = np.asarray(r["profiles"]["aif"])
        sign = 1.0 if aif[-1] > aif[0] else -1.0
        e, c = r["edge_nominal_px"], r["predicted_px"]
        fine = np.linspace(0, len(m), 20 * len(m))
        ax.plot(fine, disc_esf_pixel(sign * (fine - e), c), "k-", lw=1.0, label=f"optics c={c:.2f}")
        ax.plot(x, o, "-", lw=1.2, color="tab:orange", label=f"ours c={r['ours_px']:.2f}")
        ax.plot(x, m, "o", ms=5, mfc="none", color="tab:blue", label=f"Mitsuba c={r['mitsuba_px']:.2f}")
        at_px = disc_esf_pixel(sign * (x - e), c)
        res.plot(x, m - at_px, "o", ms=3, mfc="none", color="tab:blue")
        res.plot(x, o - at_px, "-", lw=1.0, color="tab:orange")
        res.axhline(0.0, color="k", lw=0.6)
        half = max(6.0, 0.8 * c + 3)
        for a in (ax, res):
            a.set_xlim(e - half, e + half)
            a.grid(alpha=0.3)
        ax.set_title(f"{r['case']['name']}  (z={r['case']['z_m']:g} m)", fontsize=9)
        ax.legend(fontsize=7)
        res.set_xlabel("x (px)")
        res.set_ylabel("- optics", fontsize=8)
    fig.suptitle("Edge profiles: Mitsuba thinlens vs dfd_depth_ros.synthetic.render vs analytic disc ESF (box pixel)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: dict, out_dir: Path, tol_px: float = DEFAULT_TOL_PX) -> str:
    """Write crosscheck.json, crosscheck.md and crosscheck.png; returns the markdown table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = _table(report, tol_px)
    (out_dir / "crosscheck.json").write_text(json.dumps(report, indent=2))
    cfg = report["config"]
    md = (
        "# Thin-lens cross-check: optics vs Mitsuba 3 vs dfd_depth_ros.synthetic.render\n\n"
        f"Mitsuba variant `{cfg['variant']}`, {cfg['spp']} spp ({cfg['sampler']} sampler), "
        f"sensor {cfg['sensor_width_px']}x{cfg['sensor_height_px']} px (fx refers to it), rendered crop "
        f"{cfg['crop_width_px']}x{cfg['crop_height_px']} px, box reconstruction filter. Blur diameters are "
        "least-squares fits of the pixel-integrated uniform-disc edge spread function to the row-averaged "
        f"edge profile. Tolerance {tol_px:g} px. Total {report['seconds_total']:.1f} s.\n\n" + table
    )
    (out_dir / "crosscheck.md").write_text(md)
    _plot(report, out_dir / "crosscheck.png")
    return table
