"""The OpenAPI document says what the API answers, and the docs page works without a network."""

from __future__ import annotations

import re
import typing

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.openapi import CONSOLE, CONSOLE_ANSWERS, CONSOLE_SESSION, ERRORS, OPEN
from core.contract import InboundEvent

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
async def document(services):
    async with AsyncTestClient(create_app(services)) as client:
        r = await client.get("/schema/openapi.json")
        assert r.status_code == 200
        yield r.json(), client


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
class TestTheDocument:
    async def test_every_operation_is_in_the_table_of_errors_or_open(self, document) -> None:
        doc, _ = document
        assert {op["operationId"] for _, _, op in operations(doc)} <= set(ERRORS) | OPEN | CONSOLE

    async def test_every_keyed_operation_documents_401_403_429_503_and_its_security(self, document) -> None:
        doc, _ = document
        assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey", "consoleSession"}
        for path, method, op in operations(doc):
            if op["operationId"] in CONSOLE:  # the console: a session cookie, never an API key
                assert op.get("security") == (
                    [{"consoleSession": []}] if op["operationId"] in CONSOLE_SESSION else None
                )
                continue
            if op["operationId"] in OPEN:
                assert "security" not in op, path
                continue
            assert op["security"] == [{"bearer": []}, {"apiKey": []}], path
            assert {"401", "403", "429", "503"} <= set(op["responses"]), (method, path)

    async def test_every_error_response_is_an_rfc_9457_problem(self, document) -> None:
        doc, _ = document
        for path, _, op in operations(doc):
            for status, response in op["responses"].items():
                console_pages = {str(s) for s in CONSOLE_ANSWERS.get(op["operationId"], {}) if s >= 400}
                if op["operationId"] in CONSOLE and status in console_pages:
                    # the console's own error pages: HTML for a person in a browser, each documented
                    assert response["content"] == {"text/html": {"schema": {"type": "string"}}}, (path, status)
                elif status[0] in "45" and op["operationId"] != "readyz":
                    assert response["content"] == {
                        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, (path, status)
        assert doc["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail"]

    async def test_recording_documents_the_envelope_union_as_its_request_body(self, document) -> None:
        doc, _ = document
        body = doc["paths"]["/v1/events"]["post"]["requestBody"]
        assert body["required"] is True
        assert set(body["content"]) == {"application/json", "application/cloudevents+json"}
        envelope = doc["components"]["schemas"]["Envelope"]
        assert len(envelope["anyOf"]) == len(typing.get_args(InboundEvent))
        for ref in envelope["anyOf"]:
            assert ref["$ref"].removeprefix("#/components/schemas/") in doc["components"]["schemas"]

    async def test_the_reads_document_the_purpose_header_and_a_404_problem(self, document) -> None:
        doc, _ = document
        op = doc["paths"]["/v1/patients/{patient_id}"]["get"]
        assert "X-Purpose" in [p["name"] for p in op["parameters"]]
        assert "404" in op["responses"] and "400" in op["responses"]


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
async def test_the_docs_page_loads_every_asset_from_this_service(services) -> None:
    async with AsyncTestClient(create_app(services)) as client:
        page = await client.get("/schema")
        assert page.status_code == 200
        html = page.text
        assert not re.search(r"""(src|href)=['"]https?://""", html), "the page reaches outside"
        assets = re.findall(r"""(?:src|href)=['"](/[^'"]+)['"]""", html)
        assert {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"} <= set(assets)
        for asset in assets:
            r = await client.get(asset)
            assert r.status_code == 200 and len(r.content) > 100, asset


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
async def test_a_method_a_resource_does_not_have_is_a_405_problem_with_allow(services) -> None:
    async with AsyncTestClient(create_app(services)) as client:
        r = await client.request("TRACE", "/healthz")
        assert r.status_code == 405 and "GET" in r.headers["allow"].split(", ")
        assert r.headers["content-type"].startswith("application/problem+json")
