"""Strategy scanning: every enabled strategy against every new snapshot, vectorised over coins.

Plain, synchronous logic, unit-tested without threads; the Scanner supervisor and its workers
(``ubot/actors/scanner.py``) only route messages to it.

* :mod:`.spec`: a strategy as the Scanner sees it (from the UserManager);
* :mod:`.history`: each coin's indicator state per timeframe, seeded from its whole stored history;
* :mod:`.frame`: one tick's market (fields, indicators read once, scopes) shared by all workers;
* :mod:`.groups`: strategies that differ only in their literals, evaluated as one over all their pairs;
* :mod:`.firing`: when a true condition becomes an alert (once per crossing, per bar, ...), vectorised;
* :mod:`.worker`: one worker's strategies, evaluated over a frame;
* :mod:`.planner`: the supervisor's side: routing, the plan, the histories, when firing state starts afresh;
* :mod:`.bars`: which bars closed between two snapshots;
* :mod:`.backlog`: what waits for the scan in progress (the catch-up after a crash, the latest tick);
* :mod:`.rounds`: the scan in progress and the figures of every scan;
* :mod:`.render`: the alert's text.
"""
