"""Checking real responses and real outbound events against the published OpenAPI 3.1
document with a strict validator (openapi-schema-validator's OAS 3.1 dialect, formats on:
date-time, uuid)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_document
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE = "urn:mes-api"


@dataclass
class Contract:
    document: dict
    # (method, path template, status) of every response checked, for coverage.
    checked: set[tuple[str, str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        validate_document(self.document)  # the document itself is valid OpenAPI 3.1
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(BASE, resource)
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
            for path in self.document["paths"]
        ]

    def errors(self, instance: Any, pointer: str) -> list[str]:
        """Every way ``instance`` fails the schema at ``pointer`` (a JSON pointer into the
        document, e.g. ``/components/schemas/WorkOrder``)."""
        return self.errors_against(instance, {"$ref": f"{BASE}#{pointer}"})

    def errors_against(self, instance: Any, schema: dict) -> list[str]:
        """Every way ``instance`` fails ``schema`` (its references point into the document)."""
        if "$ref" in schema and schema["$ref"].startswith("#"):
            schema = {**schema, "$ref": BASE + schema["$ref"]}
        validator = OAS31Validator(
            schema,
            registry=self.registry,
            format_checker=OAS31Validator.FORMAT_CHECKER,
        )
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
            for e in validator.iter_errors(instance)
        ]

    def template(self, path: str) -> str:
        path = path.split("?", 1)[0]
        matches = [template for regex, template in self.templates if regex.match(path)]
        assert matches, f"{path} is not in the schema"
        # /work-orders/{number}/hold/ before /work-orders/{number}/: the most literal wins.
        return min(matches, key=lambda t: t.count("{"))

    def check_response(self, method: str, path: str, response) -> None:
        """The status is documented for this operation, the body validates against its
        schema, and every documented response header is there."""
        template = self.template(path)
        status = response.status_code
        operation = self.document["paths"][template].get(method.lower())
        if operation is None:  # a method the path does not have: 405 in the error shape
            assert status == 405, f"{method} {template}: {status} for an undocumented method"
            problems = self.errors(json.loads(response.content), "/components/schemas/Error")
            assert not problems, problems
            self.checked.add((method.lower(), template, status))
            return
        documented = operation["responses"].get(str(status))
        assert documented is not None, f"{method} {template}: {status} is not documented"
        content = documented.get("content")
        body = response.content
        if content:
            assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
            pointer = _pointer(content["application/json"]["schema"])
            problems = self.errors(json.loads(body), pointer)
            assert not problems, f"{method} {path} -> {status}:\n" + "\n".join(problems)
        else:
            assert not body, f"{method} {path} -> {status} has an undocumented body"
        for header, spec in documented.get("headers", {}).items():
            assert response.has_header(header), f"{method} {path} -> {status}: no {header}"
            problems = self.errors_against(response[header], spec["schema"])
            assert not problems, (header, problems)
        self.checked.add((method.lower(), template, status))

    def webhook(self, event_type: str) -> dict:
        return self.document["webhooks"][event_type]["post"]

    def check_event(self, body: dict, headers: dict[str, str] | None = None) -> None:
        """An outbound event (and, when given, the headers of its delivery) against the
        webhook the schema declares for its type."""
        operation = self.webhook(body["type"])
        pointer = _pointer(operation["requestBody"]["content"]["application/json"]["schema"])
        problems = self.errors(body, pointer)
        assert not problems, f"{body['type']} {body.get('id')}:\n" + "\n".join(problems)
        if headers is None:
            return
        lowered = {k.lower(): v for k, v in headers.items()}
        for parameter in operation["parameters"]:
            name = parameter["name"].lower()
            assert name in lowered or not parameter.get("required"), f"no {name} header"
            if name in lowered:
                problems = self.errors_against(lowered[name], parameter["schema"])
                assert not problems, (name, problems)


def _pointer(schema: dict) -> str:
    ref = schema.get("$ref")
    assert ref and ref.startswith("#"), f"expected a component reference, got {schema}"
    return ref[1:]
