"""Transactional mail: an outbox in the ledger, SMTP or Maildir delivery, and the message templates.

Messages say what happened to an account (created, email changed, deleted, a policy change,
a billing receipt) and nothing else: no content of any API call, no tracking pixels, no
remote images, no per-recipient links.
"""
