"""The data converter: round trips of every supported type, error messages, codecs."""

import base64
import dataclasses
import enum
import functools
import json
import math
import os
import socket
import subprocess
import sys
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, NewType, Optional, TypedDict, Union
from uuid import UUID

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import perdure.errors
from perdure import codecs
from perdure._converter import ENVELOPE_KEY, DataConverter, default_converter
from perdure.errors import PayloadError

# ------------------------------------------------------------------ fixtures


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Size(str, enum.Enum):  # noqa: UP042 (the str-mixin form is what is tested)
    S = "s"
    M = "m"


@dataclasses.dataclass
class Item:
    sku: str
    price: Decimal
    colors: list[Color]


@dataclasses.dataclass
class Order:
    id: UUID
    placed: datetime
    items: list[Item]
    note: Optional[str] = None
    tags: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass(frozen=True)
class Event:
    at: datetime
    level: Level
    history: list[datetime]


class Point(NamedTuple):
    x: int
    y: float = 0.0


class Movie(TypedDict, total=False):
    title: str
    year: int


class Customer(pydantic.BaseModel):
    name: str
    joined: datetime
    orders: list[int] = []


UserId = NewType("UserId", int)

UTC = UTC
PARIS = timezone(timedelta(hours=2))
AT = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=PARIS)


def round_trip(value: Any, hint: Any = Any, converter: DataConverter = default_converter) -> Any:
    data = converter.to_json(value, hint)
    return converter.from_json(converter.loads(converter.dumps(data)), hint)


# ------------------------------------------------------------------ round trips

ROUND_TRIPS: list[tuple[Any, Any]] = [
    (None, None),
    (None, type(None)),
    (True, bool),
    (42, int),
    (-(2**70), int),
    (1.5, float),
    ("héllo ✓", str),
    ([1, 2, 3], list[int]),
    ((1, 2), tuple[int, ...]),
    ((1, "a", 2.5), tuple[int, str, float]),
    ({1, 2, 3}, set[int]),
    (frozenset({"a", "b"}), frozenset[str]),
    ({"a": 1}, dict[str, int]),
    ({1: "a", 2: "b"}, dict[int, str]),
    ({Color.RED: 1}, dict[Color, int]),
    ({Level.HIGH: [1]}, dict[Level, list[int]]),
    ({UUID(int=7): True}, dict[UUID, bool]),
    ([1, 2], Sequence[int]),
    ({"a": [1.5]}, Mapping[str, list[float]]),
    (None, Optional[int]),
    (3, Optional[int]),
    ("x", Union[int, str]),
    (3, int | float),
    (3.0, int | float),
    (3, float | int),
    ("b", Literal["a", "b"]),
    (Color.GREEN, Literal[Color.GREEN]),
    ({"a": [1, None]}, Any),
    ({"a": [1, None]}, object),
    (AT, datetime),
    (datetime(2024, 1, 1, 0, 0), datetime),
    (datetime(2024, 1, 1, tzinfo=UTC), datetime),
    (date(2024, 2, 29), date),
    (time(23, 59, 1, 5), time),
    (timedelta(days=3, seconds=5, microseconds=7), timedelta),
    (timedelta(seconds=-1.5), timedelta),
    (timedelta.max, timedelta),  # its seconds' float rounds one past it: read back as max
    (timedelta.min, timedelta),
    (UUID("12345678-1234-5678-1234-567812345678"), UUID),
    (Decimal("3.14159265358979323846264338327950288"), Decimal),
    (Color.RED, Color),
    (Level.HIGH, Level),
    (Size.M, Size),
    (b"\x00\xffbytes", bytes),
    (bytearray(b"abc"), bytearray),
    (Point(1, 2.5), Point),
    ([Point(1), Point(2, 3.0)], list[Point]),
    ({"title": "Alien"}, Movie),
    (UserId(5), UserId),
    (5, Annotated[int, "meta"]),
    (Item("a", Decimal("1.10"), [Color.RED]), Item),
    (
        Order(UUID(int=1), AT, [Item("a", Decimal("0.1"), [])], note="hi", tags={"x", "y"}),
        Order,
    ),
]


def _case_id(value: object) -> str:
    """A case's test id: its repr, a set's sorted (the ids must be the same in
    every process that collects the suite: pytest-xdist compares them, and a
    set of strings is ordered by hashes that differ from process to process)."""
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}({sorted(value, key=repr)!r})"[:40]
    return repr(value)[:40]


@pytest.mark.parametrize(("value", "hint"), ROUND_TRIPS, ids=_case_id)
def test_round_trip(value: Any, hint: Any) -> None:
    back = round_trip(value, hint)
    assert back == value
    assert type(back) is type(value)


