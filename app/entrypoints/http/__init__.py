"""The aiohttp HTTP adapter: `app.create_app` builds the application."""
