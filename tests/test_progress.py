"""Replay progress: a line per 10 % in a log, a bar on a terminal, nothing for short replays."""

from __future__ import annotations

import io

from ubot.progress import Progress, bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar():
    assert bar(300, 1000) == "[#########.....................]  30% 300/1000"
    assert bar(0, 10, width=4) == "[....]   0% 0/10"
    assert bar(10, 10, width=4) == "[####] 100% 10/10"
    assert bar(12, 10, width=4) == "[####] 100% 12/10"  # never beyond full
    assert bar(0, 0, width=4) == "[....]   0% 0/0"


def test_a_line_per_decile_in_a_log():
    stream = io.StringIO()
    progress = Progress(stream)
    for done in range(1, 201):
        progress.update(done, 200)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11  # 0 %, 10 %, ..., 100 %
    assert all(line.startswith("replay [") for line in lines)
    assert lines[0].endswith("1/200")
    assert lines[1].endswith(" 10% 20/200")
    assert lines[5].endswith(" 50% 100/200")
    assert lines[-1] == "replay " + bar(200, 200)


def test_repeated_updates_in_a_decile_write_nothing_more():
    stream = io.StringIO()
    progress = Progress(stream)
    progress.update(25, 100)
    progress.update(25, 100)
    progress.update(29, 100)
    assert stream.getvalue() == "replay " + bar(25, 100) + "\n"


def test_short_replays_show_nothing():
    for stream in (io.StringIO(), Terminal()):
        progress = Progress(stream)
        for done in range(1, 20):
            progress.update(done, 19)
        assert stream.getvalue() == ""


def test_minimum_is_configurable():
    stream = io.StringIO()
    progress = Progress(stream, minimum=5)
    for done in range(1, 6):
        progress.update(done, 5)
    assert len(stream.getvalue().splitlines()) == 5  # 20 %, 40 %, ...: each update a decile of its own
    assert Progress(io.StringIO(), minimum=5).minimum == 5


def test_a_bar_redrawn_in_place_on_a_terminal():
    stream = Terminal()
    progress = Progress(stream)
    progress.update(10, 40)
    progress.update(40, 40)
    assert stream.getvalue() == "\r" + bar(10, 40) + "\r" + bar(40, 40) + "\n"
