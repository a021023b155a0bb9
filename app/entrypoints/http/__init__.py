"""The aiohttp HTTP adapter."""

from app.entrypoints.http.app import create_app

__all__ = ["create_app"]
