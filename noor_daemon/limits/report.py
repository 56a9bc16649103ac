"""A quota report: every limit of an account and of its live keys, with use, remainder and reset time.

One definition for `/admin/v1/accounts/{ref}/quota`, `/v1/me/quota` and the data export's `quota` section.
"""

from __future__ import annotations

from noor_daemon.domain.accounts import Account
from noor_daemon.domain.serialize import account_json, key_json
from noor_daemon.ledger.accounts import AccountStore
from noor_daemon.limits.enforcer import Limiter


async def quota_report(limiter: Limiter, store: AccountStore, account: Account, now_ms: int, key_id: str | None = None) -> dict:
    """Every limit of the account and of each live key: used, remaining, reset time (budgets in `currency`)."""
    keys = [k for k in await store.list_keys(account.id) if k.revoked_at is None]
    if key_id is not None:
        keys = [k for k in keys if k.id == key_id]
    return {
        "account": account_json(account),
        "currency": limiter.config.budgets.currency,
        "limits": await limiter.report(None, account),
        "keys": [
            {**key_json(k, now_ms), "limits": [row for row in await limiter.report(k, account) if row["scope"] == "key"]}
            for k in keys
        ],
    }
