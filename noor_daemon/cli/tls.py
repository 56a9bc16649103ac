"""`noor tls …`: certificates for serving HTTPS on a team's LAN."""

from __future__ import annotations

from pathlib import Path

import click

from noor_daemon import paths
from noor_daemon.cli.common import EXIT_USAGE, comma_list, data_dir_option, fail


@click.group()
def tls() -> None:
    """Make certificates for `[server] tls_cert` / `tls_key`."""


@tls.command("self-signed")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where to write ca.pem, cert.pem and key.pem [default: DATA_DIR/tls].")
@click.option("--hosts", default="localhost,127.0.0.1,::1", show_default=True, metavar="A,B",
              help="Host names and addresses the certificate is valid for (add the LAN name or address clients use).")
@click.option("--days", type=click.IntRange(1, 3650), default=825, show_default=True, help="Validity of the certificate.")
@click.option("--force", is_flag=True, help="Replace existing files.")
@data_dir_option
def self_signed(out_dir: str | None, hosts: str, days: int, force: bool, data_dir: str | None) -> None:
    """Make a private CA and a server certificate + key (0600) signed by it.

    Clients trust ca.pem; the CA's own key is discarded once it has signed, so these files can
    never be used to mint a certificate for another host.
    """
    from noor_daemon.tls import make_self_signed

    out = Path(out_dir).expanduser() if out_dir else paths.data_dir(data_dir) / "tls"
    try:
        made = make_self_signed(out, comma_list(hosts) or [], days=days, force=force)
    except FileExistsError as exc:
        fail(f"{exc} already exist(s); pass --force to replace them", EXIT_USAGE)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    click.echo(f"Wrote {made.cert} and {made.key} (0600) for {', '.join(made.hosts)}, valid until {made.not_after:%Y-%m-%d}.")
    click.echo(f"Clients trust {made.ca}.")
    click.echo("")
    click.echo("In the daemon's config:")
    click.echo("  [server]")
    click.echo(f'  tls_cert = "{made.cert}"')
    click.echo(f'  tls_key = "{made.key}"')
    click.echo("")
    click.echo("Clients:")
    click.echo(f"  OpenAI SDK: OpenAI(base_url=\"https://HOST:8787/v1\", http_client=httpx.Client(verify=\"{made.ca}\"))")
    click.echo(f"  curl --cacert {made.ca} https://HOST:8787/healthz")
    click.echo(f"  noor CLI and dashboard: NOOR_CA_BUNDLE={made.ca} NOOR_URL=https://HOST:8787")
