// The docs page as a developer uses it, in Debian's Chromium driven by playwright-core:
// every tag of the spec renders all of its operations, "Authorize" takes a token, "Try it
// out" on a list returns data, and the page never requests anything from another host.
// Run by tests/clients/run.sh with CRM_BASE, CRM_TOKEN and CRM_SCREENSHOT set.
import { chromium } from "playwright-core";

const base = process.env.CRM_BASE ?? "http://127.0.0.1:8080";
const token = process.env.CRM_TOKEN ?? "";
const screenshot = process.env.CRM_SCREENSHOT ?? "docs.png";
// The page is opened under a real-looking host name (resolved to the loopback server by
// Chromium itself): Swagger UI skips its online validator for localhost, so only a real
// name shows whether the page would call out.
const server = new URL(base);
const origin = `http://crm.test:${server.port}`;

function check(ok, what) {
  if (!ok) throw new Error(`failed: ${what}`);
}

const spec = await (await fetch(`${base}/openapi.json`)).json();
const perTag = new Map();
for (const item of Object.values(spec.paths)) {
  for (const [method, op] of Object.entries(item)) {
    if (!["get", "put", "post", "delete", "patch"].includes(method)) continue;
    for (const tag of op.tags ?? []) perTag.set(tag, (perTag.get(tag) ?? 0) + 1);
  }
}
check(spec.tags.every((t) => perTag.has(t.name)) && [...perTag.keys()].every((t) => spec.tags.some((d) => d.name === t)),
  "every defined tag is used and every used tag defined");

// Something for "Try it out" to find.
const name = `Docs Page Check ${Date.now()}`;
const made = await fetch(`${base}/api/v1/accounts`, {
  method: "POST",
  headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
  body: JSON.stringify({ name }),
});
check(made.status === 201, `account for the page to list (got ${made.status})`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // As root in a container, without the background services that would call out.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    `--host-resolver-rules=MAP crm.test ${server.hostname}`],
});
const elsewhere = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.protocol !== "data:" && url.protocol !== "blob:" && url.origin !== origin) elsewhere.push(r.url());
  });
  // The docs CSP refuses other hosts, so an attempt shows as a violation, not a request.
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) elsewhere.push(m.text());
  });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  await page.goto(`${origin}/docs/`, { waitUntil: "networkidle" });
  await page.waitForSelector(".opblock-tag-section", { timeout: 30_000 });

  // Every tag, with every one of its operations (tags start expanded, operations folded).
  for (const [tag, count] of perTag) {
    const section = page.locator(".opblock-tag-section", { has: page.locator(`h3[data-tag="${tag}"]`) });
    const shown = await section.locator(".opblock").count();
    check(shown === count, `tag ${tag}: ${count} operations in the spec, ${shown} on the page`);
  }

  // Authorize with the bearer token.
  await page.click(".auth-wrapper .authorize");
  await page.fill(".auth-container input", token);
  await page.click(".auth-btn-wrapper .modal-btn.authorize");
  await page.click(".auth-btn-wrapper .btn-done");

  // Try it out: list accounts, filtered by the name just created.
  const op = page.locator("#operations-accounts-list_accounts");
  await op.locator(".opblock-summary").click();
  await op.locator(".try-out__btn").click();
  await op.locator('tr[data-param-name="q"] input').fill(name);
  await op.locator(".execute").click();
  const status = op.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor({ timeout: 30_000 });
  check((await status.innerText()).trim() === "200", `Try it out answered ${await status.innerText()}`);
  const body = await op.locator(".live-responses-table .response-col_description .microlight").first().innerText();
  check(body.includes(name), "the response on the page holds the account");
  await op.screenshot({ path: screenshot });

  check((await page.locator(".validator-badge, img[src*='validator']").count()) === 0, "no online validator badge");
  check(errors.length === 0, `no script errors on the page: ${errors.join("; ")}`);
  check(elsewhere.length === 0, `requests to other hosts: ${elsewhere.join(", ")}`);
  console.log(`docs page: ok (${perTag.size} tags, ${[...perTag.values()].reduce((a, b) => a + b, 0)} operation entries, try-it-out 200; screenshot ${screenshot})`);
} finally {
  await browser.close();
}
