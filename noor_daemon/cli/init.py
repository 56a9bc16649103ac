"""`noor init`: from nothing to a working gateway in one command.

It asks which providers to use (the kinds of `presets.py`), stores their keys in the secrets backend
(the OS keyring, or the 0600 file), writes a commented config file where `noor daemon` and `noor doctor`
look, creates the first account and its key (through the daemon's own admin API: a running daemon's,
or one started in this process for the purpose), and prints how to point the OpenAI SDK, Claude Code
and Codex at it. With `--non-interactive` every answer comes from flags and the environment, for scripts.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click

from noor_daemon import paths, presets
from noor_daemon.cli.common import EXIT_USAGE, configured_url, fail, json_option, print_json

KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "azure": "AZURE_OPENAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY", "groq": "GROQ_API_KEY", "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY", "gemini": "GEMINI_API_KEY",
}
"""Kinds that need a key, and the variable their own SDKs read it from (where `--non-interactive` looks)."""

MODEL_PATTERNS = {
    "openai": ["gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "text-embedding-*"],
    "anthropic": ["claude-*"],
    "gemini": ["gemini-*"],
    "mistral": ["mistral-*", "codestral-*", "ministral-*", "pixtral-*"],
    "deepseek": ["deepseek-*"],
    "simulator": ["sim-gpt", "sim-claude", "sim-embed"],
}
"""Model names routed to a kind when none are given: the families its API names (sent to it as the client wrote
them). Servers of your own (Ollama, vLLM…) and routers (OpenRouter, Groq, Azure deployments) need `--model`."""


@dataclass
class Provider:
    kind: str
    base_url: str | None = None
    models: list[str] = field(default_factory=list)
    api_key: str | None = None
    """The reference written to the config (`keyring:NAME`, `env:VAR`), or None for a server without a key."""
    secret: str | None = field(default=None, repr=False)
    """A key to store in the backend under the provider's name; never written to the config."""

    @property
    def name(self) -> str:
        return self.kind


