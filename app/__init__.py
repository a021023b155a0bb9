"""The Notes service: a notes REST API with a pure domain behind aiohttp."""
