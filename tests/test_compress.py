"""gzip: the rules of ``ubot/http/compress.py`` on a small app, then the real app over real actors."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator

import falcon
import pytest
from falcon.testing import TestClient

from tests.http.support import DEADLINE_S, gateway_of
from ubot.http.app import create_app
from ubot.http.compress import MIN_BYTES, Compression, GzipCache, accepts_gzip
from ubot.market.simulated import SimulatedSource
from ubot.system import start_system, stop_system

GZIP = {"Accept-Encoding": "gzip, deflate, br"}
BIG = b'{"coins":[' + b",".join(b'{"id":%d,"price":%d.5}' % (n, n) for n in range(2000)) + b"]}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("br, *;q=0.1", True),
        ("gzip;q=0", False),
        ("gzip;q=0, *", False),  # named wins over *
        ("*;q=0", False),
        ("identity", False),
        ("deflate, br", False),
        ("gzip;q=nan", False),
        ("gzip;q=abc", False),
        ("gzip ; q=0.001", True),
    ],
)
def test_accepts_gzip(header, expected) -> None:
    assert accepts_gzip(header) is expected


# -- the rules, on a small app ---------------------------------------------------------------------


class Snapshot:
    """Like /v1/snapshot: the same bytes object for everyone, a strong ETag, 304 on a match."""

    def __init__(self, body: bytes, etag: str) -> None:
        self.body, self.etag = body, etag

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.etag = self.etag
        held = {tag.strip().removeprefix("W/") for tag in (req.get_header("If-None-Match") or "").split(",")}
        if self.etag in held:
            resp.status = falcon.HTTP_304
            return
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.body


class Media:
    def __init__(self, doc: object) -> None:
        self.doc = doc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.doc


class Stream:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = req.get_param("type", default="text/event-stream")
        resp.stream = iter([b"data: " + b"x" * 5000 + b"\n\n"])


class Text:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "x" * 5000


@pytest.fixture
def small() -> tuple[TestClient, Compression, Snapshot]:
    compression = Compression(cache=GzipCache())
    app = falcon.App(middleware=[compression])
    snapshot = Snapshot(BIG, '"abc-1"')
    app.add_route("/snapshot", snapshot)
    app.add_route("/media", Media({"rows": list(range(1000))}))
    app.add_route("/tiny", Media({"ok": True}))
    app.add_route("/stream", Stream())
    app.add_route("/text", Text())
    return TestClient(app), compression, snapshot


def vary(result) -> list[str]:
    return [item.strip() for item in result.headers.get("vary", "").split(",") if item.strip()]


def test_json_is_gzipped_when_accepted(small) -> None:
    client, _, _ = small
    result = client.simulate_get("/media", headers=GZIP)
    assert result.headers["content-encoding"] == "gzip"
    assert int(result.headers["content-length"]) == len(result.content)
    assert gzip.decompress(result.content) == client.simulate_get("/media").content
    assert vary(result) == ["Accept-Encoding"]


def test_identity_when_not_accepted_but_vary_all_the_same(small) -> None:
    client, _, _ = small
    for headers in ({}, {"Accept-Encoding": "gzip;q=0"}, {"Accept-Encoding": "br"}):
        result = client.simulate_get("/media", headers=headers)
        assert "content-encoding" not in result.headers
        assert result.json == {"rows": list(range(1000))}
        assert vary(result) == ["Accept-Encoding"]


def test_small_bodies_are_sent_as_they_are(small) -> None:
    client, _, _ = small
    result = client.simulate_get("/tiny", headers=GZIP)
    assert len(result.content) < MIN_BYTES
    assert "content-encoding" not in result.headers
    assert result.json == {"ok": True}


@pytest.mark.parametrize("kind", ["text/event-stream", "application/json"])
def test_a_stream_is_never_compressed(small, kind) -> None:
    client, _, _ = small
    result = client.simulate_get("/stream", params={"type": kind}, headers=GZIP)
    assert "content-encoding" not in result.headers
    assert result.content.startswith(b"data: xxx")


def test_only_json_is_compressed(small) -> None:
    client, _, _ = small
    result = client.simulate_get("/text", headers=GZIP)
    assert "content-encoding" not in result.headers
    assert "vary" not in result.headers


def test_errors_keep_their_shape(small) -> None:
    client, _, _ = small
    result = client.simulate_get("/nowhere", headers=GZIP)
    assert result.status_code == 404
    assert "content-encoding" not in result.headers
    assert result.json["title"]


def test_a_gzipped_answer_has_the_weak_etag_and_either_form_revalidates(small) -> None:
    client, _, snapshot = small
    plain = client.simulate_get("/snapshot")
    packed = client.simulate_get("/snapshot", headers=GZIP)
    assert plain.headers["etag"] == '"abc-1"'
    assert packed.headers["etag"] == 'W/"abc-1"'
    assert gzip.decompress(packed.content) == plain.content == BIG
    # The client holding the gzipped answer revalidates with the weak form, and keeps it.
    again = client.simulate_get("/snapshot", headers={**GZIP, "If-None-Match": 'W/"abc-1"'})
    assert again.status_code == 304
    assert again.headers["etag"] == 'W/"abc-1"'
    assert vary(again) == ["Accept-Encoding"]
    assert again.content == b""
    # The one holding the identity answer keeps the strong one, even when it now accepts gzip.
    for headers in ({"If-None-Match": '"abc-1"'}, {**GZIP, "If-None-Match": '"abc-1"'}):
        held = client.simulate_get("/snapshot", headers=headers)
        assert held.status_code == 304
        assert held.headers["etag"] == '"abc-1"'
    # A new tick: a new body, a new ETag; the old one no longer matches.
    snapshot.body, snapshot.etag = BIG.replace(b"2.5", b"3.5"), '"abc-2"'
    fresh = client.simulate_get("/snapshot", headers={**GZIP, "If-None-Match": 'W/"abc-1"'})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == 'W/"abc-2"'
    assert gzip.decompress(fresh.content) == snapshot.body


def test_the_snapshot_is_compressed_once_per_tick(small) -> None:
    client, compression, snapshot = small
    answers = []

    def fetch() -> None:
        answers.append(client.simulate_get("/snapshot", headers=GZIP).content)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert compression.cache.compressions == 1
    assert len(set(answers)) == 1 and gzip.decompress(answers[0]) == BIG
    snapshot.body, snapshot.etag = BIG.replace(b"2.5", b"3.5"), '"abc-2"'  # the next tick
    client.simulate_get("/snapshot", headers=GZIP)
    client.simulate_get("/snapshot", headers=GZIP)
    assert compression.cache.compressions == 2


def test_two_bodies_that_share_an_etag_are_never_mixed_up() -> None:
    cache = GzipCache()
    first, second = b"a" * 2000, b"b" * 2000
    assert gzip.decompress(cache.gzip('"same"', first)) == first
    assert gzip.decompress(cache.gzip('"same"', second)) == second
    assert gzip.decompress(cache.gzip('"same"', bytes(second))) == second  # equal, not identical
    assert cache.compressions == 2


def test_the_cache_holds_a_bounded_number_of_bytes() -> None:
    cache = GzipCache(max_bytes=5000)
    bodies = [bytes([65 + n]) * 2000 for n in range(3)]
    for n, body in enumerate(bodies):
        cache.gzip(f'"{n}"', body)
        assert cache.held_bytes <= 5000
    cache.gzip('"2"', bodies[2])
    cache.gzip('"1"', bodies[1])
    assert cache.compressions == 3  # the two newest were kept
    cache.gzip('"0"', bodies[0])
    assert cache.compressions == 4
    huge = GzipCache(max_bytes=10)
    huge.gzip('"big"', bodies[0])
    huge.gzip('"big"', bodies[0])
    assert huge.compressions == 1  # the newest always stays, whatever its size


def test_the_cache_keeps_a_few_entries() -> None:
    cache = GzipCache(entries=2)
    bodies = {f'"{n}"': bytes([65 + n]) * 2000 for n in range(3)}
    for etag, body in bodies.items():
        cache.gzip(etag, body)
    cache.gzip('"2"', bodies['"2"'])
    assert cache.compressions == 3
    cache.gzip('"0"', bodies['"0"'])  # the oldest was dropped
    assert cache.compressions == 4


# -- the real app, over real actors ----------------------------------------------------------------


@pytest.fixture
def real(db) -> Iterator[TestClient]:
    done = threading.Event()
    actors = start_system(
        db, SimulatedSource(limit=500), interval_s=0, max_ticks=1, on_finished=lambda why: done.set()
    )
    try:
        assert done.wait(DEADLINE_S), "the tick did not finish"
        yield TestClient(create_app(gateway_of(actors)))
    finally:
        stop_system(actors, timeout=10)


def test_the_real_snapshot_gzipped(real) -> None:
    plain = real.simulate_get("/v1/snapshot")
    packed = real.simulate_get("/v1/snapshot", headers=GZIP)
    assert plain.status_code == packed.status_code == 200
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert gzip.decompress(packed.content) == plain.content
    assert len(packed.content) * 3 < len(plain.content)
    assert "Accept-Encoding" in vary(plain) and "Accept-Encoding" in vary(packed)
    assert packed.headers["etag"] == "W/" + plain.headers["etag"]
    revalidated = real.simulate_get("/v1/snapshot", headers={**GZIP, "If-None-Match": packed.headers["etag"]})
    assert revalidated.status_code == 304
    assert revalidated.headers["etag"] == packed.headers["etag"]


def test_real_history_and_the_document_are_gzipped(real) -> None:
    for path in ("/openapi.json", "/v1/coins/BTC/quotes"):
        plain = real.simulate_get(path)
        packed = real.simulate_get(path, headers=GZIP)
        assert plain.status_code == 200, plain.text
        if len(plain.content) >= MIN_BYTES:
            assert packed.headers["content-encoding"] == "gzip", path
            assert gzip.decompress(packed.content) == plain.content
        assert "Accept-Encoding" in vary(packed)
