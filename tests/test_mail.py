"""Transactional mail: the outbox, delivery over a real SMTP server (aiosmtpd on loopback) with
retries and backoff, the Maildir fallback, and the message templates."""

from __future__ import annotations

import logging
import os
import stat

import aiohttp
import pytest
from conftest import SIMULATOR_CONFIG
from privacy_helpers import eventually, eventually_async, maildir_files, smtp, start_smtp  # noqa: F401

from noor_daemon import config as config_module
from noor_daemon.clock import ManualClock
from noor_daemon.mail import templates
from noor_daemon.mail.outbox import BACKOFF_BASE_S, MAX_ATTEMPTS, backoff_seconds
from noor_daemon.state import LEDGER, OUTBOX

EMAIL = "ada@example.org"


async def create_account(daemon, email: str = EMAIL) -> dict:
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.post(f"{daemon.url}/admin/v1/accounts", json={"email": email}) as response:
            assert response.status == 201, await response.text()
            return await response.json()


async def outbox_rows(daemon) -> list[dict]:
    return [dict(r) for r in await daemon.app[LEDGER].fetchall("SELECT * FROM mail_outbox ORDER BY id")]


async def test_account_created_mail_goes_over_smtp_as_text_and_html(start_daemon, smtp, caplog):
    caplog.set_level(logging.DEBUG)
    daemon = await start_daemon(smtp.config())
    await create_account(daemon)
    await eventually(lambda: smtp.recorder.to(EMAIL), what="the account-created mail")

    received = smtp.recorder.to(EMAIL)
    assert len(received) == 1
    message = received[0].message
    assert received[0].mail_from == "noor@gateway.example"
    assert message["To"] == EMAIL
    assert "account was created" in message["Subject"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "free" in text and "30 days" in text
    # No tracking: no images, no remote resources, no links at all in these messages.
    for forbidden in ("<img", "http://", "https://", "src=", "url("):
        assert forbidden not in html.lower()

    # Sent: the row keeps no address and no message.
    await eventually_async(
        lambda: _sent(daemon), what="the outbox row to be marked sent"
    )
    (row,) = await outbox_rows(daemon)
    assert row["kind"] == "account_created" and row["status"] == "sent"
    assert row["recipient"] is None and row["message"] is None
    # No address in any log line of the daemon (mail.log is the test's SMTP server).
    assert not [r for r in caplog.records if r.name != "mail.log" and EMAIL in r.getMessage()]


async def _sent(daemon) -> bool:
    rows = await outbox_rows(daemon)
    return bool(rows) and all(r["status"] == "sent" for r in rows)


async def test_temporary_failures_are_retried_with_exponential_backoff(start_daemon, smtp, manual_clock: ManualClock):
    smtp.recorder.refuse_next = 2  # 451 twice, then accept
    daemon = await start_daemon(smtp.config(), clock=manual_clock)
    outbox = daemon.app[OUTBOX]
    await create_account(daemon)

    async def attempts(n: int) -> bool:
        rows = await outbox_rows(daemon)
        return bool(rows) and rows[0]["attempts"] == n and rows[0]["status"] == "pending"

    await eventually_async(lambda: attempts(1), what="the first failed attempt")
    (row,) = await outbox_rows(daemon)
    now_ms = int(manual_clock.now() * 1000)
    assert row["last_error"] == "smtp 451"
    assert row["next_attempt_at"] == now_ms + int(BACKOFF_BASE_S * 1000)
    assert row["recipient"] == EMAIL  # kept until sent

    # Not due yet: a pass sends nothing.
    assert await outbox.send_due() == 0
    manual_clock.advance(BACKOFF_BASE_S)
    outbox.wake()
    await eventually_async(lambda: attempts(2), what="the second failed attempt")
    (row,) = await outbox_rows(daemon)
    assert row["next_attempt_at"] == int(manual_clock.now() * 1000) + int(backoff_seconds(2) * 1000)
    assert backoff_seconds(2) == 2 * BACKOFF_BASE_S

    manual_clock.advance(backoff_seconds(2))
    outbox.wake()
    await eventually(lambda: smtp.recorder.to(EMAIL), what="delivery on the third attempt")
    await eventually_async(lambda: _sent(daemon), what="the row to be marked sent")
    (row,) = await outbox_rows(daemon)
    assert row["attempts"] == 3 and row["recipient"] is None and row["message"] is None


def test_backoff_doubles_and_is_capped():
    waits = [backoff_seconds(n) for n in range(1, MAX_ATTEMPTS + 1)]
    assert waits[:4] == [30, 60, 120, 240]
    assert all(b >= a for a, b in zip(waits, waits[1:]))
    assert max(waits) <= 3600


async def test_a_permanent_refusal_is_given_up_at_once_and_audited_without_the_address(start_daemon, smtp):
    smtp.recorder.refuse_next = 1
    smtp.recorder.refusal = "550 5.1.1 <ada@example.org>: no such user"
    daemon = await start_daemon(smtp.config())
    await create_account(daemon)

    async def failed() -> bool:
        rows = await outbox_rows(daemon)
        return bool(rows) and rows[0]["status"] == "failed"

    await eventually_async(failed, what="the message to be given up")
    (row,) = await outbox_rows(daemon)
    assert row["attempts"] == 1 and row["last_error"] == "smtp 550"
    assert row["recipient"] is None and row["message"] is None
    audit = await daemon.app[LEDGER].fetchall("SELECT * FROM audit_log WHERE action = 'mail.failed'")
    assert len(audit) == 1
    assert EMAIL not in str(dict(audit[0]))


async def test_an_unreachable_server_is_retried(start_daemon, manual_clock):
    port_holder = start_smtp()
    config = port_holder.config()
    port_holder.controller.stop()  # nothing listens there now
    daemon = await start_daemon(config, clock=manual_clock)
    await create_account(daemon)

    async def failed_once() -> bool:
        rows = await outbox_rows(daemon)
        return bool(rows) and rows[0]["attempts"] == 1

    await eventually_async(failed_once, what="a failed connection attempt")
    (row,) = await outbox_rows(daemon)
    assert row["status"] == "pending"
    assert row["last_error"] and "@" not in row["last_error"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_login_with_a_password_from_the_environment(start_daemon, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    server = start_smtp(username="noor", password="s3cret-smtp-pass")
    try:
        monkeypatch.setenv("NOOR_TEST_SMTP_PASSWORD", "s3cret-smtp-pass")
        daemon = await start_daemon(server.config(username="noor", password="env:NOOR_TEST_SMTP_PASSWORD"))
        await create_account(daemon)
        await eventually(lambda: server.recorder.to(EMAIL), what="an authenticated delivery")
        assert server.recorder.logins == ["noor"]
        assert not [r for r in caplog.records if r.name != "mail.log" and "s3cret-smtp-pass" in r.getMessage()]
    finally:
        server.controller.stop()


async def test_without_smtp_mail_is_written_to_a_private_maildir(daemon):
    await create_account(daemon)

    async def written() -> bool:  # delivered: moved from tmp/ into new/ (a Maildir writer's last step)
        return any(path.parent.name == "new" for path in maildir_files(daemon.data_dir))

    await eventually_async(written, what="a Maildir file")
    (path,) = maildir_files(daemon.data_dir)
    assert path.parent.name == "new"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(daemon.data_dir / "maildir").st_mode) == 0o700
    import email as email_module
    import email.policy

    message = email_module.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == EMAIL
    assert message["From"] == "NoorAPI <noreply@localhost>"
    await eventually_async(lambda: _sent(daemon), what="the row marked sent")  # the file lands first
    (row,) = await outbox_rows(daemon)
    assert row["status"] == "sent" and row["maildir_key"] == path.name and row["recipient"] is None


async def test_the_outbox_view_shows_states_but_no_addresses(start_daemon, smtp):
    daemon = await start_daemon(smtp.config())
    await create_account(daemon)
    await eventually(lambda: smtp.recorder.to(EMAIL), what="delivery")
    await eventually_async(lambda: _sent(daemon), what="sent")
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.get(f"{daemon.url}/admin/v1/mail/outbox") as response:
            body = await response.json()
    assert body["delivery"] == "smtp"
    assert body["counts"]["sent"] == 1
    assert body["data"][0]["kind"] == "account_created"
    assert "@" not in str(body)


async def test_a_stopped_daemon_resends_what_it_had_claimed(start_daemon, tmp_path, smtp):
    data = tmp_path / "resume"
    first = await start_daemon(SIMULATOR_CONFIG, data_dir=data)
    # Pretend the first daemon stopped mid-send: a claimed row with its message still there.
    async def claim(db):
        await first.app[OUTBOX].enqueue_in(
            db, templates.email_changed(changed_at=0), "late@example.org", account_id=None
        )
        await db.execute("UPDATE mail_outbox SET status = 'sending' WHERE recipient = 'late@example.org'")

    first.app[OUTBOX].wake = lambda: None  # keep it from sending before the "crash"
    await first.app[LEDGER].write(claim)
    await first.runner.cleanup()
    second = await start_daemon(smtp.config(), data_dir=data)
    await eventually(lambda: smtp.recorder.to("late@example.org"), what="the claimed message to go out")
    assert second


@pytest.mark.parametrize(
    "rendered",
    [
        templates.account_created(plan="team", created_at=1_700_000_000_000),
        templates.email_changed(changed_at=1_700_000_000_000),
        templates.deletion_completed(deleted_at=1_700_000_000_000),
        templates.policy_notice(version=2, summary="We keep usage 60 days, not 90.", effective_at=1_700_000_000_000, material=True, url=None),
        templates.billing_receipt(amount="12.00", currency="usd", period="March 2026", paid_at=1_700_000_000_000, reference="in_123"),
    ],
    ids=lambda r: r.kind,
)
def test_every_template_has_text_and_a_self_contained_html_alternative(rendered):
    assert rendered.kind in templates.KINDS
    message = templates.compose(rendered, sender="noor@gateway.example", recipient="x@example.org", now_ms=1_700_000_000_000)
    assert message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    html = message.get_body(("html",)).get_content().lower()
    for forbidden in ("<img", "src=", "url(", "<script", "<link"):
        assert forbidden not in html
    assert message["Message-ID"].endswith("@gateway.example>")


def test_html_is_escaped():
    rendered = templates.policy_notice(version=1, summary="<b>bold</b> & more", effective_at=0, material=False, url=None)
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in rendered.html


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('host = "smtp.example"\nfrom_address = "a@b"\nusername = "u"\npassword = "hunter2"', "never the password itself"),
        ('host = "smtp.example"\nfrom_address = "a@b"\npassword = "env:X"', "needs a username"),
        ('host = "smtp.example"\nfrom_address = "a@b"\nsecurity = "none"\nusername = "u"\npassword = "env:X"', "loopback"),
        ('host = "smtp.example"\nfrom_address = "a@b"\nsecurity = "ssl"', "smtp.security"),
        ('host = "smtp.example"\nfrom_address = "nobody"', "smtp.from_address"),
        ('host = "smtp.example"\nfrom_address = "a@b"\ncolour = "blue"', "unknown key"),
    ],
)
def test_smtp_config_is_checked(section, message):
    with pytest.raises(config_module.ConfigError, match=message):
        config_module.parse(f"[smtp]\n{section}\n", "noor.toml")


