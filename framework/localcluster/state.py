"""The operator read endpoints: ``/state`` (Mesos's legacy JSON model) and ``/metrics/snapshot``.

Both are computed on the runtime thread from the master's records; nothing here mutates anything.
The ``/state`` document follows the hand-built model of ``src/master/readonly_handler.cpp`` where it
is cheap to do so: ids are plain strings, resources are maps (``{"cpus": 0.5, "ports":
"[31000-31000]"}``), labels are lists of ``{key, value}``. It is a debugging view, never a substitute
for reconciliation (protocol brief, section 8).
"""

from __future__ import annotations

from typing import Any

import msgspec

from framework.localcluster.master import MESOS_VERSION, Master
from framework.localcluster.resources import Resources
from framework.model.proto import TaskState, TaskStatus

__all__ = ["render_metrics", "render_state"]


def _to_builtins(value: Any) -> Any:
    """JSON-ready builtins of a proto struct (through JSON, so ``msgspec.Raw`` parts survive)."""
    return msgspec.json.decode(msgspec.json.encode(value))


def _status_json(status: TaskStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"state": status.state.value, "timestamp": status.timestamp or 0.0}
    if status.healthy is not None:
        out["healthy"] = status.healthy
    if status.labels is not None:
        out["labels"] = _to_builtins(status.labels.labels)
    if status.container_status:
        out["container_status"] = msgspec.json.decode(status.container_status)
    return out


def _task_json(task: Any) -> dict[str, Any]:
    info = task.info
    out: dict[str, Any] = {
        "id": info.task_id.value,
        "name": info.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id or "",
        "slave_id": task.agent_id,
        "state": task.state.value,
        "resources": task.resources.to_json_map(),
        "role": task.role,
        "statuses": [_status_json(s) for s in task.statuses],
    }
    if info.labels is not None:
        out["labels"] = _to_builtins(info.labels.labels)
    if info.container is not None:
        out["container"] = _to_builtins(info.container)
    if info.health_check is not None:
        out["health_check"] = _to_builtins(info.health_check)
    return out


def _framework_json(master: Master, fw: Any, now: float) -> dict[str, Any]:
    info = fw.info
    used = Resources()
    for task in fw.tasks.values():
        if not task.state.is_terminal:
            used = used + task.resources
    offered = Resources()
    offers = []
    for offer_id in sorted(fw.offers):
        entry = master.offers[offer_id]
        offered = offered + entry.resources
        offers.append(
            {
                "id": offer_id,
                "framework_id": fw.id,
                "slave_id": entry.agent_id,
                "resources": entry.resources.to_json_map(),
                "allocation_info": {"role": entry.role},
            }
        )
    return {
        "id": fw.id,
        "name": info.name,
        "user": info.user,
        "hostname": info.hostname or "",
        "principal": info.principal,
        "webui_url": info.webui_url or "",
        "failover_timeout": info.failover_timeout or 0.0,
        "checkpoint": bool(info.checkpoint),
        "role": info.role or "*",
        "roles": list(fw.roles),
        "suppressed_roles": sorted(fw.suppressed),
        "capabilities": [c.type for c in info.capabilities],
        "registered_time": master.wall(fw.registered_time),
        "unregistered_time": master.wall(fw.unregistered_time) if fw.unregistered_time is not None else 0.0,
        "active": fw.active,
        "connected": fw.connected,
        "recovered": fw.recovered,
        "resources": (used + offered).to_json_map(),
        "used_resources": used.to_json_map(),
        "offered_resources": offered.to_json_map(),
        "tasks": [_task_json(t) for t in fw.tasks.values()],
        "unreachable_tasks": [_task_json(t) for t in fw.unreachable_tasks.values()],
        "completed_tasks": [_task_json(t) for t in fw.completed_tasks],
        "offers": offers,
        "executors": [
            {"executor_id": eid, "slave_id": aid, "resources": e.resources.to_json_map()}
            for (aid, fid, eid), e in master.executors.items()
            if fid == fw.id
        ],
    }


