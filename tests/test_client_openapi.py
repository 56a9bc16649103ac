"""Every model of the admin client against the admin API's OpenAPI document, as a real daemon serves it.

The client (`noor_daemon.client`) and the document (`/admin/v1/openapi.json`) describe the same JSON
twice; this test keeps them from drifting apart. `MODELS` maps each client dataclass to the schema
it parses, by JSON pointer into the document, or says why it has none. For each mapped model:

- every field the client reads exists in the schema, with a compatible type
  (str/string, int/integer, float/number, bool/boolean, list/array, dict or dataclass/object,
  `X | None` where the schema allows null or does not promise the field);
- a nested dataclass is checked, recursively, against the schema at that place;
- every field the schema requires is read by the client, unless the table says why not.

A dataclass of the client that is missing from `MODELS` fails the test, so a new model cannot skip it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import operator
import pkgutil
import types
import typing
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import aiohttp
import pytest

import noor_daemon.client
from noor_daemon.client import (
    Account,
    AccountBilling,
    AuditEntry,
    AuditPage,
    BillingLink,
    CallEvent,
    Catalog,
    DoctorReport,
    Erasure,
    ExportResult,
    FeedGap,
    Health,
    IssuedKey,
    KeyInfo,
    KeyQuota,
    LimitStatus,
    MeInfo,
    MetricsSummary,
    ModelPrice,
    ModelUsage,
    Overview,
    PolicyOverview,
    PolicyVersion,
    Prices,
    PrivacyRequest,
    PrivacyRequestPage,
    ProviderHealth,
    QuotaReport,
    RetentionReport,
    RetentionStatus,
    RouteStatus,
    SeriesTotals,
    Spend,
    SpendLine,
    Upstreams,
    UsageLine,
    UsageSeries,
    UsageSummary,
    UsageTotals,
)

pytestmark = pytest.mark.engine_independent


@dataclass(frozen=True)
class Schema:
    """The model parses the object at `pointer` (a JSON pointer into the OpenAPI document)."""

    pointer: str
    reads: dict[str, str] = field(default_factory=dict)
    """Fields the parser reads from elsewhere than the property of their own name: field -> a
    slash-separated path of properties ("billing/configured"), "" for the object itself."""
    unread: dict[str, str] = field(default_factory=dict)
    """Required properties the client deliberately does not model -> why."""
    not_from_json: dict[str, str] = field(default_factory=dict)
    """Fields (dotted through nested models) the parser does not take from this object -> why."""


@dataclass(frozen=True)
class NotInDocument:
    """The model is no object of the admin API's document; `why` says what it is instead."""

    why: str


def _get(path: str, status: str = "200", content: str = "application/json") -> str:
    """The pointer of a documented response body."""
    escaped = path.replace("~", "~0").replace("/", "~1")
    return f"/paths/{escaped}/get/responses/{status}/content/{content.replace('/', '~1')}/schema"


def _component(name: str) -> str:
    return f"/components/schemas/{name}"


OVERVIEW = _get("/overview")
UPSTREAMS = _get("/upstreams")
USAGE_SERIES = _get("/usage/series")

