"""A strategy's message template through the real app and actors: saved and shown as written, and
refused at save time with a 422 naming ``template``, the column and why (like a condition)."""

from __future__ import annotations

import pytest

from tests.http.test_users_api import SETTINGS, STRATEGY, client, register_and_login

__all__ = ["client"]

TEMPLATE = "{symbol} ({name}) at {price:,.2f}\nRSI {value:rsi(14):.1f}, 24h {value:percent_change_24h}"


@pytest.fixture
def auth(client) -> dict[str, str]:
    headers = register_and_login(client, "templater")
    assert client.simulate_put("/v1/me/settings", json=SETTINGS, headers=headers).status_code == 200
    return headers


def test_a_template_is_saved_shown_changed_and_cleared(client, auth) -> None:
    created = client.simulate_post("/v1/me/strategies", json={**STRATEGY, "template": TEMPLATE}, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json["template"] == TEMPLATE
    path = f"/v1/me/strategies/{created.json['id']}"
    assert client.simulate_get(path, headers=auth).json["template"] == TEMPLATE

    crlf = client.simulate_patch(path, json={"template": "{symbol}\r\nup"}, headers=auth)
    assert crlf.json["template"] == "{symbol}\nup"  # stored with plain line breaks
    cleared = client.simulate_patch(path, json={"template": None}, headers=auth)
    assert cleared.status_code == 200 and cleared.json["template"] is None
    blank = client.simulate_patch(path, json={"template": "  "}, headers=auth)
    assert blank.json["template"] is None  # only spaces: uBot's own words
    default = client.simulate_post("/v1/me/strategies", json={**STRATEGY, "name": "plain"}, headers=auth)
    assert default.json["template"] is None


@pytest.mark.parametrize(
    ("template", "column", "why"),
    [
        ("{price.__class__}", 7, "attribute access ('.') is not allowed"),
        ("{symbol} {x[0]}", 12, "index access ('[') is not allowed"),
        ("{price!r}", 7, "a conversion ('!') is not allowed"),
        ("{price:>99999}", 8, "is not a plain number format"),
        ("{coin} up", 2, "unknown placeholder {coin}"),
        ("{symbol up", 1, "'{' is never closed"),
        ("up}", 3, "'}' closes no placeholder"),
        ("{value:sma(50)}", 8, "sma(50) is not in the condition"),
    ],
)
def test_a_template_that_cannot_be_used_is_a_422_naming_the_field_the_column_and_why(
    client, auth, template, column, why
) -> None:
    result = client.simulate_post("/v1/me/strategies", json={**STRATEGY, "template": template}, headers=auth)

    assert result.status_code == 422, result.text
    assert (result.json["field"], result.json["column"], result.json["title"]) == (
        "template",
        column,
        "Invalid template",
    )
    assert result.json["description"].startswith("template: ") and why in result.json["description"]
    assert client.simulate_get("/v1/me/strategies", headers=auth).json == {"strategies": []}


def test_a_condition_changed_under_its_template_is_refused_on_the_template(client, auth) -> None:
    created = client.simulate_post("/v1/me/strategies", json={**STRATEGY, "template": TEMPLATE}, headers=auth)
    path = f"/v1/me/strategies/{created.json['id']}"

    result = client.simulate_patch(path, json={"condition": "percent_change_24h > 5"}, headers=auth)

    assert (result.status_code, result.json["field"], result.json["column"]) == (422, "template", 46)
    assert "rsi(14) is not in the condition" in result.json["description"]
    assert client.simulate_get(path, headers=auth).json["condition"] == STRATEGY["condition"]


def test_a_template_too_long_is_refused_naming_it(client, auth) -> None:
    result = client.simulate_post(
        "/v1/me/strategies", json={**STRATEGY, "template": "x" * 1001}, headers=auth
    )

    assert (result.status_code, result.json["field"]) == (400, "template")
    assert "1000" in result.json["description"]
