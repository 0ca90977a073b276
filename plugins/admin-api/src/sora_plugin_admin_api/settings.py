"""The ``[admin_api]`` configuration section, declared once (the kernel's SectionSettings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sora_kernel.api import SectionSettings, setting

MIN_SECRET = 32
"""Shortest ``jwt_secret`` the user API accepts."""


@dataclass(frozen=True, slots=True)
class AdminApiSettings(SectionSettings):
    """The ``[admin_api]`` values, read once when the service starts."""

    SECTION: ClassVar[str] = "admin_api"
    HELP: ClassVar[str] = "HTTP admin API (/admin, bearer API key, OpenAPI at /admin/openapi.json)."

    addr: str = setting("addr", "127.0.0.1:8280", "Listener of the admin API; empty disables it.")
    api_key: str = setting("str", "", "Bearer API key every request must send; empty keeps the API off.",
                           secret=True)
    allowed_hosts: tuple[str, ...] = setting(
        "list", [], "Client addresses or CIDRs allowed to call the API (peer address); empty allows any.")
    tls: bool = setting("bool", False, "Serve HTTPS with the kernel's certificate ([tls]).")
    max_body_size: int = setting("size", "50mb", "Largest request body accepted (POST /admin/mail/deliver).",
                                 minimum=1024)
    max_page_size: int = setting("int", 1000, "Largest page of a listing (limit=...).", minimum=1)
    user_api: bool = setting("bool", False, "Also serve the user API under /user (JWT logins of mail users).")
    jwt_secret: str = setting("str", "", "HS256 secret of the user API's tokens (at least 32 characters).",
                              secret=True)
    token_duration: float = setting("duration", "24h", "Lifetime of a user API token (at most 7 days).",
                                    minimum=60.0)
    token_issuer: str = setting("str", "sora", "The iss claim of user API tokens.")
    docs: bool = setting("bool", True, "Serve the interactive docs at /admin/docs (the OpenAPI document is "
                         "always at /admin/openapi.json).")
