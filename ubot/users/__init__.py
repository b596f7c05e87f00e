"""Accounts, sessions, settings and strategies: the plain logic behind the UserManager actor.

``validation`` (every field rule), ``passwords`` (argon2id, strength), ``tokens`` (bearer tokens),
``throttle`` (failed-login back-off), ``manager`` (the operations, on ``models/users.py``),
``messages`` (the values it answers with), ``errors`` (the domain exceptions). Nothing here starts
a thread; time comes from an injected ``ubot.clocks`` clock.
"""
