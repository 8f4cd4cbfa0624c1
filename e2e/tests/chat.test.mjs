// The web application in a real browser (Debian's Chromium, driven by playwright-core), against a
// platform the `browser` test of the ollamanet crate started with the real SmolLM2 and MiniLM
// models. One user's story, in order: each step builds on the one before.
//
// Environment (set by that test): OLLAMANET_URL, OLLAMANET_ADMIN and OLLAMANET_PASSWORD (an
// administrator), OLLAMANET_MODEL, E2E_ARTIFACTS (where screenshots go), CHROMIUM.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through \`scripts/test\``);
  return value;
};
const base = env("OLLAMANET_URL");
const password = env("OLLAMANET_PASSWORD");
const model = env("OLLAMANET_MODEL");
const artifacts = env("E2E_ARTIFACTS");
mkdirSync(artifacts, { recursive: true });

const WAIT = { timeout: 120_000 };
let browser;
let user; // the user's page
const lengths = []; // the streaming reply's length after each change the page made to it
const dialogs = []; // any alert a script managed to run

before(async () => {
  browser = await chromium.launch({
    executablePath: env("CHROMIUM"),
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const context = await browser.newContext({ baseURL: base });
  // Reports, from every page, each change to the reply being written: how the test sees the
  // reply arrive piece by piece. (Injected by the browser, not the site: the site's CSP allows
  // no inline script.)
  await context.exposeFunction("reportReplyLength", (n) => lengths.push(n));
  await context.addInitScript(() => {
    document.addEventListener("DOMContentLoaded", () => {
      const list = document.getElementById("messages");
      if (!list) return;
      new MutationObserver(() => {
        const last = list.querySelector("li.message.assistant:last-child:not([id]) .content");
        if (last) window.reportReplyLength(last.textContent.length);
      }).observe(list, { subtree: true, childList: true, characterData: true });
    });
  });
  user = await context.newPage();
  user.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss();
  });
});

after(async () => {
  await browser?.close();
});

const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

// Replies the server has rendered (the ones the script is still writing have no id).
const rendered = (page) => page.locator("li.message.assistant[id]");

// Clicks what sends a message or asks for a reply, and waits for the reply to be written: the
// page's script reloads the page when it is done.
async function replyTo(page, click) {
  lengths.length = 0;
  const reloaded = page.waitForEvent("load", WAIT);
  await click();
  await reloaded;
}

test("a visitor registers, signs out and signs in again", async () => {
  await user.goto("/register");
  await shot(user, "register");
  await user.fill("#username", "ada");
  await user.fill("#email", "ada@example.com");
  await user.fill("#password", password);
  await user.click("button[type=submit]");
  await user.waitForURL("**/chat");
  await user.click("text=Sign out");
  await user.waitForURL("**/login");
  await shot(user, "login");
  await user.fill("#login", "ada");
  await user.fill("#password", "not the password");
  await user.click("button[type=submit]");
  assert.match(await user.locator("[role=alert]").innerText(), /not right/);
  await user.fill("#password", password);
  await user.click("button[type=submit]");
  await user.waitForURL("**/chat");
});

test("a user cannot open the administration pages", async () => {
  const res = await user.goto("/admin");
  assert.equal(res.status(), 403);
  assert.match(await user.locator("h1").innerText(), /Administrators only/);
  assert.equal(await user.locator("header nav a[href='/admin']").count(), 0, "no way to the admin pages in the header");
});

test("a folder, and a conversation in it", async () => {
  await user.goto("/chat");
  await user.click("text=New folder");
  await user.fill("#folder-name", "Geography");
  await user.click("text=Create the folder");
  await user.waitForURL(/\/chat\?folder=/);
  const folder = user.url();
  assert.equal(await user.locator("h1").innerText(), "Geography");
  // The new conversation goes in the folder shown.
  await user.selectOption("#model", model);
  await user.fill("#title", "Capitals");
  await user.click("text=Start");
  await user.waitForURL(/\/chat\/[0-9a-f-]{36}$/);
  await user.goto(folder);
  await user.locator(".conversations a", { hasText: "Capitals" }).click();
  await user.waitForURL(/\/chat\/[0-9a-f-]{36}$/);
  await shot(user, "chat-empty");
});

