"""The dashboard's aiohttp routes: one static page and a small JSON API.

    GET  {prefix}/                           the page (HTML with inline JS and SVG charts)
    GET  {prefix}/api/policies               [{name, enabled, rollout_fraction, version, …}]
    GET  {prefix}/api/policy/{name}?window=M inspect report + per-minute series (read_policy_report)
    POST {prefix}/api/policy/{name}/rollout  {"fraction": 0.25}          (token required)
    POST {prefix}/api/policy/{name}/enabled  {"enabled": false}          (token required)

Writes need ``Authorization: Bearer <token>`` where the token is
``Settings.dashboard_token`` (env ``RL_COMMONS_DASHBOARD_TOKEN``): a missing or
wrong token gets 401; with no token configured every write gets 403 and a
message saying to set it. Errors are JSON ``{"error": "..."}`` with a message
that says what to fix. Redis calls are blocking (redis-py) and run in a thread.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from policy_store import (
    ConfigError,
    RedisPolicyStore,
    RLCommonsError,
    Settings,
    StoreUnavailableError,
    UnknownPolicyError,
)
from stream_app import held_policies

from .. import read_policy_report

TOKEN_ENV = "RL_COMMONS_DASHBOARD_TOKEN"
MAX_WINDOW_MINUTES = 24 * 60


def _page() -> bytes:
    return resources.files(__package__).joinpath("static/index.html").read_bytes()


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class DashboardRoutes:
    """Handlers bound to one store and token; ``add_to`` mounts them on an aiohttp app."""

    def __init__(
        self,
        store: RedisPolicyStore,
        token: str | None,
        *,
        clock: Callable[[], float] = time.time,
        dead_letters: Callable[[], Any] | None = None,
        dead_letters_every: float = 10.0,
    ) -> None:
        self.store = store
        self._token = token or None
        self._clock = clock
        # the DLQ topic's counts (``read_dead_letters``), read in the background at most every
        # ``dead_letters_every`` seconds; pages show the last answer
        self._read_dead = dead_letters
        self._dead_every = dead_letters_every
        self._dead: Any = None  # DeadLetters, or the error text
        self._dead_at = -math.inf
        self._dead_task: asyncio.Task | None = None

    # -- plumbing ------------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _guarded(self, request: web.Request, fn: Callable[..., Any]) -> web.Response:
        try:
            return await fn(request)
        except UnknownPolicyError as exc:
            return _error(404, str(exc))
        except ConfigError as exc:
            return _error(400, str(exc))
        except StoreUnavailableError as exc:
            return _error(503, str(exc))

    def _check_token(self, request: web.Request) -> web.Response | None:
        if self._token is None:
            return _error(
                403,
                f"dashboard writes are disabled: no token is configured; set {TOKEN_ENV} "
                "(or Settings.dashboard_token) and restart the dashboard",
            )
        auth = request.headers.get("Authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self._token.encode()):
            return _error(
                401,
                f"missing or wrong token: send 'Authorization: Bearer <token>' with the value of "
                f"{TOKEN_ENV}",
                **{"WWW-Authenticate": 'Bearer realm="rl-commons"'},
            )
        return None

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError('request body must be JSON, e.g. {"fraction": 0.25}') from None
        if not isinstance(body, dict):
            raise ConfigError("request body must be a JSON object")
        return body

    def _dead_letters(self, name: str) -> dict[str, Any]:
        """The last DLQ counts for ``name``; starts a re-read when they are old."""
        if self._read_dead is None:
            return {}
        now = time.monotonic()
        if now - self._dead_at > self._dead_every and (
            self._dead_task is None or self._dead_task.done()
        ):
            self._dead_at = now
            self._dead_task = asyncio.ensure_future(self._refresh_dead())
        if self._dead is None:
            return {}
        if isinstance(self._dead, str):
            return {"error": self._dead}
        return self._dead.for_policy(name)

    async def _refresh_dead(self) -> None:
        try:
            self._dead = await self._run(self._read_dead)
        except RLCommonsError as exc:
            self._dead = str(exc)

    # -- handlers ------------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        return web.Response(body=_page(), content_type="text/html", charset="utf-8")

    async def policies(self, request: web.Request) -> web.Response:
        async def go(_r: web.Request) -> web.Response:
            def read() -> list[dict[str, Any]]:
                out = []
                for name in self.store.list_policies():
                    try:
                        head = self.store.head(name)
                    except UnknownPolicyError:
                        continue  # deleted meanwhile
                    out.append(
                        {
                            "name": name,
                            "enabled": head.config.enabled,
                            "rollout_fraction": head.config.rollout_fraction,
                            "arms": list(head.config.arms),
                            "version": head.version,
                            "updated_at": head.updated_at,
                        }
                    )
                return out

            held = await self._run(held_policies, self.store)
            return web.json_response(
                {
                    "policies": await self._run(read),
                    "held": held,  # vanished from Redis, rewards held by the workers
                    "writable": self._token is not None,
                }
            )

        return await self._guarded(request, go)

    async def policy(self, request: web.Request) -> web.Response:
        async def go(r: web.Request) -> web.Response:
            try:
                window = int(r.query.get("window", "60"))
            except ValueError:
                raise ConfigError(
                    "window must be a whole number of minutes, e.g. ?window=60"
                ) from None
            if not 1 <= window <= MAX_WINDOW_MINUTES:
                raise ConfigError(f"window must be between 1 and {MAX_WINDOW_MINUTES} minutes")
            now = self._clock()
            report = await self._run(
                read_policy_report,
                self.store,
                r.match_info["name"],
                window_minutes=window,
                with_series=True,
                now=now,
            )
            data = report.to_dict()
            data["dead_letters"] = self._dead_letters(r.match_info["name"])
            data["now"] = now
            data["writable"] = self._token is not None
            return web.json_response(data)

        return await self._guarded(request, go)

    async def set_rollout(self, request: web.Request) -> web.Response:
        denied = self._check_token(request)
        if denied is not None:
            return denied

        async def go(r: web.Request) -> web.Response:
            body = await self._json_body(r)
            fraction = body.get("fraction")
            if (
                isinstance(fraction, bool)
                or not isinstance(fraction, int | float)
                or not math.isfinite(fraction)
                or not 0.0 <= fraction <= 1.0
            ):
                raise ConfigError(
                    f"fraction {fraction!r} is out of range: send a number between 0 and 1, "
                    'e.g. {"fraction": 0.25}'
                )
            cfg = await self._run(
                self.store.update_config, r.match_info["name"], rollout_fraction=float(fraction)
            )
            return web.json_response(
                {"name": cfg.name, "rollout_fraction": cfg.rollout_fraction, "enabled": cfg.enabled}
            )

        return await self._guarded(request, go)

    async def set_enabled(self, request: web.Request) -> web.Response:
        denied = self._check_token(request)
        if denied is not None:
            return denied

        async def go(r: web.Request) -> web.Response:
            body = await self._json_body(r)
            enabled = body.get("enabled")
            if not isinstance(enabled, bool):
                raise ConfigError(
                    f'enabled {enabled!r}: send true or false, e.g. {{"enabled": false}}'
                )
            cfg = await self._run(self.store.update_config, r.match_info["name"], enabled=enabled)
            return web.json_response(
                {"name": cfg.name, "rollout_fraction": cfg.rollout_fraction, "enabled": cfg.enabled}
            )

        return await self._guarded(request, go)

    # -- mounting ------------------------------------------------------------------------------
    def add_to(self, app: web.Application, prefix: str = "") -> None:
        """Register the routes on ``app`` under ``prefix`` (``""`` or e.g. ``"/dashboard"``)."""
        prefix = prefix.rstrip("/")
        if prefix:

            async def to_slash(_r: web.Request) -> web.Response:
                raise web.HTTPFound(prefix + "/")

            app.router.add_get(prefix, to_slash)
        app.router.add_get(prefix + "/", self.page)
        app.router.add_get(prefix + "/api/policies", self.policies)
        app.router.add_get(prefix + "/api/policy/{name}", self.policy)
        app.router.add_post(prefix + "/api/policy/{name}/rollout", self.set_rollout)
        app.router.add_post(prefix + "/api/policy/{name}/enabled", self.set_enabled)


def mount_dashboard(
    app: web.Application, store: RedisPolicyStore, token: str | None, prefix: str = "/dashboard"
) -> DashboardRoutes:
    """Add the dashboard to an existing aiohttp application, e.g. a Faust worker's web server
    (``faust_app.web.web_app``) before the worker starts; served under ``prefix``."""
    routes = DashboardRoutes(store, token)
    routes.add_to(app, prefix)
    return routes


def dashboard_app(
    store: RedisPolicyStore, token: str | None, *, settings: Settings | None = None
) -> web.Application:
    """A standalone aiohttp application serving the dashboard at ``/``; with ``settings``
    it also counts the DLQ topic (every 10 s) for each policy's DLQ card."""
    dead = None
    if settings is not None:
        from .._dlq import read_dead_letters

        def dead() -> Any:
            return read_dead_letters(settings, tail=0, timeout=10.0)

    app = web.Application()
    DashboardRoutes(store, token, dead_letters=dead).add_to(app, "")
    return app
