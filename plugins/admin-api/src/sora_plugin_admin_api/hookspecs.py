"""The admin API's own hook: how other plugins add routes (declared through ``sora_addhooks``).

Implement it like any Sora hook (``@hookimpl`` from :mod:`sora_kernel.api`); it is asked once per
worker when the admin API starts. The routes sit behind the same API key, host list, size limit,
request log and metrics as the built-in ones and appear in the OpenAPI document. The plugin's
README documents it with an example.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sora_kernel.api import hookspec

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices


@hookspec
def sora_admin_api_routes(kernel: KernelServices) -> list[Any] | None:
    """Return FastAPI ``APIRouter`` objects to mount under ``/admin`` (paths relative to it). Sync.

    A route's handler raises ``fastapi.HTTPException`` or the kernel's ``SoraError`` family for a
    JSON error ``{"error": "..."}`` (NotFound 404, AlreadyExists 409, InvalidName 400...).
    """