MODELS: dict[type, Schema | NotInDocument] = {
    # accounts, keys, usage totals (models.py)
    Account: Schema(_component("Account")),
    KeyInfo: Schema(_component("Key")),
    IssuedKey: Schema(_component("IssuedKey")),
    UsageSummary: Schema(_component("UsageSummary")),
    ModelUsage: Schema(_component("ModelUsage")),
    UsageTotals: Schema(f"{_component('UsageSummary')}/properties/totals"),
    DoctorReport: Schema(_component("Doctor")),
    Health: NotInDocument("GET /healthz, outside /admin/v1: its document covers the admin API only"),
    ExportResult: NotInDocument("the client's own record of a download (file path, bytes written, event-count header)"),
    MeInfo: NotInDocument("GET /v1/me (self-service, no OpenAPI document); its parts are checked as Account and KeyInfo"),
    # the dashboard (dashboard.py)
    CallEvent: Schema(_get("/events", content="text/event-stream")),
    FeedGap: NotInDocument("the data of the feed's `event: dropped`, which the /events description names in prose"),
    Overview: Schema(OVERVIEW),
    MetricsSummary: Schema(f"{OVERVIEW}/properties/window"),
    Upstreams: Schema(UPSTREAMS),
    ProviderHealth: Schema(f"{UPSTREAMS}/properties/providers/items"),
    RouteStatus: Schema(f"{UPSTREAMS}/properties/routes/items"),
    UsageSeries: Schema(USAGE_SERIES, reads={"priced": "totals/priced"}),
    UsageLine: Schema(f"{USAGE_SERIES}/properties/series/items"),
    SeriesTotals: Schema(f"{USAGE_SERIES}/properties/totals"),
    LimitStatus: Schema(_component("LimitStatus")),
    QuotaReport: Schema(_component("QuotaReport")),
    KeyQuota: Schema(
        _component("KeyQuota"),
        reads={"key": ""},
        not_from_json={"key.limits": "the item's `limits` are the key's limit rows, read as KeyQuota.limits"},
    ),
    Catalog: Schema(_get("/catalog"), reads={"billing_configured": "billing/configured"}),
    # data rights (privacy.py)
    Erasure: Schema(_component("Erasure")),
    PrivacyRequest: Schema(_component("PrivacyRequest")),
    PrivacyRequestPage: Schema(_get("/privacy/requests")),
    RetentionReport: Schema(_component("RetentionReport")),
    RetentionStatus: Schema(_get("/privacy/retention")),
    PolicyVersion: Schema(_component("PolicyVersion")),
    PolicyOverview: Schema(_get("/privacy/policies")),
    AuditEntry: Schema(_component("AuditEntry")),
    AuditPage: Schema(_get("/audit")),
    # billing (billing.py)
    BillingLink: Schema(_component("BillingLink")),
    AccountBilling: Schema(_component("AccountBilling")),
    # money (money.py)
    Spend: Schema(_component("Spend")),
    SpendLine: Schema(_component("SpendLine")),
    Prices: Schema(_component("Prices")),
    ModelPrice: Schema(_component("ModelPrice")),
}

_JSON_TYPE = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def client_models() -> set[type]:
    """Every dataclass defined in a module of the client package."""
    found: set[type] = set()
    for info in pkgutil.walk_packages(noor_daemon.client.__path__, noor_daemon.client.__name__ + "."):
        module = import_module(info.name)
        found |= {
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__
        }
    return found