test("the reply streams in token by token, then renders", async () => {
  await user.fill("#content", "What is the capital of France? Answer in one sentence.");
  await replyTo(user, () => user.click("#send button"));
  const distinct = new Set(lengths.filter((n) => n > 0));
  assert.ok(distinct.size >= 2, `the reply arrived in pieces: ${lengths}`);
  const reply = rendered(user).last();
  assert.ok((await reply.locator(".content").innerText()).trim().length > 0);
  assert.match(await reply.locator(".usage").innerText(), /tokens/);
  await shot(user, "conversation");
});

test("a long reply is stopped, and what was written is kept", async () => {
  await user.fill("#content", "Tell me a very long story about a dragon who learns to bake bread.");
  const before = await rendered(user).count();
  await user.click("#send button");
  await user.waitForFunction(() => {
    const last = document.querySelector("li.message.assistant:last-child:not([id]) .content");
    return last && last.textContent.length > 20;
  }, null, WAIT);
  await user.click("#stop button");
  await user.waitForLoadState("load");
  for (let i = 0; i < 60 && (await user.locator(".status-stopped").count()) === 0; i++) {
    await user.waitForTimeout(500);
    await user.reload();
  }
  assert.equal(await rendered(user).count(), before + 1);
  const stopped = rendered(user).last();
  assert.equal(await stopped.locator(".status-stopped").innerText(), "Stopped");
  assert.ok((await stopped.locator(".content").innerText()).length > 0, "the words written before the stop stay");
});

test("a reply is regenerated into a second version", async () => {
  const last = rendered(user).last();
  await replyTo(user, () => last.locator("text=Regenerate").click());
  // The page shows the new version of that reply: 2 of 2.
  assert.equal(await rendered(user).last().locator(".position").innerText(), "2/2");
});

test("an edited message branches the conversation, and the branches can be switched", async () => {
  const first = user.locator("li.message.user").first();
  await first.locator("summary", { hasText: "Edit" }).click();
  await first.locator("textarea").fill("What is the capital of Italy? Answer in one sentence.");
  await replyTo(user, () => first.locator("text=Send the edit").click());
  const edited = user.locator("li.message.user").first();
  assert.equal(await edited.locator(".position").innerText(), "2/2");
  assert.match(await edited.locator(".content").innerText(), /Italy/);
  await edited.locator("[aria-label='Previous version']").click();
  await user.waitForLoadState("load");
  const original = user.locator("li.message.user").first();
  assert.equal(await original.locator(".position").innerText(), "1/2");
  assert.match(await original.locator(".content").innerText(), /France/);
});

test("a document is attached, processed, and cited by the next reply", async () => {
  await user.setInputFiles("#file", {
    name: "orchard.txt",
    mimeType: "text/plain",
    buffer: Buffer.from(
      "The Hollow Lane orchard grows forty-two quince trees. " +
        "Its cider press runs only on Thursdays, and the cider is sold at the north gate.",
    ),
  });
  await user.click("form.attach button");
  await user.waitForURL(/#documents$/);
  // The page's script follows the processing without a reload.
  await user.locator("#documents .status-ready").waitFor(WAIT);
  await user.fill("#content", "According to the document, on which day does the cider press run?");
  await replyTo(user, () => user.click("#send button"));
  const citations = rendered(user).last().locator(".citations");
  assert.match(await citations.innerText(), /orchard\.txt/);
  await shot(user, "conversation-with-citation");
});

test("what users and documents say is shown, never run", async () => {
  await user.setInputFiles("#file", {
    name: "<img src=x onerror=alert('name')>.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("<script>alert('document')</script> [click](javascript:alert('link'))"),
  });
  await user.click("form.attach button");
  await user.waitForURL(/#documents$/);
  await user.fill("#content", "<script>alert('message')</script><img src=x onerror=alert('img')> [x](javascript:alert('md'))");
  await replyTo(user, () => user.click("#send button"));
  await user.reload();
  assert.deepEqual(dialogs, [], "no script ran");
  assert.equal(await user.locator("a[href^='javascript:']").count(), 0);
  assert.equal(await user.locator("#messages script, #documents script, #messages img, #documents img").count(), 0);
  assert.match(await user.locator("li.message.user").last().innerText(), /<script>alert\('message'\)<\/script>/);
});

test("notes and feedback on a reply", async () => {
  const reply = rendered(user).first();
  await reply.locator("button.rating", { hasText: /^Helpful$/ }).click();
  await user.waitForLoadState("load");
  const helpful = rendered(user).first().locator("button.rating", { hasText: /^Helpful$/ });
  assert.equal(await helpful.getAttribute("aria-pressed"), "true");
  await rendered(user).first().locator("summary", { hasText: "Add a note" }).click();
  await rendered(user).first().locator("textarea").fill("Check this against the atlas.");
  await rendered(user).first().locator("text=Save the note").click();
  await user.waitForLoadState("load");
  assert.match(await rendered(user).first().locator(".note").innerText(), /atlas/);
});

// What sticks out past the screen's right edge, if anything (wide code and tables scroll inside
// their own box).
const tooWide = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll("body *")]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
      .filter((e) => !e.closest("pre, .table-scroll, .content table"))
      .slice(0, 5)
      .map((e) => `${e.tagName.toLowerCase()}.${e.className} (${Math.round(e.getBoundingClientRect().right)}px)`),
  );

