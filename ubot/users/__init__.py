"""Accounts, sessions, settings and strategies: the plain logic behind the UserManager actor.

``validation`` (the domain rules), ``passwords`` (argon2id, strength), ``tokens`` (bearer tokens),
``throttle`` (failed-login back-off), ``manager`` (the operations, on ``models/users.py``),
``shapes`` (the bodies it takes and the values it answers with, declared once), ``errors`` (the domain exceptions). Nothing here starts
a thread; time comes from an injected ``ubot.clocks`` clock.
"""
