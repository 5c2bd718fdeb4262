"""The target app with correct session scoping; same routes and responses as ``bad``.

Run with ``uvicorn --factory target_apps.good.app:create``. Every other module in this package is one
scenario's routes (its ``router``, or an ``install(app)`` function); each twin is marked ``CORRECT(<id>)``.
"""

from __future__ import annotations

from fastapi import FastAPI

from target_apps.common.app import create_app, scenario_modules


def create() -> FastAPI:
    return create_app("good", scenario_modules("target_apps.good"))
