"""JSON views of accounts and keys. A key's hash never leaves the daemon."""

from __future__ import annotations

from noor_daemon.clock import iso
from noor_daemon.domain.accounts import Account, ApiKey


def account_json(account: Account) -> dict:
    return {
        "id": account.id,
        "email": account.email,
        "plan": account.plan,
        "status": account.status,
        "created_at": iso(account.created_at),
        "limits": account.limits or None,
    }


def key_state(key: ApiKey, now_ms: int) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now_ms:
        return "expired"
    return key.status


def key_json(key: ApiKey, now_ms: int) -> dict:
    return {
        "id": key.id,
        "account_id": key.account_id,
        "prefix": key.prefix,
        "masked": key.prefix + "…",
        "name": key.name,
        "models": sorted(key.allowed_models) if key.allowed_models is not None else None,
        "limits": key.limits or None,
        "status": key.status,
        "state": key_state(key, now_ms),
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "last_used_at": iso(key.last_used_at),
    }
