"""Numbers on their way to JSON: one rule, here. NaN and the infinities are not JSON; they become null.

Every place where a float value or a float array becomes JSON goes through these functions: an
alert's values (stored, listed, streamed, posted to a webhook), the webhook body, the stream's
``snapshot`` event and the served snapshot document. numpy's floats come out as plain floats.
:func:`encode_json` is the same rule inside msgspec's encoder (which writes NaN and the infinities
as ``null``), for documents built of msgspec Structs (the served snapshot).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np


def json_number(value: Any) -> float | None:
    """``value`` as a plain float (numpy's too); ``None`` when it is missing, NaN or infinite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def json_values(values: Mapping[str, Any]) -> dict[str, float | None]:
    """``{name: value}`` with every value through :func:`json_number` (an alert's values)."""
    return {str(name): json_number(value) for name, value in values.items()}


def json_document(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth of dicts, lists and tuples, made ``None``.

    Other values are left as they are (a tuple becomes a list, as JSON writes it anyway).
    """
    if isinstance(value, float | np.floating):
        return json_number(value)
    if isinstance(value, Mapping):
        return {key: json_document(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_document(item) for item in value]
    return value


#: Compact JSON bytes of ``value`` (Structs, dicts, lists, numbers...), NaN and the infinities as null.
encode_json = msgspec.json.Encoder().encode


def json_ints(values: np.ndarray) -> list[int | None]:
    """A float array of counts as JSON values: the integer each holds, ``None`` where not finite."""
    missing = ~np.isfinite(values)
    ints: list[int | None] = np.where(missing, 0, values).astype(np.int64).tolist()
    for i in np.flatnonzero(missing).tolist():
        ints[i] = None
    return ints
