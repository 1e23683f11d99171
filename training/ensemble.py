"""Join independently trained readouts of the focus-volume model into one ensemble checkpoint.

    python -m training.ensemble --members runs/fv_none_s0/last.pt runs/fv_none_s1/last.pt runs/fv_none_s2/last.pt \
        --out runs/fv_ens3/last.pt
    python -m training.export --checkpoint runs/fv_ens3/last.pt --out out/fv_ens3/dfd_recurrent.onnx --fixed-focus-gate

Runs of the readout recipe that differ only by their seed land 0.03-0.06 abs_rel apart on the path-traced bags,
more than any of them gains over the physics (README, "What limits it"). The ensemble (FocusVolumeConfig.ensemble)
averages the members' residual inverse depths and confidence logits over the same parameter-free evidence: one
graph, the readout's cost times the number of members. Members must share the layout (width, top_width, the
frame they read) and the evidence (grid, decay); the output is a checkpoint ``training.export`` takes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dfd_depth_ros.architectures import build_model

# what members may differ in: names and everything about how they were trained, not what the graph computes
_FREE_KEYS = ("name", "flow_input", "fixed_focus_gate")


def join(members: list[dict]) -> dict:
    """Member checkpoints (``runs/<name>/last.pt`` dicts) -> one checkpoint of an ensemble of their readouts."""
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    cfgs = [dict(m["model_config"]) for m in members]
    first = {k: v for k, v in cfgs[0].items() if k not in _FREE_KEYS}
    for i, cfg in enumerate(cfgs[1:], 2):
        if cfg.get("ensemble", 1) != 1 or cfgs[0].get("ensemble", 1) != 1:
            raise ValueError("members must be single readouts")
        other = {k: v for k, v in cfg.items() if k not in _FREE_KEYS}
        if other != first:
            diff = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
            raise ValueError(f"member {i} differs from member 1 in {', '.join(diff)}")
    cfg = dict(cfgs[0], ensemble=len(members))
    net = build_model(cfg)
    state = {}
    for i, m in enumerate(members):
        prefix = "readout." if i == 0 else f"extra_readouts.{i - 1}."
        state.update({prefix + k[len("readout."):]: v for k, v in m["model"].items() if k.startswith("readout.")})
    state.update({k: v for k, v in members[0]["model"].items() if not k.startswith("readout.")})
    net.load_state_dict(state, strict=True)
    train = dict(members[0].get("train_config", {}))
    train["ensemble_of"] = [m.get("train_config", {}).get("name", "?") for m in members]
    return {"model": net.state_dict(), "model_config": cfg, "iter": members[0].get("iter"), "train_config": train,
            "data": members[0].get("data", {})}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", nargs="+", required=True, help="training checkpoints (runs/<name>/last.pt)")
    ap.add_argument("--out", required=True, help="the ensemble checkpoint to write (e.g. runs/fv_ens3/last.pt)")
    a = ap.parse_args(argv)
    ckpt = join([torch.load(p, map_location="cpu", weights_only=False) for p in a.members])
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    print(f"wrote {out}: an ensemble of {len(a.members)} readouts ({', '.join(ckpt['train_config']['ensemble_of'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
