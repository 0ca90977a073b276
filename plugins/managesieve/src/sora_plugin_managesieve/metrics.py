"""ManageSieve metrics, registered once per kernel in the kernel's own registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices


class ManageSieveMetrics:
    """Counters the ManageSieve sessions of one kernel share (both listeners use the same object)."""

    def __init__(self, kernel: KernelServices) -> None:
        registry = kernel.registry
        self.uploaded = Counter(
            "sora_managesieve_scripts_uploaded", "Scripts stored by PUTSCRIPT", registry=registry)
        self.activated = Counter(
            "sora_managesieve_scripts_activated", "Scripts made active by SETACTIVE", registry=registry)
        self.checks = Counter(
            "sora_managesieve_script_checks", "Scripts compiled by PUTSCRIPT and CHECKSCRIPT, by result",
            ["result"], registry=registry)
        self.refused_literals = Counter(
            "sora_managesieve_refused_literals", "Literals refused before being read, by reason",
            ["reason"], registry=registry)
