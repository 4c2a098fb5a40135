"""A built-in gateway serving new-api's `GET /api/log/token`, for the demo and the tests."""

from reconcile.gateway.server import ENDPOINT, Faults, GatewayServer
from reconcile.gateway.store import LogStore

__all__ = ["ENDPOINT", "Faults", "GatewayServer", "LogStore"]