class Checker:
    """Walks a model and its schema side by side and collects every disagreement."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.problems: list[str] = []

    # -- the document --------------------------------------------------------------

    def pointer(self, pointer: str) -> Any:
        node: Any = self.document
        for part in pointer.lstrip("/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part not in node and "$ref" in node:
                node = self.pointer(node["$ref"].removeprefix("#"))  # through a reference, to where it points
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def has(self, pointer: str) -> bool:
        try:
            self.pointer(pointer)
        except (KeyError, IndexError, ValueError, TypeError):
            return False
        return True

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """$ref followed, allOf merged, a oneOf/anyOf of one schema and null turned into that schema, nullable."""
        if "$ref" in schema:
            return self.resolve({**self.pointer(schema["$ref"].removeprefix("#")), **{k: v for k, v in schema.items() if k != "$ref"}})
        if "allOf" in schema:
            merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
            for part in [self.resolve(p) for p in schema["allOf"]] + [{k: v for k, v in schema.items() if k != "allOf"}]:
                merged["properties"].update(part.get("properties", {}))
                merged["required"] += [r for r in part.get("required", []) if r not in merged["required"]]
            return merged
        for keyword in ("oneOf", "anyOf"):
            if keyword in schema:
                options = [self.resolve(o) for o in schema[keyword]]
                real = [o for o in options if self.types(o) != {"null"}]
                if len(real) == 1:
                    return {**real[0], "type": sorted(self.types(real[0]) | ({"null"} if len(options) > 1 else set()))}
        return schema

    def same(self, a: dict[str, Any], b: dict[str, Any]) -> bool:
        """The same schema but for allowing null."""

        def bare(schema: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in schema.items() if k not in ("type", "nullable")} | {"type": self.types(schema) - {"null"}}

        return bare(a) == bare(b)

    @staticmethod
    def types(schema: dict[str, Any]) -> set[str]:
        declared = schema.get("type")
        found = set(declared) if isinstance(declared, list) else {declared} if declared else set()
        return found | ({"null"} if schema.get("nullable") else set())

    # -- the client ----------------------------------------------------------------

    def check_model(
        self,
        model: type,
        schema: dict[str, Any],
        where: str,
        seen: frozenset[type] = frozenset(),
        *,
        skip: frozenset[str] = frozenset(),
        nested: bool = False,
        whole_object: bool = True,
    ) -> None:
        """`skip`: dotted fields not read from this JSON; `whole_object` false when the parent reads the same object."""
        entry = MODELS.get(model)
        if not isinstance(entry, Schema):
            self.problems.append(f"{where}: {model.__name__} is nested in a documented object but has no schema in MODELS")
            return
        if model in seen:
            return
        schema = self.resolve(schema)
        own = self.resolve(self.pointer(entry.pointer)) if self.has(entry.pointer) else None
        if nested and not skip and own is not None and self.same(schema, own):
            return  # the model's own schema (perhaps or null), checked on its own row of MODELS
        if "object" not in self.types(schema):
            self.problems.append(f"{where}: {model.__name__} is parsed from a schema that is not an object: {schema}")
            return
        skip |= frozenset(entry.not_from_json)
        hints = typing.get_type_hints(model)
        read: set[str] = set()
        for f in dataclasses.fields(model):
            if f.name in skip:
                continue
            path = entry.reads.get(f.name, f.name)
            read |= _names_read(hints[f.name], _inner(skip, f.name)) if path == "" else {path.split("/")[0]}
            place = f"{where}.{f.name}" + (f" (read from {path or 'the object itself'!r})" if f.name in entry.reads else "")
            target, required = schema, True
            for part in [p for p in path.split("/") if p]:
                props = self.resolve(target).get("properties", {})
                if part not in props:
                    self.problems.append(f"{place}: the schema has no property {part!r}")
                    break
                required = part in self.resolve(target).get("required", [])
                target = self.resolve(props[part])
            else:
                self.check_type(hints[f.name], target, place, required, seen | {model}, _inner(skip, f.name), whole_object=bool(path))
        if not whole_object:
            return
        for name in schema.get("required", []):
            if name not in read and name not in entry.unread:
                self.problems.append(f"{where}: the schema requires {name!r}, which {model.__name__} does not read")

    def check_type(
        self,
        hint: Any,
        schema: dict[str, Any],
        where: str,
        required: bool,
        seen: frozenset[type],
        skip: frozenset[str] = frozenset(),
        *,
        whole_object: bool = True,
    ) -> None:
        schema = self.resolve(schema)
        declared = self.types(schema)
        args = typing.get_args(hint)
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
        if optional:
            rest = [a for a in args if a is not type(None)]
            hint = functools.reduce(operator.or_, rest)
        if hint is Any:
            return
        if not declared:
            self.problems.append(f"{where}: the schema gives no type (the client reads {_name(hint)})")
            return
        if "null" in declared and not optional:
            self.problems.append(f"{where}: the schema allows null but the client's type is {_name(hint)}")
        if optional and "null" not in declared and required:
            self.problems.append(f"{where}: the client allows None but the schema requires a non-null {sorted(declared)}")
        if dataclasses.is_dataclass(hint):
            self.check_model(hint, schema, where, seen, skip=skip, nested=True, whole_object=whole_object)
            return
        origin = typing.get_origin(hint) or hint
        expected = _JSON_TYPE.get(origin)
        if expected is None:
            self.problems.append(f"{where}: no JSON type for the client's {_name(hint)}")
            return
        if expected not in declared:
            self.problems.append(f"{where}: the client reads {_name(hint)} ({expected}), the schema says {sorted(declared - {'null'})}")
            return
        item_args = typing.get_args(hint)
        if origin is list and item_args:
            if "items" not in schema:
                self.problems.append(f"{where}: the schema's array has no `items` (the client reads {_name(hint)})")
            else:
                self.check_type(item_args[0], schema["items"], f"{where}[]", True, seen)
        if origin is dict and len(item_args) == 2 and item_args[1] is not Any:
            for name, value in self.resolve(schema).get("properties", {}).items():
                self.check_type(item_args[1], value, f"{where}.{name}", True, seen)
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                self.check_type(item_args[1], extra, f"{where}.*", True, seen)


def _inner(skip: frozenset[str], name: str) -> frozenset[str]:
    """The dotted names of `skip` below field `name`, relative to it."""
    return frozenset(s.removeprefix(f"{name}.") for s in skip if s.startswith(f"{name}."))


def _names_read(model: type, skip: frozenset[str]) -> set[str]:
    """The properties a model reads from the object it is given (for a field read from its parent's object)."""
    entry = MODELS.get(model)
    if not isinstance(entry, Schema):
        return set()
    skip |= frozenset(entry.not_from_json)
    hints = typing.get_type_hints(model)
    names: set[str] = set()
    for f in dataclasses.fields(model):
        if f.name in skip:
            continue
        path = entry.reads.get(f.name, f.name)
        names |= _names_read(hints[f.name], _inner(skip, f.name)) if path == "" else {path.split("/")[0]}
    return names


def _is_field(model: type, dotted: str) -> bool:
    """Whether `a.b` names field `a` of `model` and field `b` of the dataclass `a` holds."""
    head, _, rest = dotted.partition(".")
    hints = typing.get_type_hints(model)
    if head not in {f.name for f in dataclasses.fields(model)}:
        return False
    return not rest or (dataclasses.is_dataclass(hints[head]) and _is_field(hints[head], rest))


def _name(hint: Any) -> str:
    """`str`, `list[str]`: how the client's annotation reads."""
    if typing.get_args(hint):
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))


