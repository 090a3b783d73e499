"""`claude-history keys ...`: the service's API keys per tenant, kept hashed in the store."""

from __future__ import annotations

import click

from .errors import CliError
from .options import out_console, store_option

__all__ = ["keys_group"]


@click.group("keys")
def keys_group() -> None:
    """API keys of the HTTP service (`claude-history serve`), one tenant per owner.

    \b
    Examples:
      claude-history keys create --owner alice
      claude-history keys list
    """


@keys_group.command("create")
@click.option("--owner", required=True, metavar="NAME", help="The tenant the key belongs to.")
@click.option("--name", metavar="TEXT", help="A note to recognise the key by.")
@store_option
def create(owner: str, name: str | None, store_url: str | None) -> None:
    """Make a key for OWNER. The key is printed once: only its hash is stored.

    \b
    Example:
      claude-history keys create --owner alice
    """
    from ..server.tenants import create_key
    from ..stores import open_store

    store = open_store(store_url)
    try:
        key, info = create_key(store, owner, name)
    finally:
        store.close()
    click.echo(key)
    click.echo(f"key id {info.key_id} for tenant {info.tenant} (shown once; keep it secret)", err=True)


@keys_group.command("list")
@click.option("--owner", metavar="NAME", help="Only this tenant's keys.")
@store_option
def list_(owner: str | None, store_url: str | None) -> None:
    """Key ids, tenants and notes (never the keys).

    \b
    Example:
      claude-history keys list
    """
    from ..server.tenants import list_keys
    from ..stores import open_store

    store = open_store(store_url)
    try:
        keys = list_keys(store, owner)
    finally:
        store.close()
    console = out_console()
    if not keys:
        console.print("no keys yet: claude-history keys create --owner NAME")
    for key in keys:
        console.print(f"{key.key_id}  {key.tenant}  {key.created_at:%Y-%m-%d %H:%M}  {key.name or ''}".rstrip())


@keys_group.command("revoke")
@click.argument("key_id")
@store_option
def revoke(key_id: str, store_url: str | None) -> None:
    """Revoke the key with KEY_ID (from `keys list`); it stops working within seconds on every server.

    \b
    Example:
      claude-history keys revoke KEY_ID
    """
    from ..server.tenants import revoke_key
    from ..stores import open_store

    store = open_store(store_url)
    try:
        info = revoke_key(store, key_id)
    finally:
        store.close()
    if info is None:
        raise CliError(f"no key with id {key_id!r}; see `claude-history keys list`")
    out_console().print(f"revoked {info.key_id} of tenant {info.tenant}")