def _pairs(values: tuple[str, ...], option: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for value in values:
        kind, sep, rest = value.partition("=")
        if not sep or not rest or kind not in presets.KINDS:
            fail(f"{option} {value!r}: expected KIND=VALUE with KIND one of {', '.join(presets.KINDS)}", EXIT_USAGE)
        found.setdefault(kind, []).append(rest)
    return found


def _choose_kinds(interactive: bool) -> list[str]:
    if not interactive:
        fail("name at least one --provider KIND (or run `noor init` in a terminal to be asked)", EXIT_USAGE)
    names = list(presets.KINDS)
    click.echo("Which providers should NoorAPI call? (numbers or names, separated by commas)", err=True)
    for number, name in enumerate(names, start=1):
        click.echo(f"  {number:>2}. {name:<11} {presets.KINDS[name].title}", err=True)
    while True:
        answer = click.prompt("Providers", default="openai,anthropic", err=True)
        chosen = [names[int(a) - 1] if a.strip().isdigit() and 0 < int(a) <= len(names) else a.strip()
                  for a in answer.split(",") if a.strip()]
        unknown = [c for c in chosen if c not in presets.KINDS]
        if chosen and not unknown:
            return list(dict.fromkeys(chosen))
        click.echo(f"Not a provider kind: {', '.join(unknown) or '(none)'}", err=True)


def _gather(kind: str, base_urls: dict, models: dict, key_envs: dict, key_refs: dict, interactive: bool) -> Provider:
    spec = presets.KINDS[kind]
    provider = Provider(kind)
    provider.base_url = (base_urls.get(kind) or [None])[-1]
    if provider.base_url is None and spec.base_url is None and spec.protocol != "simulator":
        if not interactive:
            fail(f"{kind} needs --base-url {kind}=URL (e.g. https://RESOURCE.openai.azure.com)", EXIT_USAGE)
        provider.base_url = click.prompt(f"{spec.title}: base URL", err=True)
    elif provider.base_url is None and interactive and spec.protocol != "simulator" and kind not in KEY_VARIABLES:
        provider.base_url = click.prompt(f"{spec.title}: base URL", default=spec.base_url, err=True)
    provider.models = models.get(kind) or list(MODEL_PATTERNS.get(kind, []))
    if not provider.models:
        if not interactive:
            fail(f"name the models to route to {kind}: --model {kind}=NAME (repeatable; a trailing * matches a family)", EXIT_USAGE)
        answer = click.prompt(f"{spec.title}: model names clients will send (comma-separated; llama3* matches a family)", err=True)
        provider.models = [m.strip() for m in answer.split(",") if m.strip()]
    if spec.protocol == "simulator":
        return provider
    if kind in key_refs:
        provider.api_key = key_refs[kind][-1]  # the operator's own reference: nothing stored
        return provider
    variable = (key_envs.get(kind) or [KEY_VARIABLES.get(kind)])[-1]
    value = os.environ.get(variable, "").strip() if variable else ""
    if not value and interactive:
        needed = kind in KEY_VARIABLES
        value = click.prompt(f"{spec.title}: API key{'' if needed else ' (Enter for none)'}", hide_input=True,
                             default="" if not needed else None, show_default=False, err=True).strip()
    if not value and kind in KEY_VARIABLES:
        fail(f"no API key for {kind}: set {variable} (it is stored in the secrets backend, not in the config), "
             f"or pass --key-ref {kind}=env:{variable} to read it from the environment at every start", EXIT_USAGE)
    if value:
        provider.secret, provider.api_key = value, f"keyring:{provider.name}"
    return provider


def render(providers: list[Provider], backend: str, host: str, port: int) -> str:
    """The commented config file; every value is what `noor config check` accepts."""
    lines = [
        f"# NoorAPI config, written by `noor init` on {datetime.now(UTC):%Y-%m-%d}.",
        "# `noor config check` validates it; `noor config reload` (or SIGHUP) applies a change to a running daemon.",
        "# Every setting is described in README.md.",
        "",
        _note('default_plan = "free"', "the plan new accounts get ([plans.NAME] below)"),
        "",
        "[server]",
        _note(f'host = "{host}"', "0.0.0.0 serves the LAN: then add tls_cert/tls_key (`noor tls self-signed`)"),
        _note(f"port = {port}", "the CLI finds the daemon here (or --url / NOOR_URL)"),
        "",
        "[secrets]",
        _note(f'backend = "{backend}"', "keyring: the OS keyring; file: a 0600 file in the data dir"),
        "",
        "# Providers: where calls go. api_key is a reference (keyring:NAME, env:VAR), never the key itself.",
    ]
    for p in providers:
        spec = presets.KINDS[p.kind]
        lines += ["", "[[providers]]", f'name = "{p.name}"', _note(f'kind = "{p.kind}"', spec.title)]
        if p.base_url is not None:
            lines.append(f'base_url = "{p.base_url}"')
        if p.api_key is not None:
            lines.append(f'api_key = "{p.api_key}"')
    lines += ["", "# Models: the names clients send and where each goes; a trailing * matches a family, sent on as written."]
    for p in providers:
        for model in p.models:
            lines += ["", "[[models]]", f'name = "{model}"', f'routes = [{{ provider = "{p.name}" }}]']
    lines += [
        "",
        "# Limits per account (a key may have tighter ones: noor key create --limit …).",
        "[plans.free]",
        "requests_per_minute = 60",
        "tokens_per_minute = 200000",
        "# tokens_per_month = 20000000",
        "# concurrent_requests = 8",
        "",
        "[retention]",
        _note("usage_days = 90", "usage rows (never content) are deleted after this many days"),
        "",
        "# OpenTelemetry traces and metrics (pip install 'noorapi[otel]'): no content, no account or key identity.",
        "# [telemetry]",
        '# endpoint = "http://127.0.0.1:4318"',
        "",
    ]
    return "\n".join(lines)


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _note(setting: str, comment: str) -> str:
    return f"{setting:<38} # {comment}"


async def _first_key(config_file: Path, data_dir: Path, email: str, key_name: str) -> tuple[str, str]:
    """The first account and key, through a running daemon's admin API when one answers at the config's
    address, else through the daemon app started here on a loopback port for the purpose."""
    from noor_daemon.cli.common import find_token
    from noor_daemon.client import AdminApiError, AdminClient, DaemonUnreachable

    url = configured_url(str(config_file))
    token, _ = find_token(str(data_dir))
    try:
        async with AdminClient(url, token, timeout=3.0) as admin:
            await admin.healthz()
            return await _create(admin, email, key_name), url
    except (DaemonUnreachable, AdminApiError):
        pass
    from aiohttp import web

    from noor_daemon.app import create_app
    from noor_daemon.config import load
    from noor_daemon.secret_store import daemon_admin_token
    from noor_daemon.server import GatewayRunner
    from noor_daemon.settings import DaemonSettings

    admin_token = daemon_admin_token(data_dir)  # what `noor daemon` will trust (made now on a first start)
    app = create_app(DaemonSettings(load(config_file), data_dir, admin_token.value, admin_token.source,
                                    admin_token_hash=admin_token.digest))
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        token = admin_token.value or token
        async with AdminClient(f"http://{host}:{port}", token) as admin:
            return await _create(admin, email, key_name), url
    finally:
        await runner.cleanup()


async def _create(admin, email: str, key_name: str) -> str:
    from noor_daemon.client import AdminApiError

    try:
        await admin.create_account(email)
    except AdminApiError as exc:
        if exc.status != 409:  # already there: a second key for it
            raise
    return (await admin.create_key(email, name=key_name)).key


def _pointers(url: str, key: str) -> str:
    return f"""
Start the gateway:  noor daemon        (or keep it running: noor service install)

Point your tools at it (the key is shown this once; keep it in your password manager):
  OpenAI SDK    export OPENAI_BASE_URL={url}/v1 OPENAI_API_KEY={key}
                (or OpenAI(base_url="{url}/v1", api_key=…))
  Claude Code   export ANTHROPIC_BASE_URL={url} ANTHROPIC_AUTH_TOKEN={key}
  Codex         in ~/.codex/config.toml:
                  [model_providers.noor]
                  name = "NoorAPI"
                  base_url = "{url}/v1"
                  env_key = "NOOR_API_KEY"
                  wire_api = "responses"
                then: NOOR_API_KEY={key} codex -c model_provider=noor -m MODEL
Check everything:   noor doctor"""


@click.command("init")
@click.option("--provider", "kinds", multiple=True, type=click.Choice(list(presets.KINDS)), metavar="KIND",
              help=f"A provider to use (repeatable): {', '.join(presets.KINDS)}.")
@click.option("--base-url", "base_urls", multiple=True, metavar="KIND=URL", help="Where KIND listens [default: the kind's].")
@click.option("--model", "models", multiple=True, metavar="KIND=NAME",
              help="A model name routed to KIND (repeatable; a trailing * matches a family) [default: the kind's families].")
@click.option("--key-env", "key_envs", multiple=True, metavar="KIND=VAR",
              help="Read KIND's API key from VAR and store it [default: its SDK's variable, e.g. OPENAI_API_KEY].")
@click.option("--key-ref", "key_refs", multiple=True, metavar="KIND=REF",
              help="Write REF (env:VAR or keyring:NAME) as KIND's api_key and store nothing.")
@click.option("--secrets", "backend", type=click.Choice(["keyring", "file"]), default=None,
              help="Where keys are stored [default: the OS keyring when there is one].")
@click.option("--email", default=None, help="The first account's email address.")
@click.option("--key-name", default="first key", show_default=True, help="A label for the first API key.")
@click.option("--host", default="127.0.0.1", show_default=True, help="[server] host.")
@click.option("--port", type=click.IntRange(1, 65535), default=8787, show_default=True, help="[server] port.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar="NOOR_CONFIG",
              help="Where to write the config [env: NOOR_CONFIG; default: where `noor doctor` looks].")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, envvar="NOOR_DATA_DIR",
              help="The daemon's data dir [env: NOOR_DATA_DIR].")
