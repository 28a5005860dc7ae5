"""Search attributes over the HTTP API, in process (httpx over ASGI), on SQLite
and PostgreSQL: a start's ``search_attributes``, ``GET /api/workflows?attr=``
(every term must match, as text), the attributes in list rows and
descriptions, what workflow code changes, and bad input answered 422 with
what is wrong, writing nothing."""

from __future__ import annotations

from typing import Any

import attribute_workflows as aw
import httpx
import pytest
from api_both import ADMIN, BASE, READ, eventually

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

pytestmark = pytest.mark.both_databases


async def ids(api: httpx.AsyncClient, *terms: str, **params: Any) -> list[str]:
    """The ids ``GET /api/workflows?attr=TERM...`` lists, newest first."""
    query = [("attr", term) for term in terms] + list(params.items())
    answer = await api.get("/api/workflows", params=query)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


async def start(api: httpx.AsyncClient, ident: str, attributes: Any = None) -> httpx.Response:
    body: dict[str, Any] = {"workflow": "double", "args": [1], "id": ident}
    if attributes is not None:
        body["search_attributes"] = attributes
    return await api.post("/api/workflows", json=body)


async def test_a_filter_lists_exactly_the_runs_with_every_attribute(
    api: httpx.AsyncClient,
) -> None:
    runs = {
        "o-1": {"customer": "c-42", "amount": 120, "vip": True},
        "o-2": {"customer": "c-42", "amount": "120"},
        "o-3": {"customer": "c-42", "amount": 120.0, "region": "eu west"},
        "o-4": {"customer": "c-7", "amount": 120, "vip": False},
        "o-5": {"customer": "c-42", "amount": 99.5},
        "o-6": None,
    }
    for ident, attributes in runs.items():
        started = await start(api, ident, attributes)
        assert started.status_code == 201, started.text

    assert await ids(api, "customer=c-42") == ["o-5", "o-3", "o-2", "o-1"]
    assert await ids(api, "customer=c-7") == ["o-4"]
    # Every term must match (AND), whatever their order.
    assert await ids(api, "customer=c-42", "vip=true") == ["o-1"]
    assert await ids(api, "vip=true", "customer=c-42") == ["o-1"]
    assert await ids(api, "customer=c-7", "vip=true") == []
    assert await ids(api, "vip=false") == ["o-4"]
    # As text: an int 120, a float 120.0 and a string "120" are one value.
    assert await ids(api, "amount=120") == ["o-4", "o-3", "o-2", "o-1"]
    assert await ids(api, "amount=120", "customer=c-42") == ["o-3", "o-2", "o-1"]
    assert await ids(api, "amount=99.5") == ["o-5"]
    assert await ids(api, "region=eu west") == ["o-3"]
    assert await ids(api, "customer=C-42") == []  # (text is matched exactly)
    assert await ids(api, "customer=nobody") == []
    assert await ids(api, "nobody=c-42") == []
    # With the other filters, and paged: the filter holds on every page.
    assert await ids(api, "customer=c-42", search="o-1") == ["o-1"]
    first = (await api.get("/api/workflows", params={"attr": "customer=c-42", "limit": 3})).json()
    assert [item["id"] for item in first["items"]] == ["o-5", "o-3", "o-2"]
    rest = await ids(api, "customer=c-42", limit=3, cursor=first["next_cursor"])
    assert rest == ["o-1"]
    by_page = await ids(api, "customer=c-42", limit=3, page=2)
    assert by_page == ["o-1"]

    rows = {item["id"]: item for item in (await api.get("/api/workflows")).json()["items"]}
    assert rows["o-1"]["search_attributes"] == {"customer": "c-42", "amount": 120, "vip": True}
    assert rows["o-6"]["search_attributes"] == {}
    described = (await api.get("/api/workflows/o-3")).json()
    assert described["search_attributes"] == {
        "customer": "c-42",
        "amount": 120.0,
        "region": "eu west",
    }
    kinds = {
        k: type(v)
        for k, v in (await api.get("/api/workflows/o-1")).json()["search_attributes"].items()
    }
    assert kinds == {"customer": str, "amount": int, "vip": bool}
    assert (await api.get("/api/workflows/o-6")).json()["search_attributes"] == {}