// Form controls a screen reader could not name.
const unlabelled = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
      .filter((c) => c.labels.length === 0 && !c.getAttribute("aria-label"))
      .map((c) => c.outerHTML.slice(0, 80)),
  );

test("the pages fit a phone", async () => {
  await user.setViewportSize({ width: 390, height: 844 });
  await user.reload();
  assert.equal(await user.locator("details.sidebar").evaluate((d) => d.open), false, "the conversation comes first");
  await shot(user, "conversation-phone");
  assert.deepEqual(await tooWide(user), [], "nothing is wider than a phone's screen");
  for (const path of ["/chat", "/explore", "/profile"]) {
    await user.goto(path);
    assert.deepEqual(await tooWide(user), [], `${path} fits a phone`);
  }
  await user.setViewportSize({ width: 1280, height: 800 });
});

test("the main pages, every control labelled", async () => {
  for (const [path, name] of [["/chat", "chat"], ["/explore", "explore"], ["/profile", "profile"]]) {
    const res = await user.goto(path);
    assert.equal(res.status(), 200, path);
    assert.deepEqual(await unlabelled(user), [], path);
    await shot(user, name);
  }
});

test("the keyboard reaches the message box and sends", async () => {
  await user.goto("/chat");
  await user.locator(".recent a").first().click();
  await user.focus("#content");
  await user.keyboard.type("Say hello.");
  // Tab to the Send button and press it: no mouse needed.
  await user.keyboard.press("Tab");
  assert.equal(await user.evaluate(() => document.activeElement.textContent), "Send");
  await replyTo(user, () => user.keyboard.press("Enter"));
});

test("an admin locks the user, whose open page is signed out on their next action", async () => {
  await user.goto("/chat");
  const admin = await (await browser.newContext({ baseURL: base })).newPage();
  await admin.goto("/login");
  await admin.fill("#login", env("OLLAMANET_ADMIN"));
  await admin.fill("#password", password);
  await admin.click("button[type=submit]");
  await admin.waitForURL("**/chat");
  for (const path of ["/admin", "/admin/users", "/admin/roles", "/admin/models", "/admin/engines", "/admin/audit", "/admin/usage"]) {
    const res = await admin.goto(path);
    assert.equal(res.status(), 200, path);
    assert.deepEqual(await unlabelled(admin), [], path);
  }
  await admin.goto("/admin/users?q=ada");
  await shot(admin, "admin-users");
  await admin.locator("td a", { hasText: /^ada$/ }).click();
  await admin.locator("button", { hasText: /^Lock$/ }).click();
  await admin.waitForLoadState("load");
  await admin.goto("/admin/engines");
  await shot(admin, "admin-engines");

  await user.locator("header nav a[href='/chat']").click();
  await user.waitForURL("**/login");
});
