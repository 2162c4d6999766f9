"""Web dashboard: per-policy live charts, loop health, rollout and kill-switch controls.

Served standalone by ``rl-commons dashboard`` or mounted on a Faust worker's web
server with ``mount_dashboard(faust_app.web.web_app, store, token)``.
"""

from ._server import DashboardRoutes, dashboard_app, mount_dashboard

__all__ = ["DashboardRoutes", "dashboard_app", "mount_dashboard"]
