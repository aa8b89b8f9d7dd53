"""The OpenAPI document as integrators need it, and the docs page without a CDN.

Litestar generates the paths from the handlers; this module completes what it cannot know:
- every error status an operation can answer, each an RFC 9457 problem (``Problem``) instead of
  Litestar's default error schema (``ERRORS``: one table, checked by a test against the app);
- the request body of ``POST /v1/events``: the envelope union, the same JSON Schema as
  ``GET /v1/contract/envelope.schema.json``;
- the API-key security scheme (``Authorization: Bearer`` or ``X-API-Key``) on every operation that
  needs a key.
The docs page (``/schema``) is Swagger UI served from this service's own files
(``/docs-assets``, from the ``swagger-ui-py`` wheel): an isolated network sees a working page.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from api.problems import PROBLEM_JSON, TYPE_BASE
from core.contract import InboundEvent
from domain.read_filter import PURPOSES

ASSETS = "/docs-assets"  # not under /schema: its catch-all path answers 404 there

#: Errors every operation that needs a key can answer.
KEYED = {
    401: "no key, an unknown or a revoked key (`unauthenticated`)",
    403: "the key's agency is not in the registry today (`unknown-agency`), or the caller's kind may not do this",
    429: "too many failed authentications from this address or for this key id (`Retry-After`)",
    503: "the store did not answer (`store-unavailable`, `Retry-After`); send the same request again",
}

#: Further errors by operation (the codes in the description are the `type`'s last segment).
ERRORS: dict[str, dict[int, str]] = {
    "recordEvent": {
        400: "the body is not a valid envelope, too large, not UTF-8, nested too deep or repeats a member",
        403: "`not-allowed-to-record`, `outside-jurisdiction`, `source-mismatch`",
        404: "what the fact refers to does not exist (`unknown-incident`, …)",
        409: "`duplicate-key`-like conflicts: `already-deregistered`, `id-number-already-registered`, "
        "`idempotency-key-reused`, `concurrent-write`, `patient-restricted` (lift the restriction first), …",
        415: "the body is not `application/json` or `application/cloudevents+json`",
        422: "the fact breaks a rule of the file (the code names the rule)",
    },
    "recordEventBatch": {
        400: "the body is not a JSON array of envelopes (`invalid-batch`), not UTF-8 or nested too deep; "
        "each envelope's own refusal is in the 200 answer, on its line",
        413: "`batch-too-large`: more envelopes than `SMD_BATCH_LIMIT`, or more bytes than they may take",
        415: "the body is not `application/json` (an array) or `application/x-ndjson`",
    },
    "messageStatus": {403: "`not-your-message`", 404: "`message-not-found`"},
    "workQueue": {
        400: "a query parameter is out of range, `unknown-purpose`",
        403: "`purpose-not-allowed`",
    },
    "reports": {400: "a query parameter is out of range or malformed (`period`, `what`)"},
    "indicators": {
        400: "`period-invalid`, `position-beyond-head`, neither or both of `unit` and `agency`, `format` unknown",
        403: "not a governance center or an auditor; `org-unit-outside-jurisdiction`",
        404: "`unknown-scope`: no such org unit or agency on the period's last day",
    },
    "monthlyReport": {
        400: "`period-invalid`, `position-beyond-head`, `format` unknown",
        403: "not a governance center or an auditor; `org-unit-outside-jurisdiction`",
        404: "`unknown-scope`",
    },
    "healthCenterQuarterlyReport": {
        400: "`period-invalid`, `not-a-health-center`, `position-beyond-head`",
        403: "another health center's; `org-unit-outside-jurisdiction`",
        404: "`unknown-scope`",
    },
    "riskAnalysisReport": {
        400: "`period-invalid`, `position-beyond-head`",
        403: "not a governance center or an auditor; `org-unit-outside-jurisdiction`",
        404: "`unknown-scope`",
    },
    "submitReport": {
        400: "the body is malformed; `report-period-not-started`, `not-a-health-center`, `position-beyond-head`",
        403: "`not-allowed-to-record` (an auditor records nothing)",
    },
    "getTask": {404: "no such task, or not assigned by or to you (the same answer)"},
    "listHandovers": {400: "`direction` is neither `in` nor `out`, `unknown-purpose`", 403: "`purpose-not-allowed`"},
    "getHandover": {
        400: "`unknown-purpose`",
        403: "`purpose-not-allowed`",
        404: "no such handover, or not one you may read (the same answer)",
    },
    "answerHandover": {
        400: 'the body is not `{"accepted": true|false}`',
        403: "`not-the-receiving-health-center`",
        404: "no such handover to this region that you may read",
        409: "`handover-already-decided`, `handover-cancelled` (the origin withdrew it), "
        "`patient-erased-here` (a move back of a patient whose data this region erased), "
        "`id-number-already-registered` (a move back: the ID number is now another patient's here), "
        "`patient-restricted` (an acceptance after the origin's erasure notice, or of a restricted patient)",
    },
    "cancelHandover": {
        400: 'the body is not `{"reason": "…"}` (1–500 characters)',
        404: "no such handover from this region that you may cancel",
        409: "`handover-already-decided` (the first decisive fact in this region's log won)",
    },
    "uploadSourceList": {
        400: "the body is not UTF-8",
        403: "`not-allowed-to-upload`: your kind does not keep that list",
        404: "`unknown-list-kind`",
        422: "`invalid-source-file`: the header, or the first bad line (named, with its column)",
    },
    "runReconciliation": {403: "`not-allowed-to-run`: only the governance center and the health center"},
    "reconciliationFindings": {400: "`unknown-purpose`", 403: "`purpose-not-allowed`"},
    "reconciliationReport": {400: "`format` is not json, csv or html"},
    "contactCard": {
        400: "`unknown-purpose`; `format` is not html or pdf",
        403: "`not-allowed-to-print-card`; `purpose-not-allowed`",
        404: "no such patient, or outside your reach (the same answer)",
        422: "`patient-not-at-home`: in hospital, in institutional care or deregistered",
    },
    "runConcern": {403: "`not-allowed-to-run`: only the governance center"},
    "concernEntries": {
        400: "`unknown-purpose`; `format` is not json or csv",
        403: "`not-allowed-to-read-concern` (committee, civil affairs, hospital, federation); `purpose-not-allowed`",
    },
    "incidentReview": {
        400: "`days` out of range (1-366), `format` unknown, `unknown-purpose`",
        403: "not an auditor; `purpose-not-allowed`",
        404: "`unknown-incident`",
    },
    "patientAsOf": {
        400: "`as_of` missing or without an offset, `axis` unknown, `unknown-purpose`",
        403: "not an auditor; `purpose-not-allowed`",
        404: "`patient-not-found`: not registered by then on that axis",
    },
    "oversightObligations": {
        400: "a query parameter is out of range, `unknown-purpose`",
        403: "not a governance center or auditor, `purpose-not-allowed`",
    },
    "acknowledgeObligation": {
        400: "`unknown-purpose`",
        403: "`not-the-owner`, `purpose-not-allowed`",
        404: "`obligation-not-found`",
        409: "`obligation-closed`",
    },
    "completeObligation": {
        400: 'the body is not `{"note": …}`, `unknown-purpose`',
        403: "`not-the-owner`, `purpose-not-allowed`",
        404: "`obligation-not-found`",
        409: "`obligation-closed`, `wrong-obligation-kind`",
        415: "the body is not JSON",
    },
    "readNotice": {
        400: "`unknown-purpose`",
        403: "`not-the-owner`, `purpose-not-allowed`",
        404: "`obligation-not-found`",
        409: "`wrong-obligation-kind`",
    },
    "searchPatientsByIdNumber": {
        400: "`invalid-search`, `unknown-purpose`",
        403: "`not-allowed-to-search`, `purpose-not-allowed`",
        415: "the body is not JSON",
        422: "the ID number is invalid (the part that is wrong is named)",
    },
    "searchPatientsByName": {
        400: "`invalid-search` (the body is not `{name, birth_date}`), `unknown-purpose`",
        403: "`not-allowed-to-search`, `purpose-not-allowed`",
        415: "the body is not JSON",
        422: "`invalid-name` (empty or longer than 64 characters), `id-number-birth-date-invalid` (in the future)",
    },
    "getPatientFile": {
        400: "`purpose-required`, `unknown-purpose`",
        403: "`purpose-not-allowed`",
        404: "`patient-not-found`: no such patient, or not within your reach (the same answer)",
    },
    "getPatientTimeline": {
        400: "`purpose-required`, `unknown-purpose`, or a query parameter out of range",
        403: "`purpose-not-allowed`",
        404: "`patient-not-found`: no such patient, or not within your reach (the same answer)",
    },
    "accessLog": {400: "a query parameter is malformed or out of range", 403: "`not-an-auditor`"},
    # break the glass (api/emergency_access.py)
    "grantEmergencyAccess": {
        400: "the body is not JSON of the documented shape (no `reason`, an unknown member, `hours` not > 0)",
        403: "`emergency-access-not-for-kind` (departments, auditors)",
        404: "`patient-not-found`: no such patient",
        409: "`emergency-access-not-needed`: your agency reaches the patient already",
        422: "`emergency-access-needs-a-reason`, `emergency-access-too-long`, `fact-after-deregistration`",
        429: "`emergency-access-cap-reached`: your agency's grants for today are used up",
    },
    "listEmergencyAccess": {
        400: "`unknown-purpose`, or a query parameter out of range",
        403: "`emergency-access-list-not-allowed` (auditors and governance centers only), `purpose-not-allowed`",
    },
    # the verifiable log (api/audit.py): auditors only
    "latestCheckpoint": {403: "not an auditor", 404: "`no-checkpoint-yet`"},
    "checkpointOfSize": {400: "`invalid-proof-request`", 403: "not an auditor", 404: "`no-checkpoint-yet`"},
    "inclusionProof": {400: "`invalid-proof-request`", 403: "not an auditor", 404: "`not-in-tree`"},
    "consistencyProof": {400: "`invalid-proof-request`", 403: "not an auditor", 404: "`no-checkpoint-yet`"},
    "patientProofBundle": {
        400: "`invalid-proof-request`, `unknown-purpose`",
        403: "not an auditor, `purpose-not-allowed`",
        404: "`not-in-tree`",
    },
    # restriction of a patient's data (api/restrictions.py)
    "requestRestriction": {
        400: 'the body is not `{"reason": …}`',
        404: "`patient-not-found`: no such patient or suspected case",
        409: "`patient-under-management`, `already-restricted`, `erasure-approved`",
        415: "the body is not JSON",
        422: "`reason-required`",
    },
    "requestRestrictionLift": {
        400: 'the body is not `{"reason": …}`',
        409: "`not-restricted`, `erasure-approved`",
        415: "the body is not JSON",
        422: "`reason-required`",
    },
    "requestErasure": {
        400: 'the body is not `{"reason": …}`',
        404: "`patient-not-found`: no such patient or suspected case",
        409: "`patient-under-management`, `retention-applies`, `erasure-approved`",
        415: "the body is not JSON",
        422: "`reason-required`",
    },
    "approveRestrictionRequest": {
        400: 'the body is not `{"reason": …}`',
        403: "`approval-by-requesting-agency`, `approval-needs-an-auditor`",
        404: "`restriction-request-not-found`",
        409: "`restriction-request-decided`, `patient-under-management`, `already-restricted`, `not-restricted`, "
        "`retention-applies`, `erasure-approved`",
        415: "the body is not JSON",
        422: "`reason-required`",
    },
    "listRestrictionRequests": {
        400: "`patient_id` malformed, `unknown-purpose`",
        403: "not an auditor, `purpose-not-allowed`",
    },
    "workingLists": {},
    "workingList": {
        400: "`purpose-required`, `unknown-purpose`, `invalid-cursor`, or a query parameter out of range",
        403: "`list-not-allowed` (GET /v1/lists says who may read each list), `org-unit-outside-jurisdiction`, "
        "`purpose-not-allowed`",
        404: "`unknown-list`",
    },
    "me": {},
    "status": {},
    "readyz": {503: "the store does not answer (the body is the readiness, not a problem)"},
}

#: Operations without a key.
OPEN = frozenset({"healthz", "readyz", "metrics", "envelopeSchema", "asyncapiDocument"})

#: The governance console's pages and forms (api.console): a console session cookie, never a key.
CONSOLE = frozenset(
    {
        "consoleSignInPage",
        "consoleSignIn",
        "consolePurposePage",
        "consolePurpose",
        "consoleSignOut",
        "consoleDashboard",
        "consoleList",
        "consoleReport",
    }
)
#: What each console page or form answers besides its success, as an HTML page (never a problem:
#: a person reads it in the browser), and where it sends the browser.
CONSOLE_ANSWERS: dict[str, dict[int, str]] = {
    "consoleSignIn": {
        401: "a wrong, revoked or malformed credential, or not a governance center's or an auditor's",
        403: "the form's CSRF token missing or not the cookie's: sign in again",
        429: "too many failed sign-ins from this address (Retry-After)",
    },
    "consolePurpose": {
        303: "no session: to the sign-in",
        400: "a purpose not offered",
        403: "the form's CSRF token missing or not the session's",
    },
    "consolePurposePage": {303: "no session: to the sign-in"},
    "consoleSignOut": {403: "the form's CSRF token missing or not the session's"},
    "consoleDashboard": {303: "no session: to the sign-in; no purpose yet: to the purpose form", 400: "a bad period"},
    "consoleList": {303: "no session or no purpose yet", 404: "a list the console does not show"},
    "consoleReport": {303: "no session or no purpose yet", 400: "a bad period", 404: "no such report"},
}

#: The console's pages that need a session (the others open one).
CONSOLE_SESSION = CONSOLE - {"consoleSignInPage", "consoleSignIn"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details (`application/problem+json`). `type` ends in a stable code "
    "to branch on; `detail` says what to fix; nothing of the request is echoed.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri", "examples": [TYPE_BASE + "patient-not-found"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the request path"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


#: What a ``format`` query parameter's value answers with (reports, exports, printable pages).
FORMAT_MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "html": "text/html",
    "pdf": "application/pdf",
}


def _answers_by_format(op: dict[str, Any], responses: dict[str, Any]) -> None:
    """An operation with a ``format`` query parameter answers 200 in each of its values' media
    types: each is documented (the JSON schema Litestar found stays on ``application/json``)."""
    formats = next(
        (p.get("schema", {}).get("enum") for p in op.get("parameters", []) if p.get("name") == "format"), None
    )
    if not formats:
        return
    ok = responses.setdefault("200", {"description": "the document in the format asked for"})
    content = ok.setdefault("content", {})
    for value in formats:
        media = FORMAT_MEDIA_TYPES.get(value)
        if media and media not in content:
            text = {"type": "string", "format": "binary"} if value == "pdf" else {"type": "string"}
            content[media] = {"schema": text, "description": f"`format={value}`"}


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Add problems, the envelope body and the security scheme to Litestar's document (in place)."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    (envelope,), defs = msgspec.json.schema_components([InboundEvent], ref_template="#/components/schemas/{name}")
    schemas.update(defs)
    schemas["Envelope"] = envelope
    schemas["IdNumberSearch"] = {
        "type": "object",
        "required": ["id_number"],
        "additionalProperties": False,
        "properties": {
            "id_number": {
                "type": "string",
                "pattern": "^[0-9]{17}[0-9Xx]$",
                "description": "18 characters; the check digit and the date are verified too (422)",
            }
        },
    }
    schemas["NameSearch"] = {
        "type": "object",
        "required": ["name", "birth_date"],
        "additionalProperties": False,
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "exactly as on the ID card; spaces, full-width letters and middle-dot variants ignored",
            },
            "birth_date": {"type": "string", "format": "date"},
        },
    }
    if "CompletionNote" in schemas:  # decoded with unknown fields refused
        schemas["CompletionNote"]["additionalProperties"] = False
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the key alone"},
        "consoleSession": {
            "type": "apiKey",
            "in": "cookie",
            "name": "smd_console",
            "description": "the governance console's session (sign in at /console/sign-in with a console "
            "credential); without it a page answers 303 to the sign-in",
        },
    }
    for item in schema.get("paths", {}).values():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            op_id = op.get("operationId", "")
            responses = op.setdefault("responses", {})
            # Litestar's own error schema is not what the API answers: replace every error
            for status in [s for s in responses if s[:1] in ("4", "5") and op_id != "readyz"]:
                responses[status] = _problem(responses[status].get("description", "an error"))
            errors = dict(ERRORS.get(op_id, {}))
            if op_id in CONSOLE_SESSION:
                op["security"] = [{"consoleSession": []}]
            elif op_id not in OPEN and op_id not in CONSOLE:
                op["security"] = [{"bearer": []}, {"apiKey": []}]
                errors = {**KEYED, **{k: f"{KEYED[k]}; {v}" if k in KEYED else v for k, v in errors.items()}}
            for status, text in sorted(CONSOLE_ANSWERS.get(op_id, {}).items()):
                html = {"text/html": {"schema": {"type": "string"}}}
                responses[str(status)] = {"description": text, **({} if status == 303 else {"content": html})}
            for status, text in sorted(errors.items()):
                if op_id == "readyz":
                    responses[str(status)] = {"description": text}
                else:
                    responses[str(status)] = _problem(text)
            for param in op.get("parameters", []):
                if param.get("name") == "X-Purpose":
                    param["schema"] = {"type": "string", "enum": list(PURPOSES)}
                    # checked by the handler, not by Litestar, so that a refusal is recorded too
                    param["required"] = op_id in ("getPatientFile", "getPatientTimeline", "workingList")
                if param.get("name") == "Idempotency-Key":
                    param["schema"] = {"type": "string", "minLength": 1, "maxLength": 200}
            if op_id in ("searchPatientsByIdNumber", "searchPatientsByName"):
                body = "IdNumberSearch" if op_id == "searchPatientsByIdNumber" else "NameSearch"
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
                }
            if op_id == "recordEventBatch":
                envelopes = {"type": "array", "items": {"$ref": "#/components/schemas/Envelope"}}
                op["requestBody"] = {
                    "required": True,
                    "description": "The envelopes, in order: a JSON array, or NDJSON (one envelope per line).",
                    "content": {
                        "application/json": {"schema": envelopes},
                        "application/x-ndjson": {"schema": {"type": "string", "description": "one envelope per line"}},
                    },
                }
            _answers_by_format(op, responses)
            if op_id == "workingList":  # JSON pages, or the whole list as CSV (Accept: text/csv)
                ok = responses.setdefault("200", {"description": "a page, or the whole list as CSV"})
                ok["content"] = {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ListPage"}},
                    "text/csv": {
                        "schema": {"type": "string"},
                        "description": "UTF-8 with a BOM, RFC 4180; the columns your kind may see",
                    },
                }
            if op_id == "recordEvent":
                body = {"schema": {"$ref": "#/components/schemas/Envelope"}}
                op["requestBody"] = {
                    "required": True,
                    "description": "One CloudEvents 1.0 envelope (structured JSON mode); `type` selects `data`.",
                    "content": {"application/json": body, "application/cloudevents+json": body},
                }
    return schema


def complete_on_startup(app: Litestar) -> None:
    """Complete the cached document once, before the first request reads it."""
    complete(app.plugins.get(OpenAPIPlugin).provide_openapi_schema())


def swagger_assets() -> Path:
    """Swagger UI's files as shipped in the ``swagger-ui-py`` wheel (no import: only its files)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed: bash ops/run.sh installs requirements.lock")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def docs_page() -> SwaggerRenderPlugin:
    """Swagger UI at /schema, every asset from /docs-assets."""
    return SwaggerRenderPlugin(
        js_url=f"{ASSETS}/swagger-ui-bundle.js",
        css_url=f"{ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
        path="/swagger",
    )


def assets_router():
    """The route serving Swagger UI's files."""
    return create_static_files_router(
        path=ASSETS, directories=[swagger_assets()], include_in_schema=False, name="docs-assets"
    )
