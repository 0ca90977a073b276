"""RFC 5235 ``spamtest``/``spamtestplus``/``virustest``: a score from configurable header fields.

Configured like Pigeonhole (and so through the same keys in the conformance harness):
``<test>_status_header`` is ``Header-Name[:regex]`` (the regex's first group is the value),
``<test>_status_type`` is ``score`` (a number against ``score_max_header``/``score_max_value``),
``strlen`` (the length of the value, e.g. ``*****``) or ``text`` (``text_value/N`` names the value of
level N). A message without the header is "not tested" (0).
"""

from __future__ import annotations

import re

from .compiler import Extension, Op, Spec, TagSpec
from .interpreter import Interpreter


def _header_value(interp: Interpreter, spec: str) -> str | None:
    name, sep, pattern = spec.partition(":")
    values = interp.message.values(name.strip())
    if not values:
        return None
    value = values[0]
    if not sep:
        return value.strip()
    try:
        match = re.search(pattern.strip(), value)
    except re.error:
        return None
    if match is None:
        return None
    return match.group(1) if match.groups() else match.group(0)


def _fraction(interp: Interpreter, prefix: str, levels: int) -> float | int | None:
    """The score as a fraction 0..1 (float), an exact level (int), or None (not tested/unusable)."""
    config = interp.runtime.config
    header = config(f"{prefix}_status_header")
    if not header:
        return None
    value = _header_value(interp, header)
    if value is None:
        return None
    kind = (config(f"{prefix}_status_type") or "score").strip()
    if kind == "text":
        for level in range(levels + 1):
            text = config(f"{prefix}_text_value/{level}")
            if text is not None and text.strip() == value.strip():
                return level
        return None
    max_value: float | None = None
    max_header = config(f"{prefix}_score_max_header")
    if max_header:
        found = _header_value(interp, max_header)
        try:
            max_value = float(found) if found is not None else None
        except ValueError:
            max_value = None
    if max_value is None:
        try:
            max_value = float(config(f"{prefix}_score_max_value") or "0")
        except ValueError:
            return None
    if max_value <= 0:
        return None
    if kind == "strlen":
        score = float(len(value.strip()))
    else:
        try:
            score = float(value.strip())
        except ValueError:
            return None
    return min(max(score / max_value, 0.0), 1.0)


async def run_spamtest(interp: Interpreter, op: Op) -> bool:
    """``spamtest [:percent] value``: 0 not tested, 1..10 (or 0..100 with :percent)."""
    fraction = _fraction(interp, "sieve_spamtest", 10)
    if "percent" in op.tags:
        if fraction is None:
            result = "0"
        elif isinstance(fraction, int):
            result = str(round((fraction - 1) * 100 / 9)) if fraction else "0"
        else:
            result = str(round(fraction * 100))
    elif fraction is None:
        result = "0"
    elif isinstance(fraction, int):
        result = str(fraction)
    else:
        result = str(1 + int(fraction * 9))
    return interp.match(op, [result], [op.args[0]])


async def run_virustest(interp: Interpreter, op: Op) -> bool:
    """``virustest value``: 0 not tested, 1 clean .. 5 infected."""
    fraction = _fraction(interp, "sieve_virustest", 5)
    if fraction is None:
        result = "0"
    elif isinstance(fraction, int):
        result = str(fraction)
    else:
        result = str(1 + round(fraction * 4))
    return interp.match(op, [result], [op.args[0]])


def extensions() -> list[Extension]:
    """``spamtest``, ``spamtestplus`` and ``virustest``."""
    from .commands import COMPARATOR, MATCH, check_match, tags

    match = tags(COMPARATOR, MATCH)
    return [
        Extension("spamtest", (Spec("spamtest", "test", "spamtest", run_spamtest, ("string",),
                                    tags(match, {"percent": TagSpec("percent", None, "spamtestplus")}),
                                    check=check_match),)),
        Extension("spamtestplus", implies=("spamtest",)),
        Extension("virustest", (Spec("virustest", "test", "virustest", run_virustest, ("string",), match,
                                     check=check_match),)),
    ]
