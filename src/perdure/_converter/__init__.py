"""Payloads: values to JSON and back, steered by type hints (read in ``.hints``, applied
in ``.values``); this module keeps what happens at rest: codecs, envelopes, size limits.

:class:`DataConverter` turns values into JSON-able objects (``to_json``/``from_json``) and those
into bytes (``dumps``/``loads``) through a chain of :class:`PayloadCodec`. With a hint
of ``Any`` the encoding follows the value's runtime type, and decoding returns plain JSON.

At rest: every *top-level* payload the engine stores (an argument, a result, a signal payload,
a state value, a side-effect value, heartbeat details) goes through ``to_json``/``from_json``
(or ``encode_args``/``decode_args``, ``encode_result``/``decode_result``). With codecs, ``to_json``
returns an opaque envelope ``{"__perdure_codec__": 1, "data": "<base64>"}`` holding the codec-
encoded JSON bytes, and ``from_json`` opens it; without codecs the JSON itself is stored. Either
way a payload larger than ``max_payload_bytes`` (as stored) is refused with a
:class:`PayloadError` that names it and its size, where the value is produced.

Supported: ``None``, ``bool``, ``int``, ``float`` (takes an int, never a bool), ``str``;
``list``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``set``, ``frozenset``, ``dict`` and their
``Sequence``/``Mapping``/``Set`` ABCs; ``Optional``, ``Union``, ``X | Y``, ``Literal``,
``Annotated``, ``NewType``, ``Any``, ``object``; dataclasses, ``TypedDict`` and ``NamedTuple``
(each a JSON object keyed by field name); pydantic v2 models; ``datetime``/``date``/``time``
(ISO 8601, offset kept); ``timedelta`` (float seconds: exact to the microsecond under ~140
years); ``UUID`` and ``Decimal`` (strings); enums (by value); ``bytes``/``bytearray`` (base64).

Dict keys are written as strings (str, int, enum, UUID, ... keys; parsed back by the key hint).
Sets are written sorted, so equal values give equal payloads whatever the hash seed. A union
tries its members in order, except that JSON ``3`` goes to an ``int`` member and ``3.0`` to a
``float`` member first, so numbers keep their type in ``int | float``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, Protocol

from perdure._converter.hints import (
    _BY_NAME,
    _POSITIONAL,
    _VAR_KEYWORD,
    _VAR_POSITIONAL,
    _shape,
)
from perdure._converter.values import (
    JSON,
    _Failure,
    decoder_for,
    encoder_for,
    fresh,
)
from perdure._json import encoder
from perdure.errors import PayloadCodecError, PayloadError

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "ENVELOPE_KEY",
    "JSON",
    "DataConverter",
    "PayloadCodec",
    "checked_converter",
    "default_converter",
    "fresh",
]


ENVELOPE_KEY = "__perdure_codec__"
"""The key that marks a codec envelope. A top-level payload may not use it as a dict key."""
_ENVELOPE_VERSION = 1
DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
"""The default ``max_payload_bytes``: 2 MiB per payload as stored."""


class PayloadCodec(Protocol):
    """Transforms payload bytes at rest (compression, encryption); ``decode`` undoes ``encode``.

    ``decode`` raises (any exception) on bytes it cannot read; the converter turns that into
    a :class:`PayloadError` naming the payload."""

    def encode(self, data: bytes) -> bytes: ...

    def decode(self, data: bytes) -> bytes: ...


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# For the size check: to_json's output is a tree (never circular), and escaped ASCII
# is the C encoder's fastest path.
_MEASURE = encoder(separators=(", ", ": "))
_INT64 = 2**63


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < 10 * 1024 else f"{n:,} bytes ({n / 1024 / 1024:.2f} MiB)"


class DataConverter:
    """Encodes values to JSON by their type hints, and JSON to bytes through ``codecs``.

    ``codecs`` apply in order on the way in (so ``[ZlibCodec(), AesGcmCodec(...)]``
    compresses, then encrypts) and in reverse on the way out. ``max_payload_bytes``
    (``None``: no limit) bounds each top-level payload as stored.
    """

    def __init__(
        self,
        codecs: Sequence[PayloadCodec] = (),
        *,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if max_payload_bytes is not None and max_payload_bytes < 1:
            raise ValueError(f"max_payload_bytes must be positive, not {max_payload_bytes}")
        self.codecs: tuple[PayloadCodec, ...] = tuple(codecs)
        self.max_payload_bytes = max_payload_bytes

    def to_json(self, value: Any, hint: Any = Any, *, where: str = "value") -> JSON:
        """``value`` as a JSON-able object, ready to store (an envelope when there are
        codecs); :class:`PayloadError` says where it cannot be, or that it is too large."""
        try:
            data = encoder_for(hint)(value)
        except (_Failure, RecursionError) as error:
            raise _payload_error("encode", where, error) from _cause(error)
        return self._seal(data, where)

    def from_json(self, data: JSON, hint: Any = Any, *, where: str = "value") -> Any:
        """``data`` (as :meth:`to_json` stored it) read back as a value of type ``hint``."""
        if type(data) is dict and ENVELOPE_KEY in data:
            data = self._open(data, where)
        try:
            return decoder_for(hint)(data)
        except (_Failure, RecursionError) as error:
            raise _payload_error("decode", where, error) from _cause(error)

    # ------------------------------------------------------------ at rest

    def _seal(self, data: JSON, where: str) -> JSON:
        """Plain JSON -> what is stored: the JSON itself, or a codec envelope."""
        if type(data) is dict and ENVELOPE_KEY in data:
            raise PayloadError(
                f"cannot encode {where}: the dict key {ENVELOPE_KEY!r} is reserved for "
                f"perdure's codec envelopes"
            )
        limit = self.max_payload_bytes
        if self.codecs:
            try:
                raw = self.dumps(data)
            except PayloadError as error:
                raise PayloadError(f"cannot encode {where}: {error}") from error
            text = base64.b64encode(raw).decode("ascii")
            if limit is not None and len(text) > limit:
                self._too_large(where, len(text), limit, "after its codecs")
            return {ENVELOPE_KEY: _ENVELOPE_VERSION, "data": text}
        kind = type(data)
        if limit is None or data is None or kind is bool or kind is float:
            return data  # at most 24 characters: never near a sensible limit
        if kind is int and -_INT64 <= data < _INT64:
            return data
        if kind is str and 6 * len(data) + 2 <= limit:
            return data  # even fully escaped, this string fits
        try:
            # ASCII-escaped JSON is never shorter than its UTF-8 form (an escape is at least
            # as long as the bytes it stands for): measure exactly only when that bound is over.
            if len(_MEASURE(data)) > limit:
                text = json.dumps(data, ensure_ascii=False)
                size = len(text.encode("utf-8", "surrogatepass"))
                if size > limit:
                    self._too_large(where, size, limit, "as JSON")
        except ValueError as error:  # an int beyond sys.get_int_max_str_digits()
            raise PayloadError(f"cannot encode {where}: {error}") from None
        return data

    @staticmethod
    def _too_large(where: str, size: int, limit: int, form: str) -> NoReturn:
        raise PayloadError(
            f"{where} is too large: {_size(size)} {form}, over the limit of {_size(limit)}; "
            f"store large data elsewhere and pass a reference, or raise the limit with "
            f"DataConverter(max_payload_bytes=...)"
        )

    def _open(self, data: JSON, where: str) -> JSON:
        """What is stored -> plain JSON (the inverse of :meth:`_seal`). An envelope
        this converter cannot open raises :class:`PayloadCodecError`."""
        if type(data) is not dict or ENVELOPE_KEY not in data:
            return data
        if not self.codecs:
            raise PayloadCodecError(
                f"cannot decode {where}: it was stored through payload codecs (encrypted or "
                f"compressed), but this DataConverter has none; configure the same codecs "
                f"(and keys) as the program that wrote it"
            )
        version, text = data.get(ENVELOPE_KEY), data.get("data")
        if version != _ENVELOPE_VERSION or not isinstance(text, str):
            raise PayloadCodecError(
                f"cannot decode {where}: malformed codec envelope (version {version!r}); "
                f"it was written by a newer perdure, or damaged"
            )
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError as error:
            raise PayloadCodecError(
                f"cannot decode {where}: damaged codec envelope: {error}"
            ) from None
        try:
            return self.loads(raw)
        except PayloadError as error:
            raise PayloadCodecError(f"cannot decode {where}: {error}") from error.__cause__

    def display(self, data: JSON, depth: int = 3) -> JSON:
        """Stored JSON opened for people (``describe()``, the CLI, the UI): codec envelopes
        in ``data`` — at the top or within ``depth`` levels of lists and dicts, such as a
        run's ``{"args": [...], "kwargs": {...}}`` or its state — are opened; one that cannot
        be opened (a missing key) is left as stored rather than failing the whole view."""
        if type(data) is dict:
            if ENVELOPE_KEY in data:
                try:
                    return self._open(data, "value")
                except PayloadError:
                    return data
            if depth > 0:
                return {key: self.display(value, depth - 1) for key, value in data.items()}
        elif type(data) is list and depth > 0:
            return [self.display(item, depth - 1) for item in data]
        return data

    def dumps(self, data: JSON) -> bytes:
        """Compact UTF-8 JSON, then each codec in order."""
        try:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            raw = text.encode("utf-8")
        except (TypeError, ValueError, RecursionError) as error:
            raise PayloadError(f"cannot serialise payload: {error}") from error
        for codec in self.codecs:
            raw = codec.encode(raw)
        return raw

    def loads(self, raw: bytes) -> JSON:
        """Undo :meth:`dumps`: the codecs in reverse order, then JSON."""
        try:
            for codec in reversed(self.codecs):
                raw = codec.decode(raw)
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except Exception as error:  # codecs raise what they like on corrupt input (zlib.error)
            raise PayloadError(f"cannot read payload: {error}") from error

    def encode_args(
        self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[list[JSON], dict[str, JSON]]:
        """A call's arguments, encoded by ``fn``'s parameter hints. Arguments left to their
        defaults are not written, so the function's current default applies on replay."""
        shape = _shape(fn)
        fits = shape.positional
        if fits is not None and not kwargs and fits[0] <= len(args) <= fits[1]:
            # Plain positional parameters, filled in order (what bind() would say):
            # each travels by position, and those left to their defaults not at all.
            to_json, params = self.to_json, shape.params
            return [
                to_json(v, p.hint, where=p.where) for p, v in zip(params, args, strict=False)
            ], {}
        try:
            bound = shape.signature.bind(*args, **kwargs).arguments
        except TypeError as error:
            raise TypeError(f"{shape.name}(): {error}") from None
        positional: list[JSON] = []
        keywords: dict[str, JSON] = {}
        # After a parameter left to its default, later ones travel by name: by position,
        # decode_args would shift them into the gap.
        contiguous = True
        for name, kind, hint, where in shape.params:
            if name not in bound:
                contiguous = contiguous and kind is _VAR_POSITIONAL
            elif kind is _VAR_POSITIONAL:
                # Each item is a payload of its own, sealed (and size-checked) alone.
                items = self._guard("encode", encoder_for(hint), bound[name], where)
                positional.extend(
                    self._seal(item, f"{where}[{index}]") for index, item in enumerate(items)
                )
            elif kind is _VAR_KEYWORD:
                items = self._guard("encode", encoder_for(hint), bound[name], where)
                keywords.update(
                    {key: self._seal(v, f"{where}[{key!r}]") for key, v in items.items()}
                )
            elif contiguous and kind in _POSITIONAL:
                positional.append(self.to_json(bound[name], hint, where=where))
            else:
                keywords[name] = self.to_json(bound[name], hint, where=where)
        return positional, keywords

    def decode_args(
        self, fn: Callable[..., Any], args: Sequence[JSON], kwargs: Mapping[str, JSON]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Inverse of :meth:`encode_args`. Arguments that no longer fit ``fn`` (its signature
        changed since they were written) raise :class:`PayloadError`."""
        shape = _shape(fn)
        fits = shape.positional
        if fits is not None and not kwargs and fits[0] <= len(args) <= fits[1]:
            # Plain positional parameters, and arguments that fit them: what the
            # general way below would decode, and bind() accept.
            from_json, params = self.from_json, shape.params
            decoded = [
                from_json(a, p.hint, where=p.where) for p, a in zip(params, args, strict=False)
            ]
            return decoded, {}
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        extra = dict(kwargs)
        for name, kind, hint, where in shape.params:
            if kind in _POSITIONAL and len(positional) < len(args):
                positional.append(self.from_json(args[len(positional)], hint, where=where))
            elif kind is _VAR_POSITIONAL:
                rest = [
                    self._open(item, f"{where}[{index}]")
                    for index, item in enumerate(args[len(positional) :])
                ]
                positional.extend(self._guard("decode", decoder_for(hint), rest, where))
            elif kind is _VAR_KEYWORD:
                opened = {key: self._open(v, f"{where}[{key!r}]") for key, v in extra.items()}
                extra = self._guard("decode", decoder_for(hint), opened, where)
            if kind in _BY_NAME and name in extra:
                keywords[name] = self.from_json(extra.pop(name), hint, where=where)
        positional.extend(args[len(positional) :])  # surplus and unknown names: bind() reports
        keywords.update(extra)
        if fits is not None and not keywords and fits[0] <= len(positional) <= fits[1]:
            return positional, keywords  # what bind() would accept, without its cost
        try:
            shape.signature.bind(*positional, **keywords)
        except TypeError as error:
            raise PayloadError(f"cannot decode arguments of {shape.name}: {error}") from None
        return positional, keywords

    def encode_result(self, fn: Callable[..., Any], value: Any) -> JSON:
        """``fn``'s result encoded by its return hint (``X`` for ``async def f() -> X``)."""
        shape = _shape(fn)
        return self.to_json(value, shape.returns, where=shape.result_where)

    def decode_result(self, fn: Callable[..., Any], data: JSON) -> Any:
        """Inverse of :meth:`encode_result`."""
        shape = _shape(fn)
        return self.from_json(data, shape.returns, where=shape.result_where)

    @staticmethod
    def _guard(verb: str, step: Callable[[Any], Any], data: Any, where: str) -> Any:
        """Run ``step`` (an encoder_for or decoder_for), turning an inner failure
        into a PayloadError that says where it was."""
        try:
            return step(data)
        except (_Failure, RecursionError) as error:
            raise _payload_error(verb, where, error) from _cause(error)


def _payload_error(verb: str, where: str, error: _Failure | RecursionError) -> PayloadError:
    """The PayloadError for a failure to encode or decode ``where``."""
    if isinstance(error, RecursionError):  # also how a circular structure ends
        return PayloadError(f"cannot {verb} {where}: it is nested too deeply, or contains itself")
    if error.path:
        where = f"{where} at {''.join(reversed(error.path)).lstrip('.')}"
    return PayloadError(f"cannot {verb} {where}: {error.message}")


def _cause(error: _Failure | RecursionError) -> BaseException | None:
    """What a PayloadError is raised from: the failure's own cause (a parser's
    error, say); nothing for a RecursionError."""
    return error.__cause__ if isinstance(error, _Failure) else None


default_converter = DataConverter()
"""The converter used when none is configured: plain JSON, no codecs."""


def checked_converter(converter: DataConverter | None) -> DataConverter:
    """A client's converter: ``converter``, or the default for None."""
    if converter is not None and not isinstance(converter, DataConverter):
        raise TypeError(
            f"converter must be a perdure.DataConverter (or None for the default), "
            f"not {type(converter).__name__} {converter!r}"
        )
    return converter or default_converter
