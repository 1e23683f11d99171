"""The benchmark scoreboard: eval-bags' per-bag metrics.json documents -> one markdown page.

    text = scoreboard_markdown(docs, strips={"bag": "img/benchmark/bag.png"}, title="...", intro=[...])

Tables: overall (frame-weighted over the bags, and apart for the weak-lens bags), abs_rel per focus
schedule and per camera motion, and every bag with every method. The reference rows (median_floor,
blur_oracle: they read the ground truth) are printed in italics under the methods, never ranked with
them. A cell whose method left more than ``MISSING_MARK`` of the valid pixels without depth is
marked, and the table gives that method's abs_rel with the holes filled by the frame's median
prediction (``abs_rel_filled``), so holes cannot flatter a method.
Groups come from the bag's stored sequence meta ("schedule", "motion", "lens_regime"); bags
recorded elsewhere, without it, count as "unknown".
"""

from __future__ import annotations

from dfd_depth_ros.evaluation.evaluate import aggregate_metrics
from dfd_depth_ros.evaluation.report import format_metric

MISSING_MARK = 0.02
COLUMNS = (("abs_rel", "abs_rel"), ("abs_rel_filled", "abs_rel, holes filled"), ("rmse", "rmse [m]"),
           ("delta1", "δ<1.25"), ("flicker", "flicker"), ("missing", "missing"), ("frames", "frames"))
SCHEDULE_ORDER = ("fixed", "sweep", "focal_stack", "rack", "af_hunt")


def _rows(doc: dict) -> list[tuple[str, dict, bool]]:
    """(name, metrics, is_reference) of a document's methods, then its references."""
    return ([(n, m, False) for n, m in doc["methods"].items()]
            + [(n, m, True) for n, m in doc.get("references", {}).items()])


def _cell(m: dict, key: str) -> str:
    text = format_metric(m.get(key), key)
    missing = m.get("missing")
    if key == "abs_rel" and missing is not None and missing > MISSING_MARK:
        text += " ⚠"
    return text


def _label(name: str, reference: bool) -> str:
    return f"*{name} (reference)*" if reference else f"**{name}**" if name == "dfd_recurrent" else name


def metrics_rows(doc: dict, first: str) -> list[str]:
    """Table rows (no header) of one document: methods, then references in italics."""
    return [f"| {first} | {_label(n, ref)} | " + " | ".join(_cell(m, k) for k, _ in COLUMNS) + " |"
            for n, m, ref in _rows(doc)]


def _header(first: str) -> list[str]:
    return ["| " + " | ".join([first, "method", *(t for _, t in COLUMNS)]) + " |",
            "|" + "---|" * (len(COLUMNS) + 2)]


def combine(docs: list[dict]) -> dict:
    """Frame-weighted means over several documents: {"methods": ..., "references": ..., "frames", "bags"}."""
    refs = [{"methods": d.get("references", {}), "frames": d["frames"]} for d in docs]
    return {"bags": len(docs), "frames": int(sum(d["frames"] for d in docs)),
            "methods": aggregate_metrics(docs), "references": aggregate_metrics(refs)}


def _group(doc: dict, key: str) -> str:
    """The bag's ``key`` from its sequence meta; a dict value (the generator's schedule) gives its own ``key``."""
    value = doc.get("sequence", {}).get(key, "unknown")
    if isinstance(value, dict):
        value = value.get(key, value.get("name", "unknown"))
    return str(value)


def _motion_kind(doc: dict) -> str:
    motion = _group(doc, "motion")
    return motion if motion in ("static", "unknown") else "moving"


def group_table(docs: list[dict], key_of, order: tuple[str, ...] = (), metric: str = "abs_rel") -> list[str]:
    """One row per method (references last), one column per group; cells: the group's frame-weighted ``metric``."""
    groups: dict[str, list[dict]] = {}
    for doc in docs:
        groups.setdefault(key_of(doc), []).append(doc)
    names = [g for g in order if g in groups] + sorted(g for g in groups if g not in order)
    combined = {g: combine(groups[g]) for g in names}
    rows = list(dict.fromkeys((n, ref) for doc in docs for n, _, ref in _rows(doc)))
    rows.sort(key=lambda r: r[1])
    lines = ["| method | " + " | ".join(f"{g} ({len(groups[g])})" for g in names) + " |",
             "|---|" + "---|" * len(names)]
    for name, ref in rows:
        cells = []
        for g in names:
            m = combined[g]["references" if ref else "methods"].get(name)
            cells.append("–" if m is None else _cell(m, metric))
        lines.append(f"| {_label(name, ref)} | " + " | ".join(cells) + " |")
    return lines


def scoreboard_markdown(docs: list[dict], strips: dict[str, str] | None = None, title: str = "Benchmark",
                        intro: list[str] | None = None, failures: list[tuple[str, str]] | None = None) -> str:
    """The whole page; ``strips``: bag name -> image path relative to the page."""
    weak = [d for d in docs if _group(d, "lens_regime") == "weak"]
    normal = [d for d in docs if d not in weak]
    lines = [f"# {title}", "", *(intro or []), ""]
    lines += ["## Overall", "",
              f"Frame-weighted means over the bags. {len(normal)} bags with lenses of 8-25 px of maximum blur, "
              f"{len(weak)} in the weak-lens regime (reported apart). ⚠: more than {100 * MISSING_MARK:.0f} % of "
              "the valid pixels got no depth; read the *holes filled* column for that method. *Italic rows* are "
              "references that read the ground truth, not methods.", ""]
    lines += _header("set")
    for label, subset in (("all bags", docs), ("8-25 px lenses", normal), ("weak lenses", weak)):
        if subset:
            c = combine(subset)
            lines += metrics_rows(c, f"{label} ({c['bags']})")
    lines += ["", "## abs_rel per focus schedule", ""]
    lines += group_table(normal, lambda d: _group(d, "schedule"), SCHEDULE_ORDER)
    lines += ["", "## abs_rel per camera motion", ""]
    lines += group_table(normal, _motion_kind, ("static", "moving"))
    lines += ["", "By motion type:", ""]
    lines += group_table(normal, lambda d: _group(d, "motion"), ("static",))
    lines += ["", "## Every bag", ""]
    lines += _header("bag")
    for doc in docs:
        seq = doc.get("sequence", {})
        tag = ", ".join(_group(doc, k) for k in ("schedule", "motion", "lens_regime") if k in seq)
        lines += metrics_rows(doc, f"{doc['bag']} ({tag})" if tag else doc["bag"])
    if failures:
        lines += ["", "## Bags that could not be evaluated", ""]
        lines += [f"- `{bag}`: {error}" for bag, error in failures]
    if strips:
        lines += ["", "## Pictures", "",
                  "RGB | ground truth | each method's depth | its error (abs rel, 0-1) for one frame of each bag.", ""]
        for doc in docs:
            if doc["bag"] in strips:
                lines += [f"**{doc['bag']}**", "", f"![{doc['bag']}]({strips[doc['bag']]})", ""]
    return "\n".join(lines).rstrip() + "\n"
