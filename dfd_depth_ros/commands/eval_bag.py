"""`dfd-depth eval-bag` and `eval-bags`: replay contract bags through the live node's estimator and score it.

eval-bag BAG --out DIR
    Reads the bag (sqlite3 or mcap; never modified) frame by frame in stamp order, runs the
    same DepthStream as depth_node on each frame (lens state interpolated at the image stamp,
    temporal state carried, the node's reset rules) and compares with /camera/depth_gt.
    Writes DIR/metrics.json (the bag contract's format, plus "missing"), DIR/report.md (metrics
    per method, lens and blur ranges, frames skipped and why, missing pixels, state resets)
    and plots: error_vs_frame.png, error_vs_depth.png, error_vs_blur.png, strip.png.
    --baselines adds dfd_single_frame (the same model with its state zeroed before every frame, or
    dfd_single_frame.onnx where one lies beside the model), monocular (monocular.onnx beside the
    model or --monocular-model: the same design without lens input), depth_from_focus and
    classical_dfd (classical), and the median_floor and blur_oracle reference rows.
    The estimator's settings are the depth node's: --params-file (default: the shipped
    config/depth.yaml, as `dfd-depth run` and the launch files use) is read as depth_node reads
    it, in the image topic's namespace (/camera/depth_node for /camera/image_raw), and gives
    max_gap_periods, min_depth_m, max_depth_m, min_confidence, and, unless --model, --backend
    or --lens-tolerance-s are given, model_path, backend and lens_tolerance_s. The report and
    the output say which file and values were used.

eval-bags DIR_OF_BAGS_OR_GLOB... --out DIR
    Evaluates every bag (a folder of bag folders, a bag, or a quoted glob such as 'bags/*'),
    each into DIR/<bag name>/, and writes DIR/summary.md and DIR/summary.json: one table per
    bag and overall (frame-weighted). Bags that fail are listed there; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

_GLOB_CHARS = set("*?[")


def register(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("eval-bag", help="score depth against a contract bag's ground truth (metrics.json, report, "
                       "plots)", description=__doc__, formatter_class=fmt)
    p.add_argument("bag", help="bag folder (or a .mcap / .db3 file)")
    _add_options(p)
    p.set_defaults(func=run_eval_bag)
    q = sub.add_parser("eval-bags", help="eval-bag over several bags, with a summary table (per bag and overall)",
                       description=__doc__, formatter_class=fmt)
    q.add_argument("bags", nargs="+", metavar="DIR_OF_BAGS_OR_GLOB",
                   help="folder of bag folders, a bag, or a quoted glob pattern")
    _add_options(q)
    q.add_argument("--scoreboard", metavar="FILE.md", help="also write the benchmark scoreboard (every method and "
                   "reference row per bag, overall, per schedule and motion; one picture per bag into "
                   "img/benchmark/ beside FILE.md)")
    q.add_argument("--scoreboard-intro", metavar="FILE.md", help="markdown to put under the scoreboard's title")
    q.add_argument("--scoreboard-title", default="Benchmark: independent path-traced bags",
                   help="the scoreboard's title (default: %(default)s)")
    q.add_argument("--resume", action="store_true", help="keep the results of bags already evaluated into --out "
                   "(a metrics.json newer than the bag and the model file, from the same methods) and evaluate only "
                   "the others; it trusts modification times, so rerun without it after changing settings; "
                   "implies --force")
    q.set_defaults(func=run_eval_bags)


def _add_options(p) -> None:
    from dfd_depth_ros.backends import BACKEND_NAMES

    p.add_argument("--out", required=True, help="output folder (must not exist or be empty, unless --force)")
    p.add_argument("--force", action="store_true", help="write into a non-empty output folder")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (faster)")
    p.add_argument("--params-file", help="depth node parameters, YAML, whose depth settings the estimator uses "
                   "(default: the shipped config/depth.yaml)")
    m = p.add_argument_group("methods")
    m.add_argument("--model", help="recurrent model (default: model_path of --params-file, else the shipped "
                   "models/dfd_recurrent.onnx)")
    m.add_argument("--backend", choices=BACKEND_NAMES, help="inference backend (default: backend of --params-file, "
                   "auto)")
    m.add_argument("--threads", type=int, help="CPU threads of the backend (default: the library's choice)")
    m.add_argument("--baselines", action="store_true", help="also dfd_single_frame, monocular (where its model "
                   "exists), depth_from_focus, classical_dfd and the reference rows")
    m.add_argument("--single-frame-model", help="single-frame model (default: dfd_single_frame.onnx beside "
                   "the model when there is one, else the model itself; its state is zeroed every frame)")
    m.add_argument("--monocular-model", help="the monocular baseline (default: monocular.onnx beside the model "
                   "when there is one)")
    t = p.add_argument_group("bag topics and lens lookup")
    t.add_argument("--image-topic", default="/camera/image_raw", help="default %(default)s")
    t.add_argument("--camera-info-topic", default="/camera/camera_info", help="default %(default)s")
    t.add_argument("--lens-topic", default="/camera/lens_state", help="JointState, default %(default)s")
    t.add_argument("--depth-gt-topic", default="/camera/depth_gt", help="default %(default)s")
    t.add_argument("--lens-tolerance-s", type=float,
                   help="nearest lens sample allowed this far from an image stamp when none bracket it, s "
                        "(default: lens_tolerance_s of --params-file, as depth_node)")
    t.add_argument("--max-lens-gap-s", type=float, default=1.0,
                   help="interpolate only between lens samples at most this far apart, s (default %(default)s)")


# ----------------------------------------------------------------------------- shared


def _topics(args):
    from dfd_depth_ros.evaluation.bagio import BagTopics

    return BagTopics(image=args.image_topic, camera_info=args.camera_info_topic, lens_state=args.lens_topic,
                     depth_gt=args.depth_gt_topic)


def _node_parameters(args) -> str:
    """Read the depth node's parameters from --params-file into ``args``; returns a note saying what was used.

    Options given on the command line (--model, --backend, --lens-tolerance-s) win over the file;
    args.stream_options gets the DepthStream settings, which have no options of their own.
    """
    import posixpath

    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.nodes.depth_node import NODE_NAME, DepthNodeConfig
    from dfd_depth_ros.nodes.graph import is_valid_namespace
    from dfd_depth_ros.nodes.params import StartupError, config_from_params_file
    from dfd_depth_ros.package_paths import config_file

    params = Path(args.params_file) if args.params_file else config_file("depth.yaml")
    if not params.is_file():
        raise CommandError(f"parameters file {params} does not exist")
    namespace = "/" + posixpath.dirname(args.image_topic).strip("/")  # where the node would run
    if not is_valid_namespace(namespace):  # a bag topic that is no valid ROS name
        namespace = "/"
    try:
        cfg = config_from_params_file(params, DepthNodeConfig, NODE_NAME, namespace)
    except StartupError as exc:
        raise CommandError(str(exc)) from None
    given = [o for o, v in (("--model", args.model), ("--backend", args.backend),
                            ("--lens-tolerance-s", args.lens_tolerance_s)) if v is not None]
    if args.model is None and cfg.model_path:
        args.model = cfg.model_path
    args.backend = args.backend or cfg.backend
    if args.lens_tolerance_s is None:
        args.lens_tolerance_s = cfg.lens_tolerance_s
    args.stream_options = cfg.stream_options()
    used = {**args.stream_options, "lens_tolerance_s": args.lens_tolerance_s}
    return (f"depth settings from {params} ({posixpath.join(namespace, NODE_NAME)}): "
            + ", ".join(f"{k} {v:g}" for k, v in used.items())
            + (f"; {', '.join(given)} from the command line" if given else ""))


def _check_numbers(args) -> None:
    from dfd_depth_ros.cli import CommandError

    if not args.lens_tolerance_s >= 0 or not args.max_lens_gap_s >= 0:
        raise CommandError("--lens-tolerance-s and --max-lens-gap-s must be >= 0")
    if args.threads is not None and args.threads < 1:
        raise CommandError("--threads must be >= 1")


def _check_out(out: Path, force: bool, bags: list[Path]) -> None:
    """Refuse an output folder that is a file, non-empty (without --force) or inside an input bag."""
    from dfd_depth_ros.cli import CommandError

    if out.exists() and not out.is_dir():
        raise CommandError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise CommandError(f"{out} is not empty (use --force to write into it)")
    resolved = out.resolve()
    for bag in bags:
        bag = bag.resolve()
        folder = bag if bag.is_dir() else bag.parent if (bag.parent / "metadata.yaml").is_file() else None
        if folder is not None and (resolved == folder or folder in resolved.parents):
            raise CommandError(f"--out {out} is inside the bag {bag}; input bags are never written to")


def _methods(args):
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.evaluation.evaluate import EvalError, MethodOptions, build_methods

    options = MethodOptions(model=Path(args.model) if args.model else None, backend=args.backend,
                            threads=args.threads, baselines=args.baselines,
                            single_frame_model=Path(args.single_frame_model) if args.single_frame_model else None,
                            monocular_model=Path(args.monocular_model) if args.monocular_model else None,
                            stream_options=args.stream_options)
    try:
        methods, notes = build_methods(options)
    except EvalError as exc:
        raise CommandError(str(exc)) from None
    return methods, [args.params_note, *notes]


def _evaluate(bag: Path, methods, notes: list[str], args):
    """One bag -> BagEvaluation; BagError / EvalError pass through."""
    from dfd_depth_ros.evaluation.evaluate import evaluate_bag

    result = evaluate_bag(bag, methods, _topics(args), args.lens_tolerance_s, args.max_lens_gap_s, progress=True)
    result.notes.extend(notes)
    return result


def _short_table(doc: dict) -> str:
    keys = ("abs_rel", "rmse", "delta1", "flicker", "missing", "ms_per_frame", "frames")
    width = max(len(n) for n in doc["methods"]) + 2
    lines = ["".ljust(width) + "".join(k.rjust(13) for k in keys)]
    for name, m in doc["methods"].items():
        cells = ["–" if m[k] is None else (str(m[k]) if k == "frames" else f"{m[k]:.4f}") for k in keys]
        lines.append(name.ljust(width) + "".join(c.rjust(13) for c in cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- eval-bag


def run_eval_bag(args) -> int:
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.evaluation.bagio import BagError
    from dfd_depth_ros.evaluation.evaluate import EvalError, check_bag_path
    from dfd_depth_ros.evaluation.report import write_bag_outputs

    args.params_note = _node_parameters(args)
    _check_numbers(args)
    try:
        bag = check_bag_path(args.bag)
    except BagError as exc:
        raise CommandError(str(exc)) from None
    out = Path(args.out)
    _check_out(out, args.force, [bag])
    methods, notes = _methods(args)
    try:
        result = _evaluate(bag, methods, notes, args)
    except (BagError, EvalError) as exc:
        raise CommandError(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    written = write_bag_outputs(result, out, plots=not args.no_plots, lens_tolerance_s=args.lens_tolerance_s)
    doc = result.metrics_json()
    print(f"{result.name}: {doc['frames']} frames scored of {result.image_messages} image messages")
    print(_short_table(doc))
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


# ----------------------------------------------------------------------------- eval-bags


def find_bags(specs: list[str]) -> list[Path]:
    """Bags named by ``specs``: a bag, a folder of bags, or a glob pattern; in order, without repeats."""
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.evaluation.bagio import BagError
    from dfd_depth_ros.evaluation.evaluate import check_bag_path

    def is_bag(p: Path) -> bool:
        try:
            check_bag_path(p)
            return True
        except BagError:
            return False

    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.exists():
            bags = [path] if is_bag(path) else sorted(c for c in path.iterdir() if is_bag(c)) if path.is_dir() else []
            if not bags:
                raise CommandError(f"{spec} is not a bag and holds no bag folders")
        elif _GLOB_CHARS & set(spec):
            bags = [Path(m) for m in sorted(glob.glob(spec)) if is_bag(Path(m))]
            if not bags:
                raise CommandError(f"no bag matches {spec!r}")
        else:
            raise CommandError(f"{spec}: no such file or folder")
        found += [b for b in bags if b.resolve() not in {f.resolve() for f in found}]
    return found


def _folder_names(bags: list[Path]) -> list[str]:
    """One output sub-folder name per bag: the bag's name, made unique with _2, _3, ..."""
    from dfd_depth_ros.evaluation.evaluate import bag_name

    names: list[str] = []
    for bag in bags:
        base = bag_name(bag)
        name, k = base, 2
        while name in names or name in ("summary.md", "summary.json"):
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def run_eval_bags(args) -> int:
    import sys

    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.evaluation.bagio import BagError
    from dfd_depth_ros.evaluation.evaluate import EvalError
    from dfd_depth_ros.evaluation.report import write_bag_outputs, write_summary

    args.params_note = _node_parameters(args)
    _check_numbers(args)
    bags = find_bags(args.bags)
    out = Path(args.out)
    _check_out(out, args.force or args.resume, bags)
    methods, notes = _methods(args)
    entries, failures, strips = [], [], {}
    for i, (bag, folder) in enumerate(zip(bags, _folder_names(bags)), 1):
        picture = Path(args.scoreboard).parent / _strip_rel(folder) if args.scoreboard else None
        done = _done_before(out / folder, bag, methods) if args.resume else None
        if done is not None and picture is not None and not picture.is_file():
            done = None  # its picture for the scoreboard was never drawn: evaluate it again
        if done is not None:
            entries.append((folder, done))
            if args.scoreboard:
                strips[done["bag"]] = _strip_rel(folder).as_posix()
            print(f"[{i}/{len(bags)}] {bag}: kept {out / folder / 'metrics.json'}")
            continue
        try:
            result = _evaluate(bag, methods, notes, args)
        except (BagError, EvalError) as exc:
            failures.append((str(bag), str(exc)))
            print(f"[{i}/{len(bags)}] {bag}: FAILED: {exc}", file=sys.stderr)
            continue
        (out / folder).mkdir(parents=True, exist_ok=True)
        write_bag_outputs(result, out / folder, plots=not args.no_plots, lens_tolerance_s=args.lens_tolerance_s)
        entries.append((folder, result.metrics_json()))
        if args.scoreboard:
            strips[result.name] = _scoreboard_strip(result, Path(args.scoreboard), folder)
        print(f"[{i}/{len(bags)}] {bag}: {result.scored_frames} frames -> {out / folder}")
    out.mkdir(parents=True, exist_ok=True)
    summary = write_summary(entries, failures, out)
    if not entries:
        raise CommandError(f"no bag could be evaluated; {failures[0][0]}: {failures[0][1]}")
    print(f"overall ({summary['overall']['bags']} bags, frame-weighted):")
    print(_short_table(summary["overall"]))
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {out / 'summary.md'}, {out / 'summary.json'}")
    if args.scoreboard:
        _write_scoreboard(args, [doc for _, doc in entries], strips, failures)
    if failures:
        print(f"{len(failures)} of {len(bags)} bags failed; see {out / 'summary.md'}", file=sys.stderr)
        return 1
    return 0


