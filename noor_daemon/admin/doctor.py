"""/admin/v1/doctor: what `noor doctor` reports, as the running daemon sees it, for the dashboard's Doctor panel.

The config it serves (and from which file), where its data and ledger live, the keyring and the
`[secrets]` backend, where the admin token came from, how limits are counted, TLS, billing, mail and
retention. Paths and names only: never a secret, never an account.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from noor_daemon import __version__, paths
from noor_daemon.secret_store import active_backend, keyring_backend_name, keyring_usable
from noor_daemon.state import LEDGER, LIMITER, OUTBOX, SETTINGS

routes = web.RouteTableDef()


def _storage(url: str) -> str:
    """A PostgreSQL URL without its password."""
    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}{f':{parts.port}' if parts.port else ''}{parts.path}"
    return f"postgresql://{parts.username + '@' if parts.username else ''}{where}"


@routes.get("/doctor")
async def doctor(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS]
    config, path = settings.config.config, settings.config.path
    ledger = request.config_dict[LEDGER]
    shared = request.config_dict[LIMITER].shared
    backend = active_backend()
    usable = getattr(backend, "usable", lambda: True)()
    outbox = request.config_dict[OUTBOX]
    mail_kind = outbox.sender.kind
    return web.json_response(
        {
            "version": __version__,
            "config": {
                "path": str(path) if path else None,
                "simulator_only": config.simulator_only,
                "providers": len(config.providers),
                "models": len(config.models),
            },
            "data_dir": str(settings.data_dir),
            "ledger": {
                "engine": ledger.engine,
                "where": _storage(config.storage.url) if config.storage.url else str(paths.database_file(settings.data_dir)),
                "healthy": ledger.healthy,
            },
            "keyring": {"backend": keyring_backend_name(), "usable": keyring_usable()},
            "secrets": {"backend": backend.kind, "where": backend.describe(), "usable": usable},
            "admin_token": {"source": settings.admin_token_source},
            "limits": "local" if shared is None else shared.link.mode,
            "server": {"tls": bool(config.server.tls_cert), "admin_remote": config.server.admin_remote},
            "billing": {"configured": config.billing is not None},
            "mail": {"delivery": mail_kind, "where": config.smtp.host if config.smtp is not None else "a Maildir in the data dir"},
            "retention": {"usage_days": config.retention.usage_days},
        }
    )