def test_round_trip_keeps_timezone_and_decimal_precision() -> None:
    assert round_trip(AT, datetime).utcoffset() == timedelta(hours=2)
    assert str(round_trip(Decimal("1.10"), Decimal)) == "1.10"


def test_str_enum_round_trip() -> None:
    class Mode(enum.StrEnum):
        FAST = "fast"

    assert default_converter.to_json(Mode.FAST) == "fast"
    assert round_trip(Mode.FAST, Mode) is Mode.FAST


def test_encoding_without_a_hint_follows_the_runtime_type() -> None:
    value = {
        "when": AT,
        "color": Color.RED,
        "level": Level.LOW,
        "ids": {UUID(int=2)},
        "raw": b"hi",
        "price": Decimal("2.50"),
        "wait": timedelta(minutes=1),
        "point": Point(1, 2.0),
        "item": Item("s", Decimal(1), [Color.GREEN]),
    }
    assert default_converter.to_json(value) == {
        "when": "2024-05-17T12:30:45.123456+02:00",
        "color": "red",
        "level": 1,
        "ids": ["00000000-0000-0000-0000-000000000002"],
        "raw": "aGk=",
        "price": "2.50",
        "wait": 60.0,
        "point": {"x": 1, "y": 2.0},
        "item": {"sku": "s", "price": "1", "colors": ["green"]},
    }


def test_nested_dataclasses_with_enums_and_datetimes() -> None:
    events = [Event(AT, Level.HIGH, [AT, AT + timedelta(days=1)]), Event(AT, Level.LOW, [])]
    data = default_converter.to_json(events, list[Event])
    assert data[0] == {
        "at": AT.isoformat(),
        "level": 2,
        "history": [AT.isoformat(), (AT + timedelta(days=1)).isoformat()],
    }
    assert round_trip(events, list[Event]) == events


def test_union_decoding_prefers_the_exact_number_type() -> None:
    assert type(default_converter.from_json(3, float | int)) is int
    assert type(default_converter.from_json(3.0, int | float)) is float
    assert type(default_converter.from_json(3, Optional[float])) is float


def test_sets_are_written_in_a_stable_order() -> None:
    assert default_converter.to_json({"b", "c", "a"}) == ["a", "b", "c"]
    assert default_converter.to_json({1, "a"}) == default_converter.to_json({"a", 1})


def test_missing_optional_dataclass_fields_take_their_defaults() -> None:
    data = {"id": str(UUID(int=1)), "placed": AT.isoformat(), "items": []}
    assert default_converter.from_json(data, Order) == Order(UUID(int=1), AT, [])


def test_pydantic_model_round_trip() -> None:
    customer = Customer(name="Ada", joined=AT, orders=[1, 2])
    data = default_converter.to_json(customer, Customer)
    assert data == {"name": "Ada", "joined": "2024-05-17T12:30:45.123456+02:00", "orders": [1, 2]}
    assert round_trip(customer, Customer) == customer
    assert round_trip([customer], list[Customer]) == [customer]
    assert default_converter.to_json(customer) == data  # inferred without a hint


def test_pydantic_validation_error_becomes_payload_error() -> None:
    with pytest.raises(PayloadError, match=r"cannot decode value at \[0\]: invalid Customer"):
        default_converter.from_json([{"name": "Ada"}], list[Customer])


def test_module_does_not_import_pydantic() -> None:
    # A bare stand-in for the package, so that only _converter's own imports count.
    package = os.path.dirname(perdure.errors.__file__)
    code = (
        "import sys, types; pkg = types.ModuleType('perdure'); pkg.__path__ = [sys.argv[1]]; "
        "sys.modules['perdure'] = pkg; import perdure._converter; "
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'"
    )
    subprocess.run([sys.executable, "-c", code, package], check=True)


# ------------------------------------------------------------------ errors


def test_unencodable_value_names_where_and_type() -> None:
    with socket.socket() as sock, pytest.raises(PayloadError) as caught:
        default_converter.to_json(sock, where="argument 'x'")
    assert str(caught.value) == (
        "cannot encode argument 'x': object of type socket is not JSON-serialisable"
    )


def test_error_names_the_path_inside_the_value() -> None:
    order = Order(UUID(int=1), AT, [Item("a", Decimal(1), []), Item("b", object(), [])])  # type: ignore[arg-type]
    with pytest.raises(PayloadError) as caught:
        default_converter.to_json(order, Order, where="argument 'order'")
    assert str(caught.value).startswith(
        "cannot encode argument 'order' at items[1].price: expected Decimal, got object <object"
    )
    assert "argument 'order' at items[1].price: expected Decimal" in str(caught.value)


