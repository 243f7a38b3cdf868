"""Diagnostics: graph structure (:mod:`.structure`) and per-layer measures of depth pathologies.

Submodules are imported explicitly (``from gdepth.diagnostics import structure``); importing the
package itself loads nothing heavy.
"""
