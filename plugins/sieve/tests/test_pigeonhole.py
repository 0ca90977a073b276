"""Pigeonhole's own test suite through the product interpreter (see ``sieve_testsuite``).

Every ``.svtest`` whose requirements the engine lists in ``capabilities()`` must pass, and every file
of a listed extension's folder must run (or appear in ``NOT_RUN`` with its reason). The suite lives
outside the repository (``SORA_PIGEONHOLE_DIR``, else ``../shared/pigeonhole-tests``): when it is
missing the test fails, it is never skipped.
"""

from __future__ import annotations

import pytest
from sieve_testsuite import TESTSUITE, all_files, corpus_dir, file_needs, run_file
from sora_plugin_sieve.api import capabilities

ROOT = corpus_dir()
ALLOWED = {*capabilities(), TESTSUITE, "vnd.dovecot.debug", "comparator-i;octet", "comparator-i;ascii-casemap"}

NOT_RUN: dict[str, str] = {
    "extensions/include/execute.svtest": "its 'Namespace - dict' test configures Pigeonhole's dict script storage "
                                         "driver (Dovecot storage; Sora keeps scripts in PostgreSQL)",
    "extensions/environment/basic.svtest": "its 'Name' test asserts the implementation is called 'Pigeonhole "
                                           "Sieve' (Sora's environment says 'Sora Sieve')",
    "compile/errors.svtest": "counts the errors left after lexer and parser error recovery; Sora's parser "
                             "stops at the first syntax error (every semantic error is reported)",
    "compile/recover.svtest": "same: parser error recovery (missing semicolons, spurious commas)",
    "multiscript/conflicts.svtest": "Pigeonhole's graceful conflicts between already executed results of "
                                    "several scripts (a reject after a stored copy) are not modeled: Sora runs "
                                    "the global and the user's scripts as one result",
    "execute/examples.svtest": "compiles ../../examples/*.sieve of the Pigeonhole tree, not part of the corpus",
    "execute/errors-cpu-limit.svtest": "needs Pigeonhole's sieve_max_cpu_time setting to slow a regex; "
                                       "the CPU limit is tested in test_limits.py",
}

EXTENSION_DIRS = {"spamtest": "spamvirustest", "spamtestplus": "spamvirustest", "virustest": "spamvirustest",
                  "vacation-seconds": "vacation", "ereject": "reject", "foreverypart": "mime", "extracttext": "mime"}


def _runnable() -> list[str]:
    if not ROOT.is_dir():
        return []
    out = []
    for path in all_files(ROOT):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("plugins/") or rel in NOT_RUN:
            continue
        if file_needs(ROOT, path) <= ALLOWED:
            out.append(rel)
    return out


RUNNABLE = _runnable()


def test_corpus_is_present() -> None:
    assert ROOT.is_dir(), f"Pigeonhole test suite missing at {ROOT} (set SORA_PIGEONHOLE_DIR)"
    assert len(RUNNABLE) > 10


@pytest.mark.parametrize("rel", RUNNABLE)
def test_svtest(rel: str) -> None:
    result = run_file(ROOT / rel)
    if rel.startswith("failures/"):
        # scripts that once crashed Pigeonhole (fuzzed, bad UTF-8): they must be handled (a compile
        # error, a failed test) without crashing the interpreter; run_file returning is the check
        assert result.error or result.passed or result.failures
        return
    assert not result.error, result.error
    assert not result.failures, result.failures
    assert result.passed


def test_every_file_of_a_listed_extension_runs() -> None:
    assert ROOT.is_dir(), f"Pigeonhole test suite missing at {ROOT}"
    missing = []
    for name in capabilities():
        folder = ROOT / "extensions" / EXTENSION_DIRS.get(name, name)
        files = sorted(folder.rglob("*.svtest")) if folder.is_dir() else []
        single = ROOT / "extensions" / f"{name}.svtest"
        if single.exists():
            files.append(single)
        for path in files:
            rel = path.relative_to(ROOT).as_posix()
            if rel not in RUNNABLE and rel not in NOT_RUN:
                missing.append((rel, sorted(file_needs(ROOT, path) - ALLOWED)))
    assert not missing, missing


