"""Property-based test of the API from its own OpenAPI schema (schemathesis + hypothesis): valid
and deliberately invalid requests for every operation — odd types, odd content types, random
image bytes — and no answer is a 5xx.

Driven through hypothesis directly (``APIOperation.as_strategy``) rather than schemathesis's
pytest plugin, which does not load under this pytest version."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from serve_helpers import make_client

TINY_PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
            b"\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82")
schemathesis.openapi.media_type("image/png", st.one_of(st.binary(max_size=512), st.just(TINY_PNG)))
schemathesis.openapi.media_type("image/jpeg", st.binary(max_size=512))

APP = make_client().app
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def test_the_schema_lists_every_route():
    assert {op.path for op in OPERATIONS} >= {"/healthz", "/v1/model", "/v1/predict", "/metrics",
                                              "/v2/models/{name}/infer", "/v2/models/{name}"}


def _has_inputs(op) -> bool:  # negative cases need something to break
    return bool(len(op.body) or len(op.query) or len(op.path_parameters))


CASES = [(op, mode) for op in OPERATIONS for mode in GenerationMode
         if mode is GenerationMode.POSITIVE or _has_inputs(op)]


@pytest.mark.parametrize("operation,mode", CASES, ids=[f"{op.method.upper()} {op.path} {m.value}" for op, m in CASES])
def test_no_generated_request_gets_a_server_error(operation, mode):
    @settings(max_examples=40 if operation.method == "post" else 10, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        case.call_and_validate(checks=[not_a_server_error])

    check()
