"""Live events for ``GET /v1/stream``: the in-memory :class:`~ubot.stream.hub.StreamHub` that actors
publish into and SSE connections read from, and the payloads of the events (:mod:`ubot.stream.events`).
"""
