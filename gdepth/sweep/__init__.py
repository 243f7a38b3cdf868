"""Everything about a sweep folder: its layout, plan, records, seed-job parts, status markers,
checkpoints, launchers, the resuming sweeper, Hydra callbacks and progress.

Submodules are imported by name (``from gdepth.sweep import records``); this package imports
none of them, so importing one does not pull in the others (the CLI starts fast and there is
no import cycle).
"""
