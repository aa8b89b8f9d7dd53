"""schemathesis against our own OpenAPI document: with a valid key of each agency kind, requests
generated from the documented schemas (envelopes included) never get a 500, and every answer is
one the document declares (status, content type, body schema). On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from core.case_record import utc_now
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT

#: One agency of each kind in the demo district.
AGENCIES = (
    "hc-north",
    "police-east",
    "civil-willowbrook",
    "committee-north",
    "hospital-lantern-bay",
    "gov-willowbrook",
    "dpf-lantern-bay",
    "auditor-lantern-bay",
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 6  # per operation and kind: 8 kinds × 23 operations × 6 ≈ 1,100 requests a store


def test_generated_requests_with_each_kinds_key_get_only_documented_answers_and_no_500(open_store) -> None:
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in AGENCIES}
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", create_app(services))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20, "every operation of the document"
    failures: list[str] = []

    for agency, key in keys.items():
        for operation in operations:
            fuzz(operation, agency, key, failures)

    assert failures == [], "\n".join(dict.fromkeys(failures))


def fuzz(operation: Any, agency: str, key: str, failures: list[str]) -> None:
    """Send the operation's generated requests with the agency's key; collect what fails a check."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same requests on every run: a failure reproduces
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def one(case: Any) -> None:
        # the key is ours, valid: a generated Authorization or X-API-Key would only be refused
        for name in ("Authorization", "X-API-Key"):
            (case.headers or {}).pop(name, None)
        try:
            case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
        except Exception as e:  # collected: one list of every finding, not the first alone
            failures.append(f"{agency} {operation.method.upper()} {operation.path}: {str(e)[:400]}")

    one()