async def test_what_workflow_code_sets_is_shown_and_found(
    api: httpx.AsyncClient, client: perdure.Client
) -> None:
    async with perdure.Worker(client, [aw.tagged_order], [], poll_interval=0.02):
        attributes = {"customer": "c-1", "region": "eu", "draft": True}
        body = {"workflow": "tagged_order", "args": ["o-77"], "id": "tagged-1"}
        started = await api.post("/api/workflows", json={**body, "search_attributes": attributes})
        assert started.status_code == 201, started.text

        async def paid() -> dict[str, Any] | None:
            d: dict[str, Any] = (await api.get("/api/workflows/tagged-1")).json()
            return d if d["state"].get("stage") == "paid" else None

        d = await eventually(paid, "the run to be paid")
        assert d["search_attributes"] == {"customer": "c-1", "region": "eu", "stage": "paid"}
        assert await ids(api, "stage=paid", "region=eu") == ["tagged-1"]
        assert await ids(api, "draft=true") == []  # removed (None) by the workflow

        assert (await api.post("/api/workflows/tagged-1/signals/ship")).status_code == 202
        outcome = await api.get("/api/workflows/tagged-1/result", params={"timeout": 15})
        assert outcome.json()["result"] == "o-77 shipped"
        d = (await api.get("/api/workflows/tagged-1")).json()
        assert d["search_attributes"] == {"customer": "c-1", "stage": "shipped"}
        assert await ids(api, "stage=shipped", "customer=c-1") == ["tagged-1"]
        assert await ids(api, "stage=paid") == []
        assert await ids(api, "region=eu") == []
        history = (await api.get("/api/workflows/tagged-1/history")).json()
        changes = [e["attributes"] for e in history if e["type"] == "SearchAttributesSet"]
        assert changes == [{"stage": "paid", "draft": None}, {"stage": "shipped", "region": None}]


async def test_a_bad_filter_is_422_with_the_message(api: httpx.AsyncClient) -> None:
    assert (await start(api, "kept", {"customer": "c-1"})).status_code == 201
    for term, message in (
        ("customer", "attr takes NAME=VALUE (a search attribute and its value), or a bound"),
        ("=c-1", "attr takes NAME=VALUE (a search attribute and its value), or a bound"),
        (">=1", "attr takes NAME=VALUE (a search attribute and its value), or a bound"),
        ("customer>=c", "attr gives 'customer' a value and a bound: give the value alone"),
        ("total>=true", "attr 'total>=true' needs a number or a string after '>=', not 'true'"),
        ("total<", "attr 'total<' needs a number or a string after '<', not ''"),
        ("total>x&total<5", "attr 'total': an AttributeRange's bounds must be all numbers or"),
        ("total>5&total<5", "attr 'total': AttributeRange(gt=5, lt=5) matches nothing"),
        ("total>1&total>=2", "attr gives 'total' two lower bounds: give one"),
        ("n" * 101 + "=1", "a search attribute's name is at most 100 characters, not 101"),
        ("note=" + "x" * 401, "search attribute 'note' is a string of 401 characters"),
        ("note=c\x00", "search attribute 'note' must not hold the NUL character"),
        ("customer=c-2", "attr names 'customer' twice: a run has one value for each name"),
    ):
        terms = [("attr", t) for t in term.split("&")]  # (one or two terms)
        answer = await api.get("/api/workflows", params=[("attr", "customer=c-1"), *terms])
        assert answer.status_code == 422, (term, answer.text)
        assert answer.json()["detail"].startswith(message), answer.json()
    # An empty value is a value (a run whose attribute is the empty string).
    assert await ids(api, "customer=") == []
    assert await ids(api, "customer=c-1") == ["kept"]


