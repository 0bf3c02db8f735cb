"""Steward-executor TaskInfos built the way Steward builds them (placement, then ``build_task_info``)."""

from __future__ import annotations

import dataclasses

from framework.config import Config
from framework.core.constraints import host_from_offer
from framework.core.desired import compute_desired
from framework.core.placement import plan_offers
from framework.core.taskbuild import (
    StewardExecutorArtifact,
    TaskSpec,
    build_task_info,
    service_fingerprint,
    service_template,
)
from framework.model.proto import TaskInfo
from framework.model.tasks import AgentId, TaskId
from framework.testing.builders import make_config, make_offer

ARTIFACT = StewardExecutorArtifact(
    uri="http://127.0.0.1:9/0123abcd/steward-executor.pyz", usage_interval_s=5.0
)


def site(services: str) -> Config:
    return make_config("framework: {roles: [site]}\nservices:\n" + services)


def steward_task(
    config: Config,
    name: str,
    *,
    artifact: StewardExecutorArtifact | None = ARTIFACT,
    task_id: str | None = None,
) -> TaskInfo:
    """Place one task of ``name`` on a roomy offer and build its TaskInfo with ``artifact``."""
    service = config.services[name]
    offer = make_offer(
        cpus=16, mem=65536, disk=100000, ports=[(31000, 31099)], hostname="wn-1", role=service.role
    )
    only = dataclasses.replace(config, services={name: service})
    desired = compute_desired(only, {}, {"wn-1": host_from_offer(offer)}, ())
    plan = plan_offers([offer], desired, (), 0.0, config=only, squid_endpoints=("s:1",))
    launch = next(lau for lau in plan.launches if lau.service == name)
    spec = TaskSpec(
        task_id=TaskId(task_id or f"{name}.{launch.slot}.abc"),
        service=service,
        slot=launch.slot,
        agent_id=AgentId(offer.agent_id.value),
        hostname="wn-1",
        resources=launch.resources,
        ports=launch.ports,
        config_fingerprint=service_fingerprint(service),
        framework_id="fw-1",
    )
    return build_task_info(spec, service_template(service, artifact))
