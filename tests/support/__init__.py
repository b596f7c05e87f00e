"""What the tests share, one module per concern; imported as ``tests.support.<module>``.

- :mod:`tests.support.ports`: a free, a refusing or a busy TCP port on 127.0.0.1.
- :mod:`tests.support.waits`: the one poll: a condition checked until it holds, with a deadline.
- :mod:`tests.support.processes`: ``run.py`` and other subprocesses: command, environment, log.
- :mod:`tests.support.actors`: a recording stand-in actor; every actor a test started is stopped when it ends.
- :mod:`tests.support.market`: the simulated market as the stages see it (snapshots, ``Fetched``).
- :mod:`tests.support.users`: a cheap password hasher, a stand-in condition checker.
- :mod:`tests.support.pglocks`: PostgreSQL: the sessions waiting for a lock a session holds.

Small fake servers live beside it in :mod:`tests.fakes` and :mod:`tests.fakecmc`.
"""