def render_state(master: Master, now: float, *, cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mesos's ``GET /master/state`` document for this master."""
    c = master.config
    slaves = []
    for agent in master.agents.values():
        record = agent.record
        used = Resources()
        for task in agent.tasks.values():
            if not task.state.is_terminal and task.state != TaskState.TASK_UNREACHABLE:
                used = used + task.resources
        offered = Resources()
        for offer_id in agent.offers:
            offered = offered + master.offers[offer_id].resources
        slaves.append(
            {
                "id": agent.id,
                "pid": f"{record.pid_path}@{record.ip}:{record.port}",
                "hostname": record.hostname,
                "port": record.port,
                "registered_time": master.wall(agent.registered_time),
                "resources": record.resources.to_json_map(),
                "used_resources": used.to_json_map(),
                "offered_resources": offered.to_json_map(),
                "reserved_resources": {},
                "unreserved_resources": record.resources.to_json_map(),
                "attributes": {a.name: a.as_text() for a in record.attributes},
                "active": agent.connected,
                "version": MESOS_VERSION,
            }
        )
    frameworks = [_framework_json(master, fw, now) for fw in master.frameworks.values()]
    completed = [_framework_json(master, fw, now) for fw in master.completed_frameworks.values()]
    for doc in completed:
        doc["active"] = False
        doc["connected"] = False
    out: dict[str, Any] = {
        "version": MESOS_VERSION,
        "id": master.id,
        "pid": f"master@{c.ip}:{c.port}",
        "hostname": c.hostname,
        "leader": f"master@{c.ip}:{c.port}",
        "leader_info": _to_builtins(master.info),
        "start_time": master.wall(master.start_time),
        "elected_time": master.wall(master.start_time),
        "activated_slaves": sum(1 for a in master.agents.values() if a.connected),
        "deactivated_slaves": sum(1 for a in master.agents.values() if not a.connected),
        "unreachable_slaves": len(master.unreachable),
        "slaves": slaves,
        "frameworks": frameworks,
        "completed_frameworks": completed,
        "unregistered_frameworks": [],
        "orphan_tasks": [],
    }
    if cluster:
        out["local_cluster"] = cluster
    return out


def render_metrics(master: Master, now: float) -> dict[str, float]:
    """A flat ``/metrics/snapshot`` with the Mesos master metric names that apply here."""
    counts = master.task_counts()
    total = master.allocator.total()
    used = Resources()
    for agent in master.agents.values():
        for task in agent.tasks.values():
            if not task.state.is_terminal and task.state != TaskState.TASK_UNREACHABLE:
                used = used + task.resources
    frameworks = list(master.frameworks.values())
    agents = list(master.agents.values())
    out: dict[str, float] = {
        "master/elected": 1.0,
        "master/uptime_secs": max(0.0, now - master.start_time),
        "master/frameworks_active": float(sum(1 for f in frameworks if f.active)),
        "master/frameworks_inactive": float(sum(1 for f in frameworks if not f.active)),
        "master/frameworks_connected": float(sum(1 for f in frameworks if f.connected)),
        "master/frameworks_disconnected": float(sum(1 for f in frameworks if not f.connected)),
        "master/slaves_active": float(sum(1 for a in agents if a.connected)),
        "master/slaves_inactive": float(sum(1 for a in agents if not a.connected)),
        "master/slaves_connected": float(sum(1 for a in agents if a.connected)),
        "master/slaves_disconnected": float(sum(1 for a in agents if not a.connected)),
        "master/slaves_unreachable": float(len(master.unreachable)),
        "master/outstanding_offers": float(len(master.offers)),
    }
    for state in TaskState:
        # Non-terminal states are gauges; terminal ones are cumulative counters (below), as in Mesos.
        name = "master/tasks_" + state.value.removeprefix("TASK_").lower()
        out[name] = 0.0 if state.is_terminal else float(counts.get(state.value, 0))
    for name in ("cpus", "mem", "disk", "gpus"):
        t, u = total.scalar(name), used.scalar(name)
        out[f"master/{name}_total"] = t
        out[f"master/{name}_used"] = u
        out[f"master/{name}_percent"] = u / t if t else 0.0
    for name, value in master.metrics.counters.items():
        if not name.startswith("gauge/"):
            out[name] = float(value)
    return dict(sorted(out.items()))
