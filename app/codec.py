"""The one codec between our frozen dataclasses and JSON.

Used only where a value crosses a file or a pipe: the service's ``status.json``, ``last_result.json``, the
replies to ``sync`` requests, the dialog protocol, the manifest's last result. Everywhere else values stay
typed (enums, datetimes, paths). Decoding is strict and driven by the dataclass's type hints: a wrong type,
an unknown enum value, a non-finite or out-of-range number raises :class:`CodecError` with one line naming
the field; unknown keys are ignored (a newer writer may add some); a missing key takes the field's default.

Supported field types: ``str``, ``int``, ``float``, ``bool``, enums (by value), ``datetime`` (ISO 8601),
``Path``, nested dataclasses, ``X | None``, ``tuple[X, ...]`` and ``list[X]``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
import typing
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, Union

T = TypeVar("T")
INT_RANGE = (-(1 << 63), (1 << 63) - 1)
MAX_DEPTH = 8  # our dataclasses nest two deep; anything deeper is not ours


class CodecError(ValueError):
    """A JSON value does not fit the dataclass it should become; ``str(e)`` is one line."""


def to_json(value: Any) -> Any:
    """A JSON-ready copy of a dataclass (recursively): enums by value, datetimes and paths as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def dumps(value: Any, *, indent: int | None = None) -> bytes:
    """``to_json`` as UTF-8 bytes."""
    return json.dumps(to_json(value), ensure_ascii=False, indent=indent).encode()


def from_json(cls: type[T], data: object) -> T:
    """Build ``cls`` (a dataclass) from parsed JSON; CodecError when anything does not fit."""
    return typing.cast(T, _decode(cls, data, cls.__name__, 0))


def loads(cls: type[T], raw: bytes | str) -> T:
    """Parse JSON text and build ``cls``; CodecError for bad JSON too."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"not valid JSON ({str(exc)[:80]})") from None
    return from_json(cls, data)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(tp: Any, data: object, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CodecError(f"{where}: nested too deeply")
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(option, data, where, depth)
            except CodecError as exc:
                errors.append(str(exc))
        raise CodecError(errors[0] if len(errors) == 1 else f"{where}: {_show(data)} fits none of its types")
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if not isinstance(data, list):
            raise CodecError(f"{where}: expected a list, got {_show(data)}")
        item = args[0] if args else Any
        items = [_decode(item, v, f"{where}[{i}]", depth + 1) for i, v in enumerate(data)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return data
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, data, where, depth)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError:
            raise CodecError(f"{where}: unknown value {_show(data)}") from None
    return _decode_scalar(tp, data, where)


def _decode_dataclass(tp: Any, data: object, where: str, depth: int) -> Any:
    if not isinstance(data, dict):
        raise CodecError(f"{where}: expected an object, got {_show(data)}")
    hints = _hints(tp)
    values = {}
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        if f.name in data:
            values[f.name] = _decode(hints[f.name], data[f.name], f"{where}.{f.name}", depth + 1)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise CodecError(f"{where}: {f.name} is missing")
    return tp(**values)


def _decode_scalar(tp: Any, data: object, where: str) -> Any:
    if tp is bool:
        if isinstance(data, bool):
            return data
    elif tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            if not INT_RANGE[0] <= data <= INT_RANGE[1]:
                raise CodecError(f"{where}: {_show(data)} is out of range")
            return data
    elif tp is float:
        if isinstance(data, int | float) and not isinstance(data, bool):
            if not math.isfinite(data) or abs(data) > 1e15:
                raise CodecError(f"{where}: {_show(data)} is out of range")
            return float(data)
    elif tp is str:
        if isinstance(data, str):
            return data
    elif tp is datetime:
        if isinstance(data, str):
            try:
                return datetime.fromisoformat(data)
            except ValueError:
                raise CodecError(f"{where}: not a time: {_show(data)}") from None
    elif tp is Path:
        if isinstance(data, str) and "\0" not in data:
            return Path(data)
    else:
        raise TypeError(f"{where}: the codec cannot decode {tp!r}")  # a programming error, not bad data
    raise CodecError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {_show(data)}")


def _show(value: object) -> str:
    text = (
        json.dumps(value, ensure_ascii=False, default=repr) if not isinstance(value, float) else repr(value)
    )
    text = text.replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."
