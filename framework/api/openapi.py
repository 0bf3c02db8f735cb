"""The OpenAPI 3 document of the operator API, served at ``/v1/openapi.json``.

Written out by hand (no framework generates it): each path lists every status it can answer with,
and each schema is the shape ``framework.api.views`` builds. The API tests validate every response
against this document, and the fuzz test generates requests from it, so the two cannot drift apart
unnoticed.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from framework.api.actions import MAX_INSTANCES
from framework.model.proto import TaskState
from framework.model.tasks import LocalState

__all__ = ["STATE_NAMES", "openapi_document"]

_MESOS_STATES: Final = tuple(state.value.removeprefix("TASK_") for state in TaskState)
STATE_NAMES: Final = [LocalState.LAUNCHING.value, *(f"TASK_{s}" for s in _MESOS_STATES), *_MESOS_STATES]
"""What ``/v1/tasks?state=`` accepts: Steward's LAUNCHING, and Mesos's states with or without TASK_."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_INT = {"type": "integer"}
_NUM = {"type": "number"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}


def _object(properties: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


SCHEMAS: Final[dict[str, Any]] = {
    "Error": _object({"error": {**_STR, "description": "What went wrong, for a person to read."}}),
    "Decision": _object(
        {
            "time": {**_STR, "format": "date-time"},
            "age_s": {**_NUM, "minimum": 0},
            "direction": {"type": "string", "enum": ["up", "down", "hold"]},
            "previous": _INT,
            "target": _INT,
            "reason": {**_STR, "description": "Why, e.g. 'up 3->9: 6,120 req/s over 6 s > ...'."},
            "kind": {**_STR, "description": "The rule that decided (load, pin, paused, missing...)."},
            "applied": {**_BOOL, "description": "False in dry-run mode."},
        }
    ),
    "Autoscale": _object(
        {
            "mode": {"type": "string", "enum": ["rate", "startd"]},
            "unit": _STR,
            "min": _INT,
            "max": _INT,
            "target_per_instance": _NUM,
            "interval_s": _NUM,
            "dry_run": _BOOL,
            "pinned": _nullable(_INT),
            "paused": _BOOL,
            "load": _nullable(_NUM),
            "load_missing_reason": _nullable(_STR),
            "load_age_s": _nullable(_NUM),
            "target": _nullable(_INT),
            "last_decision": {
                **_nullable(_ref("Decision")),
                "description": "The latest evaluation, even a repeated hold the history does not keep.",
            },
        }
    ),
    "Service": _object(
        {
            "name": _STR,
            "kind": {"type": "string", "enum": ["startd", "cvmfs", "squid", "generic"]},
            "role": _STR,
            "policy": {"type": "string", "enum": ["autoscale", "fixed", "per_host"]},
            "desired": _INT,
            "desired_reason": _STR,
            "running": _INT,
            "counting": _INT,
            "launching": _INT,
            "staging": _INT,
            "unhealthy": _INT,
            "killing": _INT,
            "unreachable": _INT,
            "pending": _INT,
            "backoff_remaining_s": _nullable(_NUM),
            "restart_failures": _INT,
            "breaker_open": _BOOL,
            "restart_pending": _INT,
            "endpoints": {"type": "array", "items": _STR},
            "autoscale": _nullable(_ref("Autoscale")),
            "recent_decisions": {"type": "array", "items": _ref("Decision")},
        }
    ),
    "ServiceList": _object({"services": {"type": "array", "items": _ref("Service")}}),
    "DecisionList": _object({"service": _STR, "decisions": {"type": "array", "items": _ref("Decision")}}),
    "Usage": _object(
        {
            "cpu_seconds_total": _NUM,
            "memory_bytes": _NUM,
            "net_rx_bytes": _NUM,
            "net_tx_bytes": _NUM,
            "timestamp": _NUM,
            "container": _STR,
        }
    ),
    "Task": _object(
        {
            "task_id": _STR,
            "service": _STR,
            "slot": _INT,
            "agent_id": _nullable(_STR),
            "hostname": _STR,
            "state": _STR,
            "healthy": _nullable(_BOOL),
            "ports": {"type": "array", "items": _INT},
            "age_s": _NUM,
            "running_for_s": _nullable(_NUM),
            "kill_reason": _nullable(_STR),
            "draining": _BOOL,
            "adopted": _BOOL,
            "message": _nullable(_STR),
            "reason": _nullable(_STR),
            "usage": _nullable(_ref("Usage")),
        }
    ),
    "TaskList": _object({"tasks": {"type": "array", "items": _ref("Task")}}),
    "Endpoints": _object(
        {
            "service": _STR,
            "endpoints": {"type": "array", "items": _STR},
            "tasks": {
                "type": "array",
                "items": _object(
                    {
                        "task_id": _STR,
                        "hostname": _STR,
                        "ports": {"type": "array", "items": _INT},
                        "state": _STR,
                    }
                ),
            },
        }
    ),
    "TargetGroups": {
        "type": "array",
        "description": "Prometheus http_sd_configs format.",
        "items": _object(
            {
                "targets": {"type": "array", "items": _STR},
                "labels": {"type": "object", "additionalProperties": _STR},
            }
        ),
    },
    "ScaleRequest": _object(
        {
            "instances": {
                **_nullable({"type": "integer", "minimum": 0, "maximum": MAX_INSTANCES}),
                "description": "The count to pin, or null to clear the pin.",
            }
        }
    ),
    "Empty": {"type": "object", "additionalProperties": False, "properties": {}},
    "ActionResult": _object({"service": _ref("Service")}),
    "ReloadResult": _object(
        {
            "applied": _BOOL,
            "errors": {"type": "array", "items": _STR},
            "warnings": {"type": "array", "items": _STR},
        }
    ),
    "Health": _object({"status": {"type": "string", "enum": ["ok"]}}),
    "Ready": _object(
        {
            "ready": _BOOL,
            "leader": _BOOL,
            "subscribed": _BOOL,
            "reconciled": _BOOL,
            "reasons": {"type": "array", "items": _STR},
        }
    ),
}

_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "A configured service's name.",
    "schema": {"type": "string"},
}

