"""The depth-range grammar of ``gdepth sweep depth=...``.

Hydra's override grammar has arithmetic ``range(a, b, step)`` but no geometric range, and it
silently accepts ``2..64`` as the *string* ``'2..64'`` (one job). Depth sweeps in the literature
double (2, 4, 8, …, 64), so the CLI expands this small grammar into a plain comma list before
Hydra sees the argument:

=================  ======================================  ==========================
form               meaning                                 example → depths
=================  ======================================  ==========================
``A..B``           doubling from A to B, both included      ``2..64`` → 2,4,8,16,32,64
``A..B:xF``        multiply by F from A to B                ``2..32:x4`` → 2,8,32
``A..B:+S``        add S from A to B                        ``2..12:+2`` → 2,4,…,12
``A,B,C``          an explicit list                         ``2,4,8``
``A``              one depth                                ``16``
=================  ======================================  ==========================

The upper end must be reached exactly (``3..64`` is rejected: 64 is not 3 times a power of
two), depths are integers ≥ 1, and ranges go upwards.
"""

from __future__ import annotations

import re

FORMS = "2..64 (doubling), 2..32:x4 (factor), 2..12:+2 (step), 2,4,8 (list), 16 (one depth)"

_RANGE = re.compile(r"^(\d+)\.\.(\d+)(?::([x+])(\d+))?$")
_LIST = re.compile(r"^\d+(,\d+)*$")


class DepthError(ValueError):
    """A depth specification that the grammar rejects; the message is one line."""

    def __init__(self, spec: str, reason: str) -> None:
        super().__init__(f"invalid depth '{spec}': {reason}; accepted forms: {FORMS}")


def parse_depths(spec: str) -> list[int]:
    """Expand a depth specification into the list of depths it names.

    >>> parse_depths("2..64")
    [2, 4, 8, 16, 32, 64]
    >>> parse_depths("2..12:+4")
    [2, 6, 10]
    """
    text = str(spec).strip().replace(" ", "")
    match = _RANGE.match(text)
    if match:
        return _expand_range(text, match)
    if _LIST.match(text):
        depths = [int(v) for v in text.split(",")]
        if min(depths) < 1:
            raise DepthError(text, "depths must be integers >= 1")
        if len(set(depths)) != len(depths):
            raise DepthError(text, "a depth is listed twice")
        return depths
    raise DepthError(text, "not a depth, a list of depths or a range")


def _expand_range(text: str, match: re.Match[str]) -> list[int]:
    lo, hi = int(match.group(1)), int(match.group(2))
    op, num = match.group(3) or "x", int(match.group(4) or 2)
    if lo < 1:
        raise DepthError(text, "depths must be integers >= 1")
    if hi < lo:
        raise DepthError(text, f"the range goes downwards ({lo} > {hi}); write {hi}..{lo}")
    if op == "x":
        if num < 2:
            raise DepthError(text, f"the factor must be >= 2, got x{num}")
        depths = [lo]
        while depths[-1] < hi:
            depths.append(depths[-1] * num)
        if depths[-1] != hi:
            raise DepthError(text, f"the upper end {hi} is not {lo} times a power of {num}")
        return depths
    if num < 1:
        raise DepthError(text, f"the step must be >= 1, got +{num}")
    if (hi - lo) % num:
        raise DepthError(text, f"the upper end {hi} is not {lo} plus a multiple of {num}")
    return list(range(lo, hi + 1, num))
