"""docs/alerts.md shows what is sent: each sample there (``<!-- sample: NAME CHANNEL -->`` and the
block after it) is compared with what the local fakes receive when the sample's tick goes through
the real Notifier and channels (``tests/support/alert_samples.py``). After a change of words,
``python bench/alerts.py --samples --write docs/alerts.md`` writes the new ones in."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.alert_samples import CHANNELS, SAMPLES, documented, received, rewritten

DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_documented_sample_is_what_the_channel_receives(db, name) -> None:
    shown = {
        channel: text for (sample, channel), text in documented(DOCS.read_text()).items() if sample == name
    }
    assert shown, f"docs/alerts.md shows no sample {name!r}"

    sent = received(db, SAMPLES[name])

    for channel, text in shown.items():
        assert text == sent[channel], (
            f"docs/alerts.md, sample {name!r} on {channel}: the channel received\n{sent[channel]}"
        )


def test_the_docs_show_every_channel_of_the_default_and_the_templated_message() -> None:
    shown = documented(DOCS.read_text())

    for name in ("single", "templated"):
        assert {channel for sample, channel in shown if sample == name} == set(CHANNELS), name
    assert {sample for sample, _ in shown} <= set(SAMPLES)
    assert {channel for _, channel in shown} <= set(CHANNELS)


def test_writing_samples_replaces_only_the_marked_blocks() -> None:
    markdown = "Intro\n<!-- sample: single sms -->\n```\nold words\n```\nOutro ```kept```\n"

    assert rewritten(markdown, {("single", "sms"): "new \\1 words"}) == (
        "Intro\n<!-- sample: single sms -->\n```\nnew \\1 words\n```\nOutro ```kept```\n"
    )
    assert documented(markdown) == {("single", "sms"): "old words"}
