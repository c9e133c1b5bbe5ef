"""Talking to external APIs: rate limits, the client, GET and error helpers."""
