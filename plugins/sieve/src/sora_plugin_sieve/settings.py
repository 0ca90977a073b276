"""The ``[sieve]`` configuration section, declared once (the kernel's SectionSettings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sora_kernel.api import SectionSettings, setting

DEFAULT_BEFORE_SCRIPT = """\
require ["fileinto", "mailbox", "envelope", "subaddress", "variables"];
# Sora's default global script: spam to Junk, address+detail to the folder "detail" (created).
if header :is "X-Spam" "Yes" {
    fileinto :create "Junk";
    stop;
}
if envelope :detail :matches "to" "?*" {
    fileinto :create "${0}";
}
"""


@dataclass(frozen=True, slots=True)
class SieveSettings(SectionSettings):
    """The ``[sieve]`` values, read once at start-up."""

    SECTION: ClassVar[str] = "sieve"
    HELP: ClassVar[str] = "Sieve filtering at delivery (RFC 5228 and extensions)."

    enabled: bool = setting("bool", True, "Run Sieve scripts at delivery.")
    before_script: str = setting(
        "str", "default",
        "Global script run before the user's: a file path, 'default' (X-Spam: Yes to Junk, +detail to "
        "that folder, created) or '' for none.")
    after_script: str = setting("str", "", "Global script run after the user's (a file path; '' for none).")
    global_dir: str = setting("str", "", "Folder of global scripts for 'include :global' (NAME.sieve).")
    max_cpu_time: float = setting("duration", "2s", "CPU time a script may use per delivery.", minimum=0.01)
    max_actions: int = setting("int", 32, "Actions one script run may produce.", minimum=1)
    max_redirects: int = setting("int", 4, "Redirects per script run.", minimum=0)
    max_redirects_per_hour: int = setting(
        "int", 60, "Redirects per account and hour (per worker process); 0 = no limit.")
    max_variable_size: int = setting("int", 4000, "Largest value of a Sieve variable, in octets.", minimum=64)
    max_string_size: int = setting("size", "64kb", "Largest expanded string.", minimum=1024)
    max_include_depth: int = setting("int", 10, "Nesting depth of include.", minimum=1)
    max_regex_input: int = setting("size", "64kb", "Longest value a :regex match looks at.", minimum=1024)
    vacation_min_period: float = setting("duration", "1d", "Shortest vacation period (:days/:seconds).")
    vacation_max_period: float = setting("duration", "90d", "Longest vacation period.")
    redirect_envelope_from: str = setting(
        "str", "sender", "Envelope sender of redirects: sender, recipient, orig_recipient, <> or <address>.")
    recipient_delimiter: str = setting("str", "+", "Separator of user and detail (subaddress).")
    spamtest_status_header: str = setting(
        "str", "X-Spam-Score", "spamtest: 'Header[:regex]' holding the score (the regex's first group).")
    spamtest_status_type: str = setting("str", "score", "spamtest: score, strlen or text.",
                                        choices=("score", "strlen", "text"))
    spamtest_score_max_value: float = setting("float", 10.0, "spamtest: the score that means 'certainly spam'.")
    spamtest_score_max_header: str = setting("str", "", "spamtest: 'Header[:regex]' with the maximum score.")
    virustest_status_header: str = setting("str", "", "virustest: 'Header[:regex]' with the verdict; '' is off.")
    virustest_status_type: str = setting("str", "score", "virustest: score, strlen or text.",
                                         choices=("score", "strlen", "text"))
    virustest_score_max_value: float = setting("float", 5.0, "virustest: the score that means 'infected'.")
