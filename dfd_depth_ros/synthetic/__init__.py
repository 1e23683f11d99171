"""The synthetic camera: seeded scenes, camera motion, focus schedules and lenses, ray-cast and defocused.

Used at run time by the synthetic_camera node and the demo, and offline by training/ (which imports it,
never the other way round). Needs torch; the bundled textures use scikit-image when it is installed.
"""