async def test_a_bad_start_is_422_with_what_is_wrong_and_starts_nothing(
    api: httpx.AsyncClient, client: perdure.Client
) -> None:
    where = "body.search_attributes:"
    wrong = "must be a string, an integer, a number or a boolean, not"
    for attributes, message in (
        ({"customer": {"id": 1}}, f"{where} search attribute 'customer' {wrong} an object"),
        ({"tags": ["a", "b"]}, f"{where} search attribute 'tags' {wrong} an array"),
        ({"gone": None}, f"{where} search attribute 'gone' {wrong} null"),
        (["customer", "c-1"], f"{where} Input should be a valid dictionary"),
        ("customer=c-1", f"{where} Input should be a valid dictionary"),
    ):
        answer = await start(api, "refused", attributes)
        assert answer.status_code == 422, (attributes, answer.text)
        assert answer.json()["message"].startswith(message), answer.json()
    for attributes, message in (
        ({"": 1}, "a search attribute's name must be a non-empty string, not ''"),
        ({"note": "x" * 401}, "search attribute 'note' is a string of 401 characters"),
        ({"a\x00": 1}, "a search attribute's name must not hold the NUL character"),
        ({"n" * 101: 1}, "a search attribute's name is at most 100 characters, not 101"),
        ({f"k{i}": i for i in range(33)}, "a run has at most 32 search attributes, not 33"),
    ):
        answer = await start(api, "refused", attributes)
        assert answer.status_code == 422, (attributes, answer.text)
        assert answer.json()["detail"].startswith(message), answer.json()
    raw = b'{"workflow": "double", "id": "refused", "search_attributes": {"n": 1e999}}'
    infinite = await api.post("/api/workflows", content=raw)
    assert (
        infinite.status_code == 422 and infinite.json()["detail"] == "search attribute 'n' is inf"
    )

    assert (await api.get("/api/workflows")).json()["items"] == []  # nothing was written
    assert await client.list() == []
    with pytest.raises(perdure.WorkflowNotFoundError):
        await client.get_handle("refused").describe()


async def test_a_read_token_lists_by_attribute_only_admin_starts(client: perdure.Client) -> None:
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as api:
        body = {"workflow": "double", "id": "tok-1", "search_attributes": {"team": "ops"}}
        read = {"Authorization": f"Bearer {READ}"}
        admin = {"Authorization": f"Bearer {ADMIN}"}
        assert (await api.post("/api/workflows", json=body)).status_code == 401
        assert (await api.post("/api/workflows", json=body, headers=read)).status_code == 403
        assert (await api.post("/api/workflows", json=body, headers=admin)).status_code == 201
        assert (await api.get("/api/workflows", params={"attr": "team=ops"})).status_code == 401
        listed = await api.get("/api/workflows", params={"attr": "team=ops"}, headers=read)
        assert [item["id"] for item in listed.json()["items"]] == ["tok-1"]


async def test_the_count_takes_the_listings_filters(client: perdure.Client) -> None:
    """``GET /api/workflow-count``: the runs the listing's filters match, by
    status; bad filters 422 as the listing's; the read role is enough."""
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    transport = httpx.ASGITransport(app=app)
    read = {"Authorization": f"Bearer {READ}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=read) as api:
        for n in range(5):
            await client.start("double", n, id=f"c-{n}", search_attributes={"n": n})
        await client.get_handle("c-0").terminate()

        async def counted(*params: tuple[str, str]) -> Any:
            answer = await api.get("/api/workflow-count", params=list(params))
            assert answer.status_code == 200, answer.text
            return answer.json()

        every = await counted()
        assert every["count"] == 5 and every["by_status"]["running"] == 4
        assert every["by_status"]["terminated"] == 1 and every["by_status"]["failed"] == 0
        assert (await counted(("attr", "n>=2")))["count"] == 3
        assert (await counted(("attr", "n<2"), ("status", "terminated")))["count"] == 1
        assert (await counted(("search", "c-4"), ("type", "double")))["count"] == 1
        for params, message in (
            ([("status", "done")], "status must be one of"),
            ([("attr", "n")], "attr takes NAME=VALUE"),
            ([("since", "soon")], "since"),
        ):
            answer = await api.get("/api/workflow-count", params=params)
            assert answer.status_code == 422 and message in answer.text, answer.text
        anonymous = await api.get("/api/workflow-count", headers={"Authorization": ""})
        assert anonymous.status_code == 401


async def test_the_openapi_document_describes_them(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    for path in ("/api/workflows", "/api/workflow-count"):
        listing = spec["paths"][path]["get"]["parameters"]
        attr = next(p for p in listing if p["name"] == "attr")
        assert attr["in"] == "query" and "NAME=VALUE" in attr["description"], path
    counted = spec["components"]["schemas"]["WorkflowCountResponse"]["properties"]
    assert sorted(counted) == ["by_status", "count"]
    schemas = spec["components"]["schemas"]
    for model in ("WorkflowSummary", "WorkflowDescription"):
        assert "search_attributes" in schemas[model]["properties"], model
    start_body = spec["paths"]["/api/workflows"]["post"]["requestBody"]["content"]
    fields = start_body["application/json"]["schema"]["properties"]
    kinds = fields["search_attributes"]["anyOf"][0]["additionalProperties"]["anyOf"]
    assert sorted(k["type"] for k in kinds) == ["boolean", "integer", "number", "string"]
