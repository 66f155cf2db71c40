"""JSON for the team service: the library's dataclasses travel between the service and its
clients and come out as the same classes, so widgets and notebooks cannot tell a remote
knowledge base from a local one.

A dataclass is written as ``{"@": "module:Class", ...fields}``; tuples, sets and paths as
tagged lists and strings. Only dataclasses of this project's own modules are rebuilt on the
way back (`decode` refuses anything else), and the receiver says which ones it accepts.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path, PurePath
from typing import Any, Iterable

from indexer.errors import KBError

TYPE_KEY = "@"
OWN_MODULES = ("kb.", "indexer.")


class WireError(KBError):
    """A message that is not what the other side may send."""


def type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def encode(value: Any) -> Any:
    """`value` as plain JSON types; dataclasses keep their class name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {TYPE_KEY: type_name(type(value))}
        for f in dataclasses.fields(value):
            out[f.name] = encode(getattr(value, f.name))
        return out
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {TYPE_KEY: "tuple", "items": [encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {TYPE_KEY: "set", "items": [encode(v) for v in sorted(value, key=repr)]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, PurePath):
        return {TYPE_KEY: "path", "value": str(value)}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    raise WireError(f"无法传送 {type(value).__name__} 类型的值")


def decode(value: Any, allowed: Iterable[type] | None = None) -> Any:
    """The inverse of `encode`. `allowed` limits which dataclasses may be rebuilt (the service
    accepts only the few its methods take); None allows this project's own dataclasses."""
    allowed_names = None if allowed is None else {type_name(c) for c in allowed}
    return _decode(value, allowed_names)


def _decode(value: Any, allowed: set[str] | None) -> Any:
    if isinstance(value, list):
        return [_decode(v, allowed) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TYPE_KEY)
    if tag is None:
        return {k: _decode(v, allowed) for k, v in value.items()}
    if tag == "tuple":
        return tuple(_decode(v, allowed) for v in value.get("items", []))
    if tag == "set":
        return {_decode(v, allowed) for v in value.get("items", [])}
    if tag == "path":
        return Path(value.get("value", ""))
    return _rebuild(tag, value, allowed)


def _rebuild(tag: str, value: dict, allowed: set[str] | None) -> Any:
    if allowed is not None and tag not in allowed:
        raise WireError(f"不接受 {tag} 类型的参数")
    module_name, _, qualname = str(tag).partition(":")
    if not module_name.startswith(OWN_MODULES) or not qualname:
        raise WireError(f"未知的数据类型 {tag}")
    try:
        cls: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError) as exc:
        raise WireError(f"未知的数据类型 {tag}") from exc
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise WireError(f"未知的数据类型 {tag}")
    # Built without __init__: the values were checked when the sender made the object, and
    # fields with init=False must come back too. Missing fields (an older sender) get defaults.
    obj = object.__new__(cls)
    for f in dataclasses.fields(cls):
        if f.name in value:
            field_value = _decode(value[f.name], allowed)
        elif f.default is not dataclasses.MISSING:
            field_value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            field_value = f.default_factory()
        else:
            raise WireError(f"{tag} 缺少字段 {f.name}")
        object.__setattr__(obj, f.name, field_value)
    return obj


def plain(value: Any) -> Any:
    """`value` as plain JSON for readers outside the project (the REST endpoints): dataclasses
    become objects of their fields, without class names."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return encode(value)
