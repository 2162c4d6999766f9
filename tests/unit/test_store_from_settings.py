"""RedisPolicyStore.from_settings: the one way code builds a store from Settings (no I/O)."""

from __future__ import annotations

from policy_store import RedisPolicyStore, Settings


def test_from_settings_takes_url_prefix_and_password():
    settings = Settings(
        redis_url="redis://example.invalid:6390/3", key_prefix="pfx", redis_password="s3cret"
    )
    store = RedisPolicyStore.from_settings(settings)
    kw = store.client.connection_pool.connection_kwargs
    assert store.prefix == "pfx"
    got = (kw["host"], kw["port"], kw["db"], kw["password"])
    assert got == ("example.invalid", 6390, 3, "s3cret")
    assert kw["socket_timeout"] == 2.0  # from_url's defaults still apply
