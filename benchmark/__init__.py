"""An independent, path-traced evaluation set for dfd_depth_ros (nothing trains on it).

Mitsuba 3 renders each sequence through a physically based thin lens (``thinlens`` sensor);
ground truth is the pinhole z-depth through the pixel centres at the same pose. Only the
optics formula (``dfd_depth_ros.optics``), the frame structures (``dfd_depth_ros.frames``) and
the bag writer (``dfd_depth_ros.evaluation.bagio``) are shared with the project: scenes,
textures, trajectories, focus schedules, noise and renderer are the benchmark's own.

Modules: ``textures`` (procedural reflectance), ``scenes`` (seeded scene -> Mitsuba dict),
``camera`` (motions, focus schedules, lens helpers), ``sensor`` (shot/read noise, 8-bit sRGB),
``render`` (Mitsuba thin lens + pinhole ground truth), ``sequences`` (the set),
``generate`` (one sequence, frame cache), ``build`` (CLI, bags, manifest).

    python -m benchmark.build --out data/benchmark      # renders what is missing

Cost on the project's 2-core machine (Mitsuba scalar_rgb, 64 spp, box filter, path depth 3):
1.9 s per 288x216 frame, 3.2-3.3 s for 320x240 or enclosed (corridor) scenes with both cores
free; the ground truth costs about 0.07 s per frame.
"""
