"""Which way out each provider takes (`gateway/egress.py`) and the config's checks on proxy settings:
secrets never in the file, only http:// proxies, the standard variables read as curl reads them."""

from __future__ import annotations

import base64

import pytest

from noor_daemon import config as config_module
from noor_daemon.config import ConfigError
from noor_daemon.gateway.egress import egress_for
from noor_daemon.secret_store import SecretError

pytestmark = pytest.mark.engine_independent

VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def provider(lines: str = "", base_url: str = "https://api.example.com/v1"):
    text = f'[[providers]]\nname = "p"\nkind = "openai"\nbase_url = "{base_url}"\n{lines}\n' \
           '[[models]]\nname = "m"\nroutes = [{ provider = "p" }]\n'
    return config_module.parse(text, "test.toml").providers[0]


def credentials(egress) -> str:
    assert egress.proxy is not None and egress.proxy.authorization is not None
    return base64.b64decode(egress.proxy.authorization.removeprefix("Basic ")).decode()


@pytest.mark.parametrize("lines, message", [
    ('proxy = "http://alice:hunter2@proxy.internal:3128"', "never the password itself"),
    ('proxy = "https://proxy.internal:3128"', "must be http://host:port"),
    ('proxy = "socks5://proxy.internal:1080"', "must be http://host:port"),
    ('proxy = "http://proxy.internal"', "needs a port"),
    ('proxy = "http://proxy.internal:3128/path"', "without a path"),
    ('proxy_auth = "keyring:corp"', "proxy_auth needs proxy"),
    ('proxy = "http://proxy.internal:3128"\nproxy_auth = "alice:hunter2"', "never the credentials themselves"),
    ('max_connections = 0', "greater than or equal to 1"),
])
def test_proxy_settings_that_cannot_be_used_are_refused_with_their_line(lines: str, message: str):
    with pytest.raises(ConfigError, match=message) as caught:
        provider(lines)
    assert str(caught.value).startswith("test.toml:") and "providers.0" in str(caught.value)
    assert "hunter2" not in str(caught.value)  # the refusal never repeats the secret


def test_the_variables_are_read_as_curl_reads_them(monkeypatch: pytest.MonkeyPatch):
    assert egress_for(provider(), trust_env=True).source == "direct"
    monkeypatch.setenv("HTTPS_PROXY", "proxy.internal:3128")  # no scheme: http://, as curl takes it
    egress = egress_for(provider(), trust_env=True)
    assert (egress.proxy_url, egress.source, egress.proxy.authorization) == ("http://proxy.internal:3128", "HTTPS_PROXY", None)
    assert egress_for(provider(base_url="http://vllm.lan:8000/v1"), trust_env=True).source == "direct"  # HTTP_PROXY unset
    monkeypatch.setenv("all_proxy", "http://all.internal:8080")
    assert egress_for(provider(base_url="http://vllm.lan:8000/v1"), trust_env=True).proxy_url == "http://all.internal:8080"
    monkeypatch.setenv("NO_PROXY", ".lan, api.example.com")
    assert egress_for(provider(), trust_env=True).source == "NO_PROXY"
    assert egress_for(provider(base_url="http://vllm.lan:8000/v1"), trust_env=True).source == "NO_PROXY"
    assert egress_for(provider(), trust_env=False).source == "direct"


def test_a_providers_own_proxy_wins_and_its_credentials_come_from_references(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    monkeypatch.setenv("CORP_PROXY", "alice:s3cr:et")
    egress = egress_for(provider('proxy = "http://proxy.internal:3128"\nproxy_auth = "env:CORP_PROXY"'), trust_env=True)
    assert (egress.proxy_url, egress.source, egress.credentials) == ("http://proxy.internal:3128", "config", "env:CORP_PROXY")
    assert credentials(egress) == "alice:s3cr:et"
    monkeypatch.setenv("PROXY_PASSWORD", "pa:ss")
    egress = egress_for(provider('proxy = "http://al%40ce:env:PROXY_PASSWORD@proxy.internal:3128"'), trust_env=True)
    assert credentials(egress) == "al@ce:pa:ss" and egress.credentials == "env:PROXY_PASSWORD"
    assert "pa:ss" not in repr(egress) and "pa:ss" not in egress.describe()


def test_credentials_from_the_variables_url_are_used_and_never_shown(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://bob:p%40ss@proxy.internal:3128")
    egress = egress_for(provider(), trust_env=True)
    assert credentials(egress) == "bob:p@ss"
    assert egress.describe() == "through http://proxy.internal:3128 (HTTPS_PROXY, credentials from HTTPS_PROXY)"
    assert "p@ss" not in repr(egress)


def test_an_unusable_variable_or_a_missing_credential_stops_the_start(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy.internal:1080")
    with pytest.raises(ConfigError, match="HTTPS_PROXY: only http:// forward proxies.*trust_env = false"):
        egress_for(provider(), trust_env=True)
    with pytest.raises(SecretError, match="MISSING_PROXY_SECRET"):
        egress_for(provider('proxy = "http://proxy.internal:3128"\nproxy_auth = "env:MISSING_PROXY_SECRET"'), trust_env=True)
    monkeypatch.setenv("HALF", "no-colon")
    with pytest.raises(ConfigError, match="must be user:password"):
        egress_for(provider('proxy = "http://proxy.internal:3128"\nproxy_auth = "env:HALF"'), trust_env=True)