async def test_a_config_reload_switches_mail_delivery_and_the_retention_limit(daemon, smtp):
    from noor_daemon.state import PRIVACY

    service = daemon.app[PRIVACY]
    assert daemon.app[OUTBOX].sender.kind == "maildir" and service.retention.usage_days == 90
    apply = service.prepare_reload(config_module.parse(smtp.config() + "\n[retention]\nusage_days = 30\n"))
    assert daemon.app[OUTBOX].sender.kind == "maildir"  # nothing changes before the swap
    apply()
    assert daemon.app[OUTBOX].sender.kind == "smtp" and service.retention.usage_days == 30
    await create_account(daemon)
    await eventually(lambda: smtp.recorder.to(EMAIL), what="delivery over the newly configured SMTP server")


def test_a_reload_with_an_unresolvable_smtp_password_is_refused_before_anything_changes(daemon, smtp):
    from noor_daemon.secret_store import SecretError
    from noor_daemon.state import PRIVACY

    text = smtp.config(username="u", password="env:NOOR_TEST_UNSET_PASSWORD")
    with pytest.raises(SecretError, match="NOOR_TEST_UNSET_PASSWORD"):
        daemon.app[PRIVACY].prepare_reload(config_module.parse(text))
    assert daemon.app[OUTBOX].sender.kind == "maildir"