def test_decode_error_names_path_expected_and_found() -> None:
    with pytest.raises(PayloadError) as caught:
        default_converter.from_json({"a": [1, "x"]}, dict[str, list[int]], where="result of f")
    assert str(caught.value) == "cannot decode result of f at ['a'][1]: expected int, got str 'x'"


@pytest.mark.parametrize(
    ("value", "hint", "message"),
    [
        (object(), Any, "object of type object is not JSON-serialisable"),
        (len, Any, "object of type builtin_function_or_method is not JSON-serialisable"),
        (lambda: 1, Any, "object of type function is not JSON-serialisable"),
        (True, int, "expected int, got bool True"),
        ("3", int, "expected int, got str '3'"),
        ([1, "a"], list[int], "at [1]: expected int, got str 'a'"),
        ((1, 2), tuple[int, int, int], "expected tuple[int, int, int], got 2 items"),
        ({"a": 1}, dict[int, int], "at ['a']: expected int, got str 'a'"),
        ({(1, 2): 1}, Any, "a dict key of type tuple is not supported"),
        ({1: "a", "1": "b"}, Any, "two keys are both written as '1'"),
        ("c", Literal["a", "b"], "expected Literal['a', 'b'], got str 'c'"),
        ([1], Optional[int], "expected Optional[int], got list [1]"),
        ({"a": {"b": object()}}, Optional[dict[str, Any]], "at ['a']['b']: object of type object"),
        ({"title": "x", "rating": 5}, Movie, "unknown keys for Movie: rating"),
    ],
)
def test_encode_errors(value: Any, hint: Any, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        default_converter.to_json(value, hint)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("data", "hint", "message"),
    [
        (True, int, "expected int, got bool True"),
        (1, bool, "expected bool, got int 1"),
        ("1.5", float, "expected float, got str '1.5'"),
        (10**400, float, "expected float, got int 1000"),
        (None, int, "expected int, got None"),
        ("yesterday", datetime, "expected datetime, got str 'yesterday'"),
        ("not-a-uuid", UUID, "expected UUID, got str 'not-a-uuid'"),
        ("1.2.3", Decimal, "expected Decimal, got str '1.2.3'"),
        ("%%%", bytes, "expected bytes, got str '%%%'"),
        ("blue", Color, "expected Color, got str 'blue'"),
        (3, Level, "expected Level, got int 3"),
        ([1, 2, 3], tuple[int, int], "expected tuple[int, int], got 3 items"),
        ([[1], [2]], set[list[int]], "cannot build set[list[int]]: unhashable type"),
        ({"sku": "a", "price": "1"}, Item, "missing fields for Item: colors"),
        ({"sku": "a", "price": "1", "colors": [], "x": 1}, Item, "unknown fields for Item: x"),
        ({"sku": "a", "price": "1", "colors": ["blue"]}, Item, "at colors[0]: expected Color"),
        ({"x": "1"}, Point, "at x: expected int, got str '1'"),
        ("c", Literal["a", "b"], "expected Literal['a', 'b'], got str 'c'"),
        ([1], Union[int, str], "expected Union[int, str], got list [1]"),
        (1, Movie, "expected Movie, got int 1"),
        ({"a": 1}, dict[Color, int], "at ['a']: expected Color, got str 'a'"),
        ("x", socket.socket, "unsupported type hint socket"),
    ],
)
def test_decode_errors(data: Any, hint: Any, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        default_converter.from_json(data, hint)
    assert message in str(caught.value)


def test_circular_structures_are_refused() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(PayloadError, match="nested too deeply, or contains itself"):
        default_converter.to_json(loop)
    mapping: dict[str, Any] = {}
    mapping["self"] = {"again": mapping}
    with pytest.raises(PayloadError, match="nested too deeply, or contains itself"):
        default_converter.to_json(mapping, dict[str, Any])


def test_shared_but_acyclic_values_are_fine() -> None:
    shared = [1, 2]
    assert default_converter.to_json([shared, shared]) == [[1, 2], [1, 2]]


def test_very_deep_nesting_is_a_payload_error() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(PayloadError, match="nested too deeply"):
        default_converter.to_json(deep)


def test_constructor_errors_are_payload_errors() -> None:
    @dataclasses.dataclass
    class Positive:
        n: int

        def __post_init__(self) -> None:
            if self.n <= 0:
                raise ValueError("n must be positive")

    with pytest.raises(PayloadError, match="n must be positive"):
        default_converter.from_json({"n": -1}, Positive)


def test_dumps_refuses_nan_and_loads_refuses_garbage() -> None:
    with pytest.raises(PayloadError, match="cannot serialise payload"):
        default_converter.dumps([math.nan])
    with pytest.raises(PayloadError, match="cannot serialise payload"):
        default_converter.dumps({"x": object()})
    for raw in (b"{", b"\xff\xfe", b"NaN", b"[1, -Infinity]"):
        with pytest.raises(PayloadError, match="cannot read payload"):
            default_converter.loads(raw)


def test_dumps_is_compact_utf8() -> None:
    assert default_converter.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


# ------------------------------------------------------------------ arguments


def place(
    order_id: int, qty: float = 1.0, *extra: Color, urgent: bool = False, **tags: UUID
) -> Order:
    raise NotImplementedError


def test_encode_args_positional_keyword_only_and_var() -> None:
    conv = default_converter
    pos, kw = conv.encode_args(place, [7, 2, Color.RED], {"urgent": True, "t": UUID(int=3)})
    assert pos == [7, 2, "red"]
    assert kw == {"urgent": True, "t": "00000000-0000-0000-0000-000000000003"}
    args, kwargs = conv.decode_args(place, pos, kw)
    assert args == [7, 2.0, Color.RED]
    assert type(args[1]) is float
    assert kwargs == {"urgent": True, "t": UUID(int=3)}


def test_encode_args_omits_defaults_that_were_not_passed() -> None:
    assert default_converter.encode_args(place, [7], {}) == ([7], {})
    assert default_converter.encode_args(place, [], {"order_id": 7}) == ([7], {})


def test_arguments_after_a_skipped_default_travel_by_name() -> None:
    def f(a: int, b: int = 2, c: Color = Color.RED) -> None: ...

    pos, kw = default_converter.encode_args(f, [1], {"c": Color.GREEN})
    assert (pos, kw) == ([1], {"c": "green"})
    assert default_converter.decode_args(f, pos, kw) == ([1], {"c": Color.GREEN})


def test_positional_only_parameters() -> None:
    def f(a: Level, /, b: Level) -> None: ...

    pos, kw = default_converter.encode_args(f, [Level.LOW], {"b": Level.HIGH})
    assert (pos, kw) == ([1, 2], {})
    assert default_converter.decode_args(f, pos, kw) == ([Level.LOW, Level.HIGH], {})


def test_binding_failure_is_a_type_error_naming_the_function() -> None:
    with pytest.raises(TypeError, match=r"place\(\): missing a required argument: 'order_id'"):
        default_converter.encode_args(place, [], {})
    with pytest.raises(TypeError, match=r"place\(\): multiple values for argument .qty."):
        default_converter.encode_args(place, [1, 2, 3], {"qty": 2})


def test_argument_errors_name_the_argument_and_function() -> None:
    with pytest.raises(PayloadError) as caught:
        default_converter.encode_args(place, ["seven"], {})
    assert str(caught.value) == (
        "cannot encode argument 'order_id' of place: expected int, got str 'seven'"
    )
    with pytest.raises(PayloadError, match=r"argument 'extra' of place at \[1\]: expected Color"):
        default_converter.encode_args(place, [1, 2.0, Color.RED, "blue"], {})
    with pytest.raises(PayloadError, match=r"decode argument 'tags' of place at \['t'\]"):
        default_converter.decode_args(place, [1], {"t": "nope"})


def test_decode_args_that_no_longer_fit_the_function() -> None:
    with pytest.raises(PayloadError, match="cannot decode arguments of place: missing"):
        default_converter.decode_args(place, [], {})

    def g(a: int) -> None: ...

    with pytest.raises(PayloadError, match="too many positional arguments"):
        default_converter.decode_args(g, [1, 2], {})
    with pytest.raises(PayloadError, match="unexpected keyword argument 'b'"):
        default_converter.decode_args(g, [1], {"b": 2})


def test_string_hints_unresolvable_hints_and_decorators() -> None:
    def traced(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        del wrapper.__annotations__  # a decorator that loses hints: they come from __wrapped__
        return wrapper

    @traced
    def f(when: "datetime", other: "NoSuchType", n: "int" = 0) -> "list[Color]":  # type: ignore[name-defined]  # noqa: F821
        raise NotImplementedError

    pos, kw = default_converter.encode_args(f, [AT, {"any": 1}], {"n": 2})
    # A positional-or-keyword argument travels by position even when it was passed by name.
    assert (pos, kw) == ([AT.isoformat(), {"any": 1}, 2], {})
    assert default_converter.decode_args(f, pos, kw) == ([AT, {"any": 1}, 2], {})
    assert default_converter.decode_result(f, ["red"]) == [Color.RED]


def test_results_use_the_return_hint_also_for_async_functions() -> None:
    async def fetch() -> list[Point]:
        raise NotImplementedError

    data = default_converter.encode_result(fetch, [Point(1, 2.0)])
    assert data == [{"x": 1, "y": 2.0}]
    assert default_converter.decode_result(fetch, data) == [Point(1, 2.0)]
    with pytest.raises(PayloadError, match=r"cannot encode result of .*fetch: expected list"):
        default_converter.encode_result(fetch, "nope")


def test_methods_and_unhinted_functions() -> None:
    class Service:
        def run(self, when: date) -> date:
            return when

    service = Service()
    assert default_converter.encode_args(service.run, [date(2024, 1, 2)], {}) == (
        ["2024-01-02"],
        {},
    )
    assert default_converter.decode_args(service.run, ["2024-01-02"], {}) == (
        [date(2024, 1, 2)],
        {},
    )

    def untyped(a, b=1):  # type: ignore[no-untyped-def]
        return a

    assert default_converter.encode_args(untyped, [{"x": (1, 2)}], {}) == ([{"x": [1, 2]}], {})
    assert default_converter.decode_result(untyped, {"x": [1]}) == {"x": [1]}


# ------------------------------------------------------------------ codecs


class XorCodec:
    def __init__(self, key: int) -> None:
        self.key = key

    def encode(self, data: bytes) -> bytes:
        return bytes(b ^ self.key for b in data)

    def decode(self, data: bytes) -> bytes:
        return bytes(b ^ self.key for b in data)


class ZlibCodec:
    def encode(self, data: bytes) -> bytes:
        return zlib.compress(data)

    def decode(self, data: bytes) -> bytes:
        return zlib.decompress(data)


def test_codec_chain_applies_in_order_and_round_trips() -> None:
    converter = DataConverter([ZlibCodec(), XorCodec(0x5A)])
    data = converter.to_json({"order": Order(UUID(int=9), AT, [])})
    raw = converter.dumps(data)
    assert raw == XorCodec(0x5A).encode(zlib.compress(default_converter.dumps(data)))
    assert converter.loads(raw) == data
    assert round_trip([AT], list[datetime], converter) == [AT]


def test_corrupt_bytes_through_codecs_are_payload_errors() -> None:
    converter = DataConverter([ZlibCodec(), XorCodec(0x5A)])
    raw = converter.dumps({"a": 1})
    with pytest.raises(PayloadError, match="cannot read payload"):
        converter.loads(raw[:-3] + b"\x00\x00\x00")
    with pytest.raises(PayloadError, match="cannot read payload"):
        converter.loads(b"not compressed")


# ------------------------------------------------------------------ properties

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(json_values)
def test_json_like_values_round_trip(value: Any) -> None:
    assert round_trip(value) == value


@dataclasses.dataclass
class Record:
    name: str
    count: int
    ratio: float
    when: datetime
    wait: timedelta
    color: Color
    level: Optional[Level]
    price: Decimal
    ids: frozenset[UUID]
    scores: dict[int, list[float]]
    point: Point
    blob: bytes
    children: list["Record"]


offsets = st.integers(-23 * 60 + 1, 23 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
finite = st.floats(allow_nan=False, allow_infinity=False)


def _records(children: st.SearchStrategy[list[Record]]) -> st.SearchStrategy[Record]:
    return st.builds(
        Record,
        name=st.text(),
        count=st.integers(),
        ratio=finite,
        when=st.datetimes(timezones=st.none() | offsets),
        wait=st.timedeltas(timedelta(days=-36500), timedelta(days=36500)),
        color=st.sampled_from(Color),
        level=st.none() | st.sampled_from(Level),
        price=st.decimals(allow_nan=False),
        ids=st.frozensets(st.uuids()),
        scores=st.dictionaries(st.integers(), st.lists(finite, max_size=3), max_size=3),
        point=st.builds(Point, st.integers(), finite),
        blob=st.binary(),
        children=children,
    )


# Nested records, a few in all: an unbounded deferred strategy spent most of
# the test's time generating deep trees (7 s of CI's derandomized examples),
# which test the converter no more than a tree of a few records does.
records: st.SearchStrategy[Record] = st.recursive(
    _records(st.just([])),
    lambda kids: _records(st.lists(kids, max_size=2)),
    max_leaves=4,
)


@settings(deadline=None, max_examples=50)  # generating a Record is slow
@given(records)
def test_dataclass_instances_round_trip(record: Record) -> None:
    back = round_trip(record, Record)
    assert back == record
    assert default_converter.dumps(default_converter.to_json(back, Record)) == (
        default_converter.dumps(default_converter.to_json(record, Record))
    )


# ------------------------------------------------------------------ at rest: envelopes, limits

KEY_A, KEY_B = bytes(range(32)), bytes(range(32, 64))


def sealed_converter(**options: Any) -> DataConverter:
    return DataConverter(
        [codecs.ZlibCodec(min_size=16), codecs.AesGcmCodec({"a": KEY_A}, active="a")], **options
    )


def test_with_codecs_to_json_returns_an_opaque_envelope() -> None:
    conv = sealed_converter()
    data = conv.to_json({"card": "4111-1111"})
    assert set(data) == {ENVELOPE_KEY, "data"} and data[ENVELOPE_KEY] == 1
    assert "4111" not in json.dumps(data)
    assert conv.from_json(data) == {"card": "4111-1111"}
    assert conv.from_json(conv.loads(conv.dumps(data))) == {"card": "4111-1111"}
    # Encryption is randomised: the same value never gives the same envelope twice.
    assert conv.to_json("x") != conv.to_json("x")


@pytest.mark.parametrize(("value", "hint"), ROUND_TRIPS, ids=_case_id)
def test_round_trip_through_codecs(value: Any, hint: Any) -> None:
    conv = sealed_converter()
    back = conv.from_json(conv.to_json(value, hint), hint)
    assert back == value and type(back) is type(value)


def test_arguments_are_sealed_one_by_one_including_var_args() -> None:
    conv = sealed_converter()
    args, kwargs = conv.encode_args(
        place, [7, 2.0, Color.RED, Color.GREEN], {"urgent": True, "a": UUID(int=1)}
    )
    assert len(args) == 4 and all(ENVELOPE_KEY in a for a in args)
    assert set(kwargs) == {"urgent", "a"} and all(ENVELOPE_KEY in v for v in kwargs.values())
    assert conv.decode_args(place, args, kwargs) == (
        [7, 2.0, Color.RED, Color.GREEN],
        {"urgent": True, "a": UUID(int=1)},
    )
    assert conv.decode_result(place, conv.encode_result(place, Order(UUID(int=2), AT, []))) == (
        Order(UUID(int=2), AT, [])
    )


def test_plain_payloads_still_decode_after_codecs_are_turned_on() -> None:
    # Runs written before codecs were configured keep working.
    stored = default_converter.to_json([AT], list[datetime])
    assert sealed_converter().from_json(stored, list[datetime]) == [AT]
    assert sealed_converter().decode_args(place, [1], {}) == ([1], {})


def test_a_converter_without_codecs_refuses_an_envelope_clearly() -> None:
    stored = sealed_converter().to_json("secret")
    with pytest.raises(PayloadError, match=r"argument 'x'.*stored through payload codecs"):
        default_converter.from_json(stored, where="argument 'x'")


def test_damaged_envelopes_are_payload_errors_naming_the_payload() -> None:
    conv = sealed_converter()
    good = conv.to_json("secret")
    cases = [
        ({ENVELOPE_KEY: 2, "data": good["data"]}, "malformed codec envelope"),
        ({ENVELOPE_KEY: 1}, "malformed codec envelope"),
        ({ENVELOPE_KEY: 1, "data": "!!!"}, "damaged codec envelope"),
        ({ENVELOPE_KEY: 1, "data": good["data"][:-8] + "AAAAAAA="}, "failed authentication"),
    ]
    for envelope, message in cases:
        with pytest.raises(PayloadError, match=rf"result of f.*{message}"):
            conv.from_json(envelope, where="result of f")


def test_the_envelope_key_is_reserved_at_the_top_level_only() -> None:
    for conv in (default_converter, sealed_converter()):
        with pytest.raises(PayloadError, match=r"state 'k'.*reserved"):
            conv.to_json({ENVELOPE_KEY: 1, "data": ""}, where="state 'k'")
        nested = {"inner": {ENVELOPE_KEY: "mine"}}
        assert conv.from_json(conv.to_json(nested)) == nested


def test_display_opens_envelopes_inside_run_records_and_keeps_unreadable_ones() -> None:
    conv = sealed_converter()
    args, kwargs = conv.encode_args(place, [1], {"urgent": True})
    record = {"args": args, "kwargs": kwargs}
    assert conv.display(record) == {"args": [1], "kwargs": {"urgent": True}}
    assert conv.display({"stage": conv.to_json("shipped")}) == {"stage": "shipped"}
    other = DataConverter([codecs.AesGcmCodec({"b": KEY_B}, active="b")])
    assert other.display(record) == record  # cannot open: shown as stored, no error
    assert default_converter.display(record) == record


def test_nan_and_infinity_are_refused_where_they_are() -> None:
    with pytest.raises(PayloadError, match=r"argument 'x' at \[1\]: nan is not valid JSON"):
        default_converter.to_json([1.0, math.nan], list[float], where="argument 'x'")
    with pytest.raises(PayloadError, match="inf is not valid JSON"):
        sealed_converter().to_json({"a": math.inf})


def test_lone_surrogates_are_refused_before_they_reach_the_database() -> None:
    with pytest.raises(PayloadError, match=r"argument 'x' at \[1\]: string contains the lone"):
        default_converter.to_json(["ok", "bad \ud800"], where="argument 'x'")
    with pytest.raises(PayloadError, match="lone surrogate"):
        default_converter.to_json({"key \udfff": 1})
    assert default_converter.to_json("é ✓ \U0001f600") == "é ✓ \U0001f600"


@given(st.text(st.characters() | st.sampled_from(["\ud800", "\udbff", "\udc00"]), max_size=20))
def test_any_text_is_stored_or_refused_cleanly(text: str) -> None:
    try:
        data = default_converter.to_json(text)
    except PayloadError as error:
        assert "lone surrogate" in str(error)
        with pytest.raises(UnicodeEncodeError):
            text.encode("utf-8")
    else:
        assert json.loads(default_converter.dumps(data)) == text


def test_payload_size_limit_names_the_payload_and_its_size() -> None:
    conv = DataConverter(max_payload_bytes=1000)
    assert conv.to_json("x" * 998) == "x" * 998  # 1000 bytes with its quotes
    with pytest.raises(PayloadError) as error:
        conv.to_json("x" * 999, where="argument 'blob' of upload")
    message = str(error.value)
    assert "argument 'blob' of upload is too large: 1,001 bytes" in message
    assert "limit of 1,000 bytes" in message and "max_payload_bytes" in message
    # Multi-byte characters count as the UTF-8 they are stored as.
    assert conv.to_json("é" * 499) == "é" * 499
    with pytest.raises(PayloadError, match="1,002 bytes"):
        conv.to_json(["é" * 499])
    # Default: 2 MiB; None: no limit.
    with pytest.raises(PayloadError, match=r"\(2\.00 MiB\)"):
        default_converter.to_json("x" * (2 * 1024 * 1024))
    assert DataConverter(max_payload_bytes=None).to_json("x" * (3 * 1024 * 1024))
    with pytest.raises(ValueError, match="max_payload_bytes"):
        DataConverter(max_payload_bytes=0)
    # An int too long to print is a PayloadError, not a ValueError from the store.
    with pytest.raises(PayloadError, match=r"argument 'n'.*digits"):
        default_converter.to_json([10**5000], where="argument 'n'")


def test_size_limit_applies_after_codecs_and_to_each_argument() -> None:
    compressing = DataConverter([codecs.ZlibCodec()], max_payload_bytes=1000)
    assert compressing.from_json(compressing.to_json("x" * 5000)) == "x" * 5000
    with pytest.raises(PayloadError, match=r"after its codecs"):
        compressing.to_json(os.urandom(2000).hex())
    conv = DataConverter(max_payload_bytes=100)

    def wide(*items: str, **named: str) -> None: ...

    assert len(conv.encode_args(wide, ["x" * 90] * 5, {})[0]) == 5  # each fits alone
    with pytest.raises(PayloadError, match=r"argument 'items' of .*wide\[1\] is too large"):
        conv.encode_args(wide, ["x", "x" * 99], {})
    with pytest.raises(PayloadError, match=r"argument 'named' of .*wide\['b'\] is too large"):
        conv.encode_args(wide, [], {"a": "x", "b": "x" * 99})


# ------------------------------------------------------------------ codecs of perdure.codecs


def test_zlib_codec_compresses_only_when_it_pays() -> None:
    codec = codecs.ZlibCodec(min_size=100)
    small, large = b"a" * 99, b"a" * 1000
    assert codec.encode(small) == b"\x00" + small
    assert len(codec.encode(large)) < 100
    noise = os.urandom(1000)
    assert codec.encode(noise) == b"\x00" + noise  # incompressible: stored
    for data in (small, large, noise, b""):
        assert codec.decode(codec.encode(data)) == data
    with pytest.raises(ValueError, match="not a ZlibCodec payload"):
        codec.decode(b"\x07abc")
    with pytest.raises(ValueError, match="damaged compressed payload"):
        codec.decode(b"\x01garbage")
    with pytest.raises(ValueError):
        codecs.ZlibCodec(level=12)


def test_aes_gcm_codec_round_trips_and_names_the_key_in_the_ciphertext() -> None:
    codec = codecs.AesGcmCodec({"2024-01": KEY_A}, active="2024-01")
    sealed = codec.encode(b"card 4111")
    assert b"card" not in sealed and b"2024-01" in sealed
    assert codec.decode(sealed) == b"card 4111"
    assert codec.decode(codec.encode(b"")) == b""


def test_aes_gcm_key_rotation_keeps_old_payloads_readable() -> None:
    old = DataConverter([codecs.AesGcmCodec({"k1": KEY_A}, active="k1")])
    written_before = old.to_json({"amount": 1999})
    rotated = DataConverter([codecs.AesGcmCodec({"k1": KEY_A, "k2": KEY_B}, active="k2")])
    written_after = rotated.to_json({"amount": 2999})
    assert rotated.from_json(written_before) == {"amount": 1999}
    assert rotated.from_json(written_after) == {"amount": 2999}
    assert b"k2" in base64.b64decode(written_after["data"])
    with pytest.raises(PayloadError, match=r"key id 'k2', which is not configured"):
        old.from_json(written_after)
    # The key id is authenticated: relabelling a payload with another key id fails.
    raw = bytearray(base64.b64decode(written_before["data"]))
    raw[3:5] = b"k2"
    relabelled = {ENVELOPE_KEY: 1, "data": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(PayloadError, match="failed authentication under key id 'k2'"):
        rotated.from_json(relabelled)


def test_aes_gcm_codec_validates_its_keys() -> None:
    with pytest.raises(ValueError, match="16, 24 or 32 bytes"):
        codecs.AesGcmCodec({"a": b"short"}, active="a")
    with pytest.raises(ValueError, match="active key id 'b'"):
        codecs.AesGcmCodec({"a": KEY_A}, active="b")
    with pytest.raises(ValueError, match="1 to 255 bytes"):
        codecs.AesGcmCodec({"": KEY_A}, active="")


# ------------------------------------------------------------------ fuzzed inputs

FUZZ_HINTS: list[Any] = [hint for _, hint in ROUND_TRIPS] + [Record, list[Record], dict[str, Any]]


@settings(deadline=None)
@given(json_values, st.sampled_from(FUZZ_HINTS))
def test_decoding_arbitrary_json_gives_a_value_or_a_payload_error(data: Any, hint: Any) -> None:
    try:
        default_converter.from_json(data, hint)
    except PayloadError:
        pass


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_codecs(raw: bytes) -> None:
    conv = sealed_converter()
    for codec in conv.codecs:
        try:
            codec.decode(raw)
        except ValueError:
            pass
    envelope = {ENVELOPE_KEY: 1, "data": base64.b64encode(raw).decode()}
    with pytest.raises(PayloadError, match="cannot decode value"):
        conv.from_json(envelope)


@given(json_values.filter(lambda v: not (isinstance(v, dict) and ENVELOPE_KEY in v)))
def test_json_values_round_trip_through_codecs(value: Any) -> None:
    conv = sealed_converter()
    assert conv.from_json(conv.to_json(value)) == value


@settings(deadline=None, max_examples=15)
@given(records)
def test_records_round_trip_through_codecs_and_arguments(record: Record) -> None:
    conv = sealed_converter()

    def handle(first: Record, *more: Record, **named: Record) -> Record:
        raise NotImplementedError

    args, kwargs = conv.encode_args(handle, [record, record], {"x": record})
    assert conv.decode_args(handle, args, kwargs) == ([record, record], {"x": record})


@given(json_values, st.integers(24, 200))
def test_the_size_limit_is_exact(value: Any, limit: int) -> None:
    conv = DataConverter(max_payload_bytes=limit)
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    try:
        assert conv.to_json(value) == value
    except PayloadError as error:
        assert size > limit, error
        assert f"{size:,} bytes" in str(error)
    else:
        assert size <= limit


@pytest.mark.parametrize("hint", [Any, object, dict[str, Any], dict[str, list[Any]]])
def test_a_decoded_value_shares_no_container_with_its_stored_form(hint: Any) -> None:
    # Workflow code may change what it is handed; the event it came from is
    # written to the history after the turn (tests/e2e/test_history_is_what_happened.py).
    stored = {"a": [1, {"b": []}]}
    value = default_converter.from_json(stored, hint)
    assert value == stored
    value["a"][1]["b"].append("changed")
    value["a"].append("changed")
    assert stored == {"a": [1, {"b": []}]}
