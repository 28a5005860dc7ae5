"""What type hints and signatures say, for the converter: a hint split into
its origin and arguments, the fields of a record class, the shape of a
function (its parameters and their hints). Cached: every payload asks.
Imports only perdure._memo."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, get_args, get_origin

from perdure._memo import by_identity

_VAR_POSITIONAL, _VAR_KEYWORD = inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_PLAIN = _POSITIONAL


def _split_hint(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """(origin, arguments) of a hint, seen through Annotated, NewType and TypeVar.
    For a plain class the origin is the class itself, so bare ``list`` means ``list[Any]``."""
    while True:
        origin = get_origin(hint)
        if origin is typing.Annotated:
            hint = get_args(hint)[0]
        elif isinstance(hint, typing.TypeVar):
            hint = hint.__bound__ or Any
        elif hasattr(hint, "__supertype__"):  # typing.NewType
            hint = hint.__supertype__
        else:
            return (hint if origin is None else origin), get_args(hint)


# Every value of every payload. By identity, not equality: Union[A, B] ==
# Union[B, A] and int | None == Optional[int], but a union tries its members
# in order, and an error names the hint as written.
_split = by_identity(_split_hint)


def _is_model(cls: type) -> bool:
    # A pydantic class can only exist once pydantic is imported, so never import it here.
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def _is_record(cls: type) -> bool:
    namedtuple = issubclass(cls, tuple) and hasattr(cls, "_fields")
    return dataclasses.is_dataclass(cls) or typing.is_typeddict(cls) or namedtuple


def _resolve_hints(obj: Any) -> dict[str, Any]:
    """``typing.get_type_hints``, except that a hint that will not resolve becomes ``Any``
    on its own instead of failing the whole lookup."""
    try:
        return typing.get_type_hints(obj)
    except Exception:  # NameError, or whatever an annotation expression raises
        pass
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    globalns = getattr(obj, "__globals__", None) or (vars(module) if module else {})
    localns = dict(vars(obj)) if isinstance(obj, type) else None
    hints: dict[str, Any] = {}
    for name, annotation in getattr(obj, "__annotations__", {}).items():
        holder = types.SimpleNamespace(__annotations__={name: annotation})
        try:
            hints[name] = typing.get_type_hints(holder, globalns, localns)[name]
        except Exception:
            hints[name] = Any
    return hints


@functools.lru_cache(maxsize=1024)
def _fields_of(cls: type) -> dict[str, tuple[Any, bool]]:
    """Field name -> (hint, required) of a dataclass, TypedDict or NamedTuple. Do not mutate."""
    hints = _resolve_hints(cls)
    if dataclasses.is_dataclass(cls):
        return {
            f.name: (
                hints.get(f.name, Any),
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            )
            for f in dataclasses.fields(cls)
            if f.init
        }
    if typing.is_typeddict(cls):
        required: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
        return {name: (hint, name in required) for name, hint in hints.items()}
    defaults = getattr(cls, "_field_defaults", {})
    return {
        name: (hints.get(name, Any), name not in defaults) for name in getattr(cls, "_fields", ())
    }


class _Param(typing.NamedTuple):
    name: str
    kind: inspect._ParameterKind
    hint: Any  # for *args a tuple[X, ...], for **kwargs a dict[str, X]
    where: str


class _Shape(typing.NamedTuple):
    """What the argument and result methods need to know about one function."""

    name: str
    signature: inspect.Signature
    params: tuple[_Param, ...]
    returns: Any
    # Plain positional parameters only (no *args, **kwargs, keyword-only): then
    # (required, accepted) bounds the positional count that fits, without bind().
    positional: tuple[int, int] | None
    result_where: str  # how a payload error names the result


def _build_shape(fn: Callable[..., Any]) -> _Shape:
    source: Any = fn.func if isinstance(fn, functools.partial) else fn
    if inspect.ismethod(source):
        source = source.__func__
    elif inspect.isclass(source):
        source = source.__init__
    elif not inspect.isroutine(source):
        source = type(source).__call__  # a callable instance
    hints = _resolve_hints(inspect.unwrap(source))
    name = str(getattr(fn, "__qualname__", None) or getattr(source, "__qualname__", repr(fn)))
    signature = inspect.signature(fn)  # follows __wrapped__ too, and drops a bound `self`
    params = []
    for param in signature.parameters.values():
        hint = hints.get(param.name, Any)
        if param.kind is _VAR_POSITIONAL:
            hint = types.GenericAlias(tuple, (hint, ...))
        elif param.kind is _VAR_KEYWORD:
            hint = types.GenericAlias(dict, (str, hint))
        params.append(_Param(param.name, param.kind, hint, f"argument {param.name!r} of {name}"))
    returns = fn if inspect.isclass(fn) else hints.get("return", Any)
    positional = None
    if all(p.kind in _PLAIN for p in signature.parameters.values()):
        required = sum(p.default is p.empty for p in signature.parameters.values())
        positional = (required, len(signature.parameters))
    return _Shape(name, signature, tuple(params), returns, positional, f"result of {name}")


_cached_shape = functools.lru_cache(maxsize=4096)(_build_shape)  # on every call and replay


def _shape(fn: Callable[..., Any]) -> _Shape:
    try:
        return _cached_shape(fn)
    except TypeError:  # an unhashable callable: fine, just not cached
        return _build_shape(fn)
