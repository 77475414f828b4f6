// A front-end developer's first program against the API, with the client generated from
// the committed spec (openapi-typescript + openapi-fetch). `tsc --strict` must accept it
// without a cast, and it must run against a live server: tests/clients/run.sh does both.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Problem = components["schemas"]["Problem"];
type Contact = components["schemas"]["Contact"];

const base = process.env.CRM_BASE ?? "http://127.0.0.1:8080";
const email = process.env.CRM_EMAIL ?? "admin@example.com";
const password = process.env.CRM_PASSWORD ?? "";

function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Error(`failed: ${what}`);
}

const client = createClient<paths>({ baseUrl: base });

// Sign in: a public operation, called before any token exists.
const login = await client.POST("/api/v1/auth/login", { body: { email, password } });
check(login.data !== undefined, `login answers 200 (got ${login.response.status})`);
const token: string = login.data.access_token;
const auth: Middleware = {
  onRequest({ request }) {
    request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
};
client.use(auth);

// An admin defines a custom field on contacts.
const field = await client.POST("/api/v1/meta/objects/{object}/fields", {
  params: { path: { object: "contact" } },
  body: { key: "tier", label: "Tier", field_type: "text" },
});
check(field.response.status === 201, `custom field defined (got ${field.response.status})`);

const account = await client.POST("/api/v1/accounts", { body: { name: "Acme Typed Ltd" } });
check(account.data !== undefined, "account created");
const accountId: string = account.data.id;

// Two contacts linked to the account, one with the custom field.
const created: Contact[] = [];
for (const [first, tier] of [["Ada", "gold"], ["Grace", null]] as const) {
  const contact = await client.POST("/api/v1/contacts", {
    body: {
      first_name: first,
      last_name: "Typed",
      emails: [{ email: `${first.toLowerCase()}@typed.example`, primary: true }],
      accounts: [{ account_id: accountId, role: "decision_maker" }],
      custom: tier === null ? {} : { tier },
    },
  });
  check(contact.data !== undefined, `contact ${first} created (got ${contact.response.status})`);
  created.push(contact.data);
}

// Each operation has its own types: a wrong body or field is a compile error (tsc fails
// on an `@ts-expect-error` that expects none).
async function typeErrors(): Promise<void> {
  // @ts-expect-error an account cannot be created without its name.
  await client.POST("/api/v1/accounts", { body: { industry: "Retail" } });
  // @ts-expect-error a contact's first name is text.
  await client.POST("/api/v1/contacts", { body: { first_name: 42 } });
  const one = await client.GET("/api/v1/contacts/{id}", { params: { path: { id: accountId } } });
  // @ts-expect-error a contact has no `name` (that is an account's field).
  one.data?.name;
}
void typeErrors;

// List with a filter, one per page, following the cursor.
const seen: string[] = [];
let cursor: string | undefined;
do {
  const page = await client.GET("/api/v1/contacts", {
    params: { query: { account_id: accountId, limit: 1, sort: "first_name", cursor } },
  });
  check(page.data !== undefined, "contacts listed");
  seen.push(...page.data.data.map((c) => c.first_name ?? ""));
  cursor = page.data.next_cursor ?? undefined;
} while (cursor !== undefined);
check(seen.join(",") === "Ada,Grace", `two pages of the account's contacts (got ${seen})`);

// Read one by id; the custom field comes back.
const ada = created[0];
check(ada !== undefined, "Ada was created");
const read = await client.GET("/api/v1/contacts/{id}", { params: { path: { id: ada.id } } });
check(read.data !== undefined, "contact read");
check(read.data.custom["tier"] === "gold", `custom field read back (got ${JSON.stringify(read.data.custom)})`);
check(read.data.accounts[0]?.account_id === accountId, "the contact is linked to the account");

// A 422 read as a typed problem: the custom field holds text, not a number.
const bad = await client.PATCH("/api/v1/contacts/{id}", {
  params: { path: { id: ada.id } },
  body: { custom: { tier: 7 } },
});
check(bad.response.status === 422, `422 for a number in a text field (got ${bad.response.status})`);
const problem: Problem | undefined = bad.error;
check(problem !== undefined, "the 422 has a problem body");
check(problem.status === 422 && problem.code.length > 0, "problem has status and code");
check(problem.errors?.[0]?.field === "custom.tier", `the failing field is named (got ${JSON.stringify(problem.errors)})`);

console.log(`typescript client: ok (${seen.length} contacts over ${seen.length} pages, problem ${problem.code})`);
