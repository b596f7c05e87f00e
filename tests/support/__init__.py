"""What the tests share, one module per concern; imported as ``tests.support.<module>``.

- :mod:`tests.support.ports`: a free TCP port on 127.0.0.1.
- :mod:`tests.support.waits`: the one poll: a condition checked until it holds, with a deadline.
- :mod:`tests.support.processes`: ``run.py`` and other subprocesses: command, environment, log.
- :mod:`tests.support.actors`: every actor a test started is stopped when it ends.

Small fake servers live beside it in :mod:`tests.fakes` and :mod:`tests.fakecmc`.
"""