@click.option("--completion/--no-completion", "with_completion", default=None,
              help="Install tab completion for $SHELL [default: ask in a terminal, no otherwise].")
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@click.option("--non-interactive", "-y", is_flag=True, help="Never ask: every answer from flags and the environment.")
@json_option
def init(kinds, base_urls, models, key_envs, key_refs, backend, email, key_name, host, port, config_path, data_dir,
         with_completion, force, non_interactive, as_json) -> None:
    """Set NoorAPI up in one go: providers and their keys, a commented config, the first account and API key."""
    from noor_daemon.config import ConfigError, default_config_path, parse
    from noor_daemon.secret_store import KeyringBackend, SecretError, check_name, open_backend

    interactive = not non_interactive and stdin_is_terminal()
    target = Path(config_path or os.environ.get("NOOR_CONFIG") or default_config_path()).expanduser()
    if target.exists() and not force:
        fail(f"{target} exists; pass --force to replace it (or edit it: `noor config check` validates it)", EXIT_USAGE)
    data = paths.data_dir(data_dir)
    if backend is None:
        backend = "keyring" if KeyringBackend().usable() else None
        if backend is None and not interactive:
            fail("no OS keyring on this machine: pass --secrets file (a 0600 file in the data dir)", EXIT_USAGE)
        if backend is None:
            backend = click.prompt("No OS keyring here; keep keys in a 0600 file in the data dir?",
                                   type=click.Choice(["file"]), default="file", err=True)
    chosen = list(dict.fromkeys(kinds)) or _choose_kinds(interactive)
    options = [_pairs(base_urls, "--base-url"), _pairs(models, "--model"), _pairs(key_envs, "--key-env"), _pairs(key_refs, "--key-ref")]
    providers = [_gather(kind, *options, interactive) for kind in chosen]
    if email is None:
        if not interactive:
            fail("pass --email for the first account", EXIT_USAGE)
        email = click.prompt("Your email (the first account)", err=True)
    text = render(providers, backend, host, port)
    try:
        parse(text, str(target))  # never write a file the daemon would refuse
    except ConfigError as exc:
        fail(f"these answers do not make a valid config:\n{exc}", EXIT_USAGE)

    try:
        paths.ensure_private_dir(data)
        secrets_backend = open_backend(parse(text).secrets, data)
        for p in providers:
            if p.secret is not None:
                secrets_backend.set(check_name(p.name), p.secret)
    except (SecretError, paths.UnsafeDirectory) as exc:
        fail(str(exc), EXIT_USAGE)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    key, url = asyncio.run(_first_key(target, data, email, key_name))

    completion_at = None
    if with_completion is None and interactive:
        with_completion = click.confirm("Install tab completion for your shell?", default=True, err=True)
    if with_completion:
        from noor_daemon.cli.completion import detected_shell, install

        shell = detected_shell()
        if shell:
            completion_at = str(install(click.get_current_context().find_root().command, shell)[0])
    stored = [p.name for p in providers if p.secret is not None]
    if as_json:
        print_json({"config": str(target), "data_dir": str(data), "url": url, "secrets_backend": secrets_backend.describe(),
                    "stored_keys": stored, "providers": [{"name": p.name, "kind": p.kind, "models": p.models} for p in providers],
                    "account": email, "key": key, "completion": completion_at})
        return
    click.echo(f"Wrote {target} ({len(providers)} provider(s)); `noor config check` validates it.", err=True)
    if stored:
        click.echo(f"Stored the API keys of {', '.join(stored)} in the {secrets_backend.describe()}.", err=True)
    if completion_at:
        click.echo(f"Installed tab completion in {completion_at}.", err=True)
    click.echo(f"Created the account {email} and its first API key:", err=True)
    click.echo(key)
    click.echo(_pointers(url, key), err=True)
