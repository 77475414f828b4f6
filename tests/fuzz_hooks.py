"""Schemathesis hooks for tests/fuzz.sh: state that a stateless fuzzer cannot model.

- `cursor` is an opaque token the server mints; a generated one is never valid (400),
  so it is dropped. Paging is covered by the Rust tests.
- An `Idempotency-Key` reused with a different body is rightly a 422; the fuzzer repeats
  keys across unrelated requests, so well-formed keys are made unique per request.
  Malformed keys are left alone, so the server's rejection of them is still tested.
- Text with control characters (other than tab and line breaks) is refused with a 422 on
  every JSON body, a rule of the API's conventions that JSON Schema cannot state for every
  string; generated bodies have them replaced by `?`. The Rust suite tests the refusal
  (tests/tests/api/hardening.rs).
- `sort=custom.<key>` names a custom field that must be defined first (else 400); the
  fuzzer invents keys, so that one form is dropped. The Rust suite sorts by custom fields.
- `include_archived=true` on a single record's GET returns an archived record on
  purpose; schemathesis's use-after-free check (ST301) reads that as a deleted record
  still served when its stateful phase GETs right after a DELETE. The parameter is
  dropped from item GETs; the Rust suite covers it (archive and restore tests).
- Stateful links follow fields such as a user's `team_id`; when that field is null the
  link yields no id (schemathesis would send "None"), so a fresh id stands in for it.
"""
import re
import uuid

import schemathesis

WELL_FORMED_KEY = re.compile(r"^[!-~]{1,255}$")
CUSTOM_SORT = re.compile(r"^-?custom\.[a-z][a-z0-9_]{0,39}$")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@schemathesis.hook
def map_body(ctx, body):
    return without_control(body)


def without_control(value):
    if isinstance(value, str):
        return CONTROL.sub("?", value)
    if isinstance(value, dict):
        return {k: without_control(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_control(v) for v in value]
    return value


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.path_parameters:
        for name, value in list(case.path_parameters.items()):
            if value is None or value == "None":
                case.path_parameters[name] = str(uuid.uuid4())
    if case.method == "GET" and case.path_parameters and case.query and "include_archived" in case.query:
        case.query = {k: v for k, v in case.query.items() if k != "include_archived"}
    if case.query and "cursor" in case.query:
        case.query = {k: v for k, v in case.query.items() if k != "cursor"}
    if case.query and CUSTOM_SORT.match(str(case.query.get("sort", ""))):
        case.query = {k: v for k, v in case.query.items() if k != "sort"}
    if _probes_a_missing_parameter(case) or not case.headers:
        return
    key = case.headers.get("Idempotency-Key")
    if isinstance(key, str) and WELL_FORMED_KEY.match(key):
        case.headers["Idempotency-Key"] = f"{key[:200]}-{uuid.uuid4().hex}"


def _probes_a_missing_parameter(case):
    # Coverage cases that leave out a required header (Authorization) must go as generated.
    data = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    return "MISSING" in str(getattr(data, "scenario", "")).upper()
