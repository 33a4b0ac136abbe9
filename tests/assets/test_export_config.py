"""The run config of a request carries every filter of the request model (a dropped one exports everything)."""

import json

import pytest

from eclipse_exports.assets import ExportConfig
from eclipse_exports.models import ExportFilters, ExportRequest, ResourceType

REQUESTS = {
    "alerts": {"severity": ["critical", "high"], "status": ["new"], "brand": ["Acme"],
               "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00+01:00"},
    "audit_logs": {"action": ["member.*", "alert.acknowledged"], "actor": ["usr_acme_owner"],
                   "from": "2026-11-01T00:00:00Z"},
}


@pytest.mark.parametrize("resource", sorted(REQUESTS))
def test_every_filter_survives_the_run_config(resource):
    request = ExportRequest.from_payload(json.dumps({
        "id": f"cfg-{resource}", "workspaceId": "ws_acme", "userId": "usr_acme_owner", "resourceType": resource,
        "format": "csv", "filters": REQUESTS[resource]}))
    config = ExportConfig(**ExportConfig.from_request(request).model_dump())  # as the run's config arrives
    back = config.to_request(ResourceType(resource), "ws_acme", "run-1")
    assert back.filters == request.filters
    assert set(REQUESTS[resource]) <= set(back.filters.model_dump(by_alias=True, exclude_none=True))


def test_the_config_knows_every_filter_of_the_model():
    from eclipse_exports.assets.exports import _FILTER_NAMES, ExportFiltersConfig

    names = {_FILTER_NAMES.get(name, name) for name in ExportFiltersConfig.model_fields}
    assert names == {field.alias or name for name, field in ExportFilters.model_fields.items()}
