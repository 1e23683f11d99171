"""The synthetic camera: seeded scenes, camera motion, focus schedules and lenses, ray-cast and defocused.

Used at run time by the synthetic_camera node and the demo, and offline by training/ (which imports it,
never the other way round). Needs torch; the bundled textures use scikit-image when it is installed.
"""

# The focus schedules the generator (and the benchmark) know; trajectories.focus_schedule implements each.
SCHEDULES = ("fixed", "sweep", "focal_stack", "rack", "af_hunt")
MOTIONS = ("static", "smooth")