_UNAUTHORIZED = _error("Missing or wrong bearer token (nothing was changed).")
_NOT_FOUND = _error("No such service.")
_BAD = _error("The body is not JSON, or not the expected object.")
_LEADER = {
    "description": "This replica stands by: repeat the request at the leader (Location). Reads get "
    "this only from a replica that has no state of its own.",
    "headers": {"Location": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": _ref("Error")}},
}
_NO_LEADER = _error("This replica is a standby and the leader is not known, or the action does not apply.")
_BUSY = _error("The scheduler did not take the request in time, or has no state yet.")
_TOO_LARGE = _error("The body is larger than 64 KiB.")


def _read(
    summary: str, ok: dict[str, Any], *, name: bool = False, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok, "307": _LEADER, "401": _UNAUTHORIZED, "503": _BUSY}
    if name:
        responses["404"] = _NOT_FOUND
    responses.update(extra or {})
    operation: dict[str, Any] = {"summary": summary, "responses": responses, "security": [{}, {"bearer": []}]}
    if name:
        operation["parameters"] = [_NAME]
    return {"get": operation}


def _write(
    summary: str, ok: dict[str, Any], *, name: bool = True, body: str = "Empty", required: bool = False
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": ok,
        "307": _LEADER,
        "400": _BAD,
        "401": _UNAUTHORIZED,
        "403": _error("Writes are disabled: no framework.api.token_file is configured."),
        "409": _NO_LEADER,
        "413": _TOO_LARGE,
        "503": _BUSY,
    }
    if name:
        responses["404"] = _NOT_FOUND
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": _ref(body)}},
        },
        "responses": responses,
    }
    if name:
        operation["parameters"] = [_NAME]
    return {"post": operation}