def _done_before(folder: Path, bag: Path, methods) -> dict | None:
    """The metrics.json of an earlier run of the same methods, when it is newer than the bag and every model file."""
    import json

    path = folder / "metrics.json"
    if not path.is_file():
        return None
    inputs = [bag] if bag.is_file() else [p for p in bag.rglob("*") if p.is_file()]
    inputs += [Path(m.backend.model_path) for m in methods if getattr(m, "backend", None) is not None]
    if any(p.stat().st_mtime >= path.stat().st_mtime for p in inputs):
        return None
    doc = json.loads(path.read_text())
    names = [m.name for m in methods if not m.reference]
    return doc if list(doc.get("methods", {})) == names else None


def _strip_rel(folder: str) -> Path:
    """A bag's picture for the scoreboard, relative to the scoreboard page."""
    return Path("img") / "benchmark" / f"{folder}.png"


def _scoreboard_strip(result, page: Path, folder: str) -> str:
    """Draw one bag's picture beside the scoreboard page; returns its path relative to the page."""
    from dfd_depth_ros.evaluation.report import plot_frame_strip

    rel = _strip_rel(folder)
    (page.parent / rel.parent).mkdir(parents=True, exist_ok=True)
    if result.strip:
        plot_frame_strip(result, page.parent / rel)
    return rel.as_posix()


def _write_scoreboard(args, docs: list[dict], strips: dict[str, str], failures) -> None:
    import shlex
    import sys

    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.evaluation.scoreboard import scoreboard_markdown

    intro = []
    if args.scoreboard_intro:
        try:
            intro = Path(args.scoreboard_intro).read_text().rstrip().splitlines()
        except OSError as exc:
            raise CommandError(f"cannot read --scoreboard-intro {args.scoreboard_intro}: {exc}") from None
    command = "dfd-depth " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "dfd-depth eval-bags"
    intro += ["", f"Written by `{command}`.", "", *(f"- {n}" for n in [args.params_note] if n)]
    page = Path(args.scoreboard)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(scoreboard_markdown(docs, strips, title=args.scoreboard_title, intro=intro, failures=failures))
    print(f"wrote {page}")

