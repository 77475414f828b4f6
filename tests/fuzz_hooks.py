"""Schemathesis hooks for tests/fuzz.sh: state that a stateless fuzzer cannot model.

- `cursor` is an opaque token the server mints; a generated one is never valid (400),
  so it is dropped. Paging is covered by the Rust tests.
- An `Idempotency-Key` reused with a different body is rightly a 422; the fuzzer repeats
  keys across unrelated requests, so well-formed keys are made unique per request.
  Malformed keys are left alone, so the server's rejection of them is still tested.
- Stateful links follow fields such as a user's `team_id`; when that field is null the
  link yields no id (schemathesis would send "None"), so a fresh id stands in for it.
"""
import re
import uuid

import schemathesis

WELL_FORMED_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.path_parameters:
        for name, value in list(case.path_parameters.items()):
            if value is None or value == "None":
                case.path_parameters[name] = str(uuid.uuid4())
    if case.query and "cursor" in case.query:
        case.query = {k: v for k, v in case.query.items() if k != "cursor"}
    if _probes_a_missing_parameter(case) or not case.headers:
        return
    key = case.headers.get("Idempotency-Key")
    if isinstance(key, str) and WELL_FORMED_KEY.match(key):
        case.headers["Idempotency-Key"] = f"{key[:200]}-{uuid.uuid4().hex}"


def _probes_a_missing_parameter(case):
    # Coverage cases that leave out a required header (Authorization) must go as generated.
    data = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    return "MISSING" in str(getattr(data, "scenario", "")).upper()