PATHS: Final[dict[str, Any]] = {
    "/v1/services": _read(
        "Every service: desired and running counts, policy, recent decisions with reasons.",
        _json(_ref("ServiceList"), "The services, in configuration order."),
    ),
    "/v1/services/{name}": _read("One service.", _json(_ref("Service"), "The service."), name=True),
    "/v1/services/{name}/decisions": {
        "get": {
            **_read("", {}, name=True)["get"],
            "summary": "The service's kept autoscale decisions, oldest first (empty if not autoscaled).",
            "parameters": [
                _NAME,
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "description": "Only the most recent N.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                },
            ],
            "responses": {
                "200": _json(_ref("DecisionList"), "The decisions."),
                "307": _LEADER,
                "400": _error("limit is not a positive integer."),
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
                "503": _BUSY,
            },
        }
    },
    "/v1/services/{name}/endpoints": _read(
        "The service's published endpoints (squids) and where each of its tasks listens.",
        _json(_ref("Endpoints"), "The endpoints."),
        name=True,
    ),
    "/v1/tasks": {
        "get": {
            "summary": "Tasks Steward tracks, optionally of one service and/or in one state.",
            "security": [{}, {"bearer": []}],
            "parameters": [
                {"name": "service", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "state",
                    "in": "query",
                    "required": False,
                    "description": "A state: LAUNCHING, or a Mesos task state with or without TASK_.",
                    "schema": {"type": "string", "enum": STATE_NAMES},
                },
            ],
            "responses": {
                "200": _json(_ref("TaskList"), "The tasks, by task ID."),
                "307": _LEADER,
                "400": _error("Unknown state."),
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
                "503": _BUSY,
            },
        }
    },
    "/v1/sd": _read(
        "Prometheus HTTP service discovery: one target group per squid instance's cache manager.",
        _json(_ref("TargetGroups"), "Target groups (http_sd_configs)."),
    ),
    "/v1/services/{name}/scale": _write(
        "Pin the service's instance count, or clear the pin with null.",
        _json(_ref("ActionResult"), "Applied; the service as it is now."),
        body="ScaleRequest",
        required=True,
    ),
    "/v1/services/{name}/pause": _write(
        "Pause the service's autoscale policy (409 if not autoscaled).",
        _json(_ref("ActionResult"), "Paused."),
    ),
    "/v1/services/{name}/resume": _write(
        "Resume the service's autoscale policy (409 if not autoscaled).",
        _json(_ref("ActionResult"), "Resumed."),
    ),
    "/v1/services/{name}/restart": _write(
        "Rolling restart: every task the service runs now is replaced, one at a time.",
        _json(_ref("ActionResult"), "Started; restart_pending says how many tasks are left."),
    ),
    "/v1/reload": {
        "post": {
            **_write("", {}, name=False)["post"],
            "summary": "Reload the configuration file Steward was started with (validated whole first).",
            "responses": {
                **_write("", {}, name=False)["post"]["responses"],
                "200": _json(_ref("ReloadResult"), "Applied (warnings, if any, listed)."),
                "422": _json(
                    _ref("ReloadResult"), "Refused: the running configuration stays (errors listed)."
                ),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "The process is alive and serving.",
            "security": [{}],
            "responses": {"200": _json(_ref("Health"), "Alive.")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "The leader, subscribed to the master and reconciled.",
            "security": [{}],
            "responses": {
                "200": _json(_ref("Ready"), "Ready."),
                "503": _json(_ref("Ready"), "Not ready; reasons say why."),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus exposition (text format, or OpenMetrics when asked for).",
            "security": [{}, {"bearer": []}],
            "responses": {
                "200": {
                    "description": "The metrics.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": _UNAUTHORIZED,
            },
        }
    },
    "/v1/openapi.json": {
        "get": {
            "summary": "This document.",
            "security": [{}],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """The document (a fresh copy); ``server_url`` fills ``servers`` when known."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Steward operator API",
            "version": "1",
            "description": "Status, overrides and service discovery of a Steward Mesos framework. Write "
            "actions need the bearer token of framework.api.token_file; reads need it too when "
            "framework.api.read_token_required is set. A standby replica answers reads and sends "
            "writes to the leader (307 with Location, or 409 when the leader is unknown).",
        },
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if server_url is not None:
        document["servers"] = [{"url": server_url}]
    return document
