"""Small local fake servers that speak the real providers' wire formats, for tests over real sockets.

- :mod:`tests.fakes.base`: the shared threaded HTTP server, request record and scripted behaviours.
- :mod:`tests.fakes.webhook`: a webhook receiver that records headers and raw bodies.
- :mod:`tests.fakes.telegram`: the Bot API's ``sendMessage``.
- :mod:`tests.fakes.twilio`: Twilio's Messages resource (2010-04-01 API).
- :mod:`tests.fakes.smtp`: an SMTP server (EHLO, AUTH PLAIN/LOGIN, STARTTLS, DATA...).

Each binds 127.0.0.1 on an ephemeral port, is a context manager, and shuts down cleanly.
"""
