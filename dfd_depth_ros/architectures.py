"""Which network class a model config describes: one place for the torch backend, export and training.

    net = build_model(model_config)   # untrained; load the weights strictly afterwards

"architecture" in the config picks the class: "dfd_focus_volume" (focus_volume_network.FocusVolumeNet, the
shipped design), "dfd_volume" (volume_network.VolumeNet, the learned-likelihood prototype); a config
without the key is the first design, network.DfDNet.
"""

from __future__ import annotations

import torch


def build_model(model_config: dict) -> torch.nn.Module:
    """The network a model config dict describes (ValueError / TypeError for a bad config)."""
    arch = model_config.get("architecture")
    if arch == "dfd_focus_volume":
        from dfd_depth_ros.focus_volume_network import FocusVolumeConfig, FocusVolumeNet

        return FocusVolumeNet(FocusVolumeConfig.from_dict(model_config))
    if arch == "dfd_volume":
        from dfd_depth_ros.volume_network import VolumeConfig, VolumeNet

        return VolumeNet(VolumeConfig.from_dict(model_config))
    if arch is not None:
        raise ValueError(f"unknown architecture {arch!r}")
    from dfd_depth_ros.network import DfDNet, ModelConfig

    return DfDNet(ModelConfig.from_dict(model_config))
