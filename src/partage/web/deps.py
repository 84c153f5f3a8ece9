"""Request-level access to the process's platform."""

from __future__ import annotations

from fastapi import Request

from partage.platform import Platform


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform
