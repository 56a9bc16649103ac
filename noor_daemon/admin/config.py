"""/admin/v1/config: reload the config file without a restart."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.errors import AdminError
from noor_daemon.config import ConfigError
from noor_daemon.reload import reload_config
from noor_daemon.secret_store import SecretError
from noor_daemon.state import SETTINGS

routes = web.RouteTableDef()


@routes.post("/config/reload")
async def reload(request: web.Request) -> web.Response:
    try:
        warnings = await reload_config(request.config_dict)
    except (ConfigError, SecretError) as exc:
        raise AdminError(400, "config_invalid", f"The config was not reloaded; the previous one keeps serving.\n{exc}") from None
    path = request.config_dict[SETTINGS].config.path
    return web.json_response({"reloaded": True, "config": str(path) if path else None, "warnings": warnings})
