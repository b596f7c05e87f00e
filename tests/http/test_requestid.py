"""Request ids: kept when sane, else generated; echoed; on req.context; in the log lines."""

from __future__ import annotations

import logging
import re

import falcon
import pytest

from tests.http.protection_app import client
from ubot.http.requestid import (
    LOG_FORMAT,
    RequestId,
    RequestIdFilter,
    current_request_id,
    install_request_id_logging,
)

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("incoming", ["abc", "req-42_x.y", "A" * 128, "0"])
def test_a_sane_incoming_id_is_kept(incoming):
    result = client().simulate_get("/v1/global", headers={"X-Request-ID": incoming})
    assert result.headers["X-Request-ID"] == incoming
    assert result.json["request_id"] == incoming  # req.context.request_id


@pytest.mark.parametrize("incoming", ["", "A" * 129, "has space", "semi;colon", "new\\nline", "ünï", "a/b"])
def test_an_odd_incoming_id_is_replaced(incoming):
    result = client().simulate_get("/v1/global", headers={"X-Request-ID": incoming})
    assert HEX32.fullmatch(result.headers["X-Request-ID"])
    assert result.json["request_id"] == result.headers["X-Request-ID"]


def test_each_request_gets_its_own_id_errors_included():
    app = client()
    ids = {
        app.simulate_get(path).headers["X-Request-ID"] for path in ("/v1/global", "/v1/nowhere", "/v1/crash")
    }
    assert len(ids) == 3 and all(HEX32.fullmatch(i) for i in ids)


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")
def test_a_method_falcon_refuses_before_any_middleware_still_gets_an_id():
    result = client().simulate_request("WEBSOCKET", "/v1/global")
    assert result.status_code == 400
    assert HEX32.fullmatch(result.headers["X-Request-ID"])


def test_log_lines_during_the_request_carry_its_id(caplog):
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        result = client().simulate_get("/v1/global", headers={"X-Request-ID": "trace-1"})
        logging.getLogger("ubot.test").info("after the request")
    served = [r for r in caplog.records if r.getMessage() == "serving /v1/global"]
    assert [r.request_id for r in served] == ["trace-1"]
    access = [r for r in caplog.records if r.name == "ubot.access"]
    assert [r.request_id for r in access] == ["trace-1"]
    after = [r for r in caplog.records if r.getMessage() == "after the request"]
    assert [r.request_id for r in after] == ["-"]
    assert result.status_code == 200
    assert current_request_id() is None


def test_the_id_is_reset_after_the_response():
    middleware = RequestId()
    req = falcon.testing.create_req(headers={"X-Request-ID": "one"})
    resp = falcon.Response()
    middleware.process_request(req, resp)
    assert current_request_id() == "one"
    middleware.process_response(req, resp, None, True)
    assert current_request_id() is None
    assert resp.get_header("X-Request-ID") == "one"


def test_install_puts_one_filter_on_each_root_handler():
    logger = logging.getLogger("ubot.test.install")
    logger.propagate = False
    first, second = logging.StreamHandler(), logging.StreamHandler()
    logger.addHandler(first)
    logger.addHandler(second)
    try:
        install_request_id_logging(logger)
        install_request_id_logging(logger)  # again: nothing more
        for handler in (first, second):
            assert sum(isinstance(f, RequestIdFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(first)
        logger.removeHandler(second)


def test_the_format_shows_the_id(tmp_path):
    logger = logging.getLogger("ubot.test.format")
    logger.propagate = False
    path = tmp_path / "log.txt"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    try:
        install_request_id_logging(logger)
        logger.warning("outside")
        middleware = RequestId()
        req, resp = falcon.testing.create_req(headers={"X-Request-ID": "abc"}), falcon.Response()
        middleware.process_request(req, resp)
        logger.warning("inside")
        middleware.process_response(req, resp, None, True)
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith("WARNING ubot.test.format: outside")
    assert lines[1].endswith("WARNING ubot.test.format [abc]: inside")
