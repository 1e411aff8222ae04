// Drives Peerix's dashboard in headless Chromium (Debian's, through playwright-core) and checks
// it as an operator would use it. Called by tests/dashboard.rs with node A (the one shown, while
// its scan runs) and node B (its peer):
//   node dashboard_check.mjs <A url> <B url> <B's p2p address> <screenshot dir>
// Prints one JSON line of what it saw; exits 1 with the reason when a check fails.
import { chromium } from "playwright-core";

const [aUrl, bUrl, bAddr, shots] = process.argv.slice(2);
const origin = new URL(aUrl).origin;
const limit = (ms) => Date.now() + ms;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const seen = { requests: [], console_errors: [], steps: [] };

class Failed extends Error {}
function fail(why) {
  throw new Failed(why);
}

async function until(what, ms, ready) {
  const end = limit(ms);
  while (Date.now() < end) {
    if (await ready()) return;
    await sleep(200);
  }
  fail(what);
}

const number = (text) => Number(String(text).replace(/[^0-9.]/g, ""));

async function peersOf(url) {
  // Node's fetch sends neither Origin nor Sec-Fetch headers: a script, as curl.
  const status = await (await fetch(url + "/status")).json();
  return status.node.peers.length;
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions",
    // Nothing but loopback resolves, so a stray request cannot leave the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  ],
});

async function open(viewport) {
  const page = await browser.newPage({ viewport });
  page.on("request", (request) => seen.requests.push(request.url()));
  page.on("console", (message) => {
    if (message.type() === "error") seen.console_errors.push(message.text());
  });
  page.on("pageerror", (error) => seen.console_errors.push(String(error)));
  await page.goto(aUrl + "/dashboard");
  await until("the dashboard never went live", 15000, async () =>
    (await page.textContent("#live")) === "live");
  return page;
}

const text = (page, id) => page.textContent(id);

try {
  const page = await open({ width: 1280, height: 900 });

  // The figures move while the scan runs.
  const firstDone = number(await text(page, "#scan-done"));
  await until("the scan figures never changed", 15000, async () =>
    number(await text(page, "#scan-done")) > firstDone);
  const scanState = await text(page, "#scan-state");
  if (scanState !== "running") fail("the scan shows as " + scanState + " while it runs");
  await sleep(2500); // two throughput samples for the graph
  await page.screenshot({ path: shots + "/dashboard-scan.png", fullPage: true });
  seen.steps.push("scan moving: " + firstDone + " -> " + (await text(page, "#scan-done")));

  // Pause stops the announce count; resume restarts it.
  await page.click("#announce-toggle");
  await until("announcements never showed paused", 5000, async () =>
    (await text(page, "#announce-state")) === "paused");
  if ((await text(page, "#announce-toggle")) !== "Resume announcements") fail("the announce button does not offer resume");
  await sleep(1500);
  const held = number(await text(page, "#announce-done"));
  await sleep(2500);
  const still = number(await text(page, "#announce-done"));
  if (still !== held) fail("paused announcements went on: " + held + " -> " + still);
  await page.click("#announce-toggle");
  await until("resumed announcements never went on", 20000, async () =>
    number(await text(page, "#announce-done")) > held);
  seen.steps.push("announcements held at " + held + ", then " + (await text(page, "#announce-done")));

  // The scan pauses and resumes the same way.
  await page.click("#scan-toggle");
  await until("the scan never showed paused", 5000, async () =>
    (await text(page, "#scan-state")) === "paused");
  await sleep(1500);
  const scanHeld = number(await text(page, "#scan-done"));
  await sleep(2000);
  if (number(await text(page, "#scan-done")) !== scanHeld) fail("a paused scan went on");
  await page.click("#scan-toggle");
  await until("the resumed scan never went on", 20000, async () =>
    number(await text(page, "#scan-done")) > scanHeld);
  seen.steps.push("scan held at " + scanHeld);

  // The emergency stop: the peer sees this node go, and comes back after start.
  if ((await peersOf(bUrl)) !== 1) fail("B is not connected to A before the stop");
  await page.click("#p2p-toggle");
  await until("the stop never showed", 5000, async () =>
    (await text(page, "#p2p-state")) === "stopped" && (await text(page, "#peer-count")) === "0");
  await until("B still sees A after the stop", 10000, async () => (await peersOf(bUrl)) === 0);
  seen.steps.push("stopped: B sees 0 peers");
  await page.click("#p2p-toggle");
  await until("the start never showed", 5000, async () =>
    (await text(page, "#p2p-state")) === "running");
  const connect = await fetch(aUrl + "/api/v0/swarm/connect?arg=" + encodeURIComponent(bAddr), { method: "POST" });
  if (!connect.ok) fail("A could not dial B after start: " + (await connect.text()));
  await until("the dashboard never showed B back", 15000, async () =>
    (await text(page, "#peer-count")) === "1");
  await until("B never saw A back", 10000, async () => (await peersOf(bUrl)) === 1);
  seen.steps.push("started: peers back");
  // B tells A again what it holds once they are connected anew.
  const peerRows = () => page.$$eval("#peer-rows tr", (rows) => rows.map((r) => r.textContent));
  await until("B's holding never showed again", 15000, async () =>
    (await peerRows()).some((row) => row.includes("2 paths")));

  const notice = await page.$eval("#notice", (el) => (el.hidden ? "" : el.textContent));
  if (notice) fail("a control reported: " + notice);
  seen.transfers = await page.$$eval("#transfer-list li", (items) => items.map((i) => i.textContent));
  seen.peer_rows = await peerRows();
  seen.not_from_upstream = await text(page, "#not-upstream");
  seen.hits = await text(page, "#hits");
  seen.lookups = await page.$$eval("#lookup-list dd", (items) => items.map((i) => i.textContent));
  seen.refusals = await page.$$eval("#refusal-list li", (items) => items.map((i) => i.textContent));

  // A phone: everything fits 375 px, with no sideways scrolling.
  const phone = await open({ width: 375, height: 812 });
  await sleep(1500);
  seen.phone_width = await phone.evaluate(() => document.documentElement.scrollWidth);
  await phone.screenshot({ path: shots + "/dashboard-phone.png", fullPage: true });
  if (seen.phone_width > 375) fail("the page is " + seen.phone_width + " px wide on a 375 px phone");

  const elsewhere = seen.requests.filter((url) => new URL(url).origin !== origin);
  if (elsewhere.length) fail("requests left the node: " + elsewhere.join(", "));
  if (seen.console_errors.length) fail("console errors");
} catch (error) {
  seen.failed = error instanceof Failed ? error.message : String((error && error.stack) || error);
  process.exitCode = 1;
} finally {
  await browser.close();
}
if (!seen.failed) seen.requests = seen.requests.length;
console.log(JSON.stringify(seen));
