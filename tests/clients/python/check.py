"""The TypeScript check's program again, with the client openapi-python-client generates
from the committed spec (tests/clients/run.sh generates it and runs this against a live
server). Also imports a plain CSV file, the upload a spreadsheet user sends first."""

import io
import os
import sys
import time
from uuid import UUID

from crm_client import AuthenticatedClient, Client
from crm_client.api.accounts import create_account
from crm_client.api.auth import login
from crm_client.api.contacts import create_contact, get_contact, list_contacts, update_contact
from crm_client.api.integrations import create_import, get_import
from crm_client.api.meta import create_field
from crm_client.models import (
    AccountCreate,
    AccountLinkInput,
    AccountRole,
    Contact,
    ContactCreate,
    ContactCreateCustomType0,
    ContactPatch,
    ContactPatchCustomType0,
    EmailInput,
    FieldCreate,
    FieldType,
    LoginRequest,
    Problem,
    TokenResponse,
)
from crm_client.types import File

base = os.environ.get("CRM_BASE", "http://127.0.0.1:8080")


def check(ok, what):
    if not ok:
        sys.exit(f"failed: {what}")


def expect(response, status, kind, what):
    """The parsed body of a response with this status and model, or exit naming it."""
    check(
        response.status_code == status and isinstance(response.parsed, kind),
        f"{what}: wanted {status} {kind.__name__}, got {response.status_code} {response.content[:300]!r}",
    )
    return response.parsed


# Sign in: a public operation, called with the unauthenticated client.
tokens = expect(
    login.sync_detailed(
        client=Client(base_url=base),
        body=LoginRequest(email=os.environ["CRM_EMAIL"], password=os.environ["CRM_PASSWORD"]),
    ),
    200,
    TokenResponse,
    "login",
)
api = AuthenticatedClient(base_url=base, token=tokens.access_token)

field = create_field.sync_detailed(
    "contact", client=api, body=FieldCreate(key="segment", label="Segment", field_type=FieldType.TEXT)
)
check(field.status_code == 201, f"custom field defined (got {field.status_code} {field.content!r})")

account = expect(
    create_account.sync_detailed(client=api, body=AccountCreate(name="Acme Python Ltd")),
    201,
    object,
    "account created",
)
account_id = account.id
check(isinstance(account_id, UUID), "ids are parsed as UUIDs")

created = []
for first, custom in (("Ada", {"segment": "gold"}), ("Grace", {})):
    body = ContactCreate(
        first_name=first,
        last_name="Python",
        emails=[EmailInput(email=f"{first.lower()}@python.example", primary=True)],
        accounts=[AccountLinkInput(account_id=account_id, role=AccountRole.DECISION_MAKER)],
        custom=ContactCreateCustomType0.from_dict(custom),
    )
    created.append(expect(create_contact.sync_detailed(client=api, body=body), 201, Contact, first))

# A filter and a cursor, one contact per page.
seen, cursor = [], None
while True:
    page = list_contacts.sync(
        client=api, account_id=account_id, limit=1, sort="first_name", **({"cursor": cursor} if cursor else {})
    )
    check(page is not None and not isinstance(page, Problem), "contacts listed")
    seen += [c.first_name for c in page.data]
    cursor = page.next_cursor
    if not cursor:
        break
check(seen == ["Ada", "Grace"], f"two pages of the account's contacts (got {seen})")

ada = expect(get_contact.sync_detailed(created[0].id, client=api), 200, Contact, "contact read")
check(ada.custom["segment"] == "gold", f"custom field read back (got {ada.custom.to_dict()})")
check(ada.accounts[0].account_id == account_id, "the contact is linked to the account")
check(ada.created_at.tzinfo is not None, "timestamps are parsed as aware datetimes")

problem = expect(
    update_contact.sync_detailed(
        ada.id, client=api, body=ContactPatch(custom=ContactPatchCustomType0.from_dict({"segment": 7}))
    ),
    422,
    Problem,
    "a number in a text field",
)
check(problem.errors[0].field == "custom.segment", f"the failing field is named (got {problem.errors})")

# A spreadsheet export as it comes: a header row and three columns.
csv = b"first_name,last_name,email\nLin,Csv,lin@csv.example\nMo,Csv,mo@csv.example\n"
job = expect(
    create_import.sync_detailed(
        client=api, body=File(payload=io.BytesIO(csv), mime_type="text/csv"), object_="contacts", format_="csv"
    ),
    202,
    object,
    "import accepted",
)
for _ in range(100):
    job = expect(get_import.sync_detailed(job.id, client=api), 200, object, "import progress")
    if job.status in ("succeeded", "failed"):
        break
    time.sleep(0.1)
check(job.status == "succeeded" and job.created == 2, f"import created both rows (got {job.to_dict()})")

print(f"python client: ok ({len(seen)} contacts over {len(seen)} pages, problem {problem.code}, import of {job.created})")