@pytest.fixture
async def document(daemon) -> dict[str, Any]:
    """The document as the daemon serves it, wherever the modules that build it live."""
    async with (
        aiohttp.ClientSession(headers=daemon.admin_headers) as http,
        http.get(f"{daemon.url}/admin/v1/openapi.json") as response,
    ):
        assert response.status == 200
        return await response.json()


def test_every_client_model_is_in_the_table() -> None:
    """A new dataclass in the client must be mapped to its schema, or say why it has none."""
    models = client_models()
    assert models, "no dataclass found in noor_daemon.client"
    missing = sorted(m.__name__ for m in models - MODELS.keys())
    stale = sorted(m.__name__ for m in MODELS.keys() - models)
    assert not missing, f"client models missing from MODELS in {__file__}: {missing}"
    assert not stale, f"MODELS names classes that are no client models: {stale}"
    assert all(entry.why for entry in MODELS.values() if isinstance(entry, NotInDocument))


async def test_every_client_model_matches_the_openapi_document(document: dict[str, Any]) -> None:
    checker = Checker(document)
    for model, entry in MODELS.items():
        if not isinstance(entry, Schema):
            continue
        if not checker.has(entry.pointer):
            checker.problems.append(f"{model.__name__}: nothing at {entry.pointer} in the document")
            continue
        schema = checker.pointer(entry.pointer)
        for name in entry.reads.keys() | entry.unread.keys():
            if name in entry.unread and name not in checker.resolve(schema).get("required", []):
                checker.problems.append(f"{model.__name__}: MODELS excuses {name!r}, which the schema does not require")
            if name in entry.reads and name not in {f.name for f in dataclasses.fields(model)}:
                checker.problems.append(f"{model.__name__}: MODELS says how {name!r} is read, but it is no field")
        for dotted in entry.not_from_json:
            if not _is_field(model, dotted):
                checker.problems.append(f"{model.__name__}: MODELS names {dotted!r}, which is no field")
        checker.check_model(model, schema, model.__name__)
    assert not checker.problems, "the client and the admin OpenAPI document disagree:\n  " + "\n  ".join(checker.problems)
