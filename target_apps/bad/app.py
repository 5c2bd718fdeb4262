"""The target app with the session-scoping anti-patterns; same routes and responses as ``good``.

Run with ``uvicorn --factory target_apps.bad.app:create``. Every other module in this package is one
scenario's routes (its ``router``, or an ``install(app)`` function); each anti-pattern is marked ``ANTI-PATTERN(<id>)`` in place.
"""

from __future__ import annotations

from fastapi import FastAPI

from target_apps.common.app import create_app, scenario_modules


def create() -> FastAPI:
    return create_app("bad", scenario_modules("target_apps.bad"))
