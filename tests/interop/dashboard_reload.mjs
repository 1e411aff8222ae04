// Watches an open dashboard across two restarts of the node it shows (tests/dashboard.rs): one
// of the same executable, which must not reload the page, and one of another executable (an
// upgrade), which must. The restart command is given: `<restart> <executable>`.
//   node dashboard_reload.mjs <url> <restart command> <executable> <upgraded executable>
// Prints one JSON line of what it saw; exits 1 with the reason when a check fails.
import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";

const [url, restart, executable, upgraded] = process.argv.slice(2);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const seen = { loads: 0 };
class Failed extends Error {}

async function until(what, ms, ready) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ready()) return;
    await sleep(200);
  }
  throw new Failed(what);
}

const build = async () => (await (await fetch(url + "/status")).json()).build;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  ],
});
try {
  const page = await browser.newPage();
  page.on("load", () => seen.loads++);
  await page.goto(url + "/dashboard");
  const live = async () => (await page.textContent("#live")) === "live";
  await until("the dashboard never went live", 15000, live);
  seen.build_before = await build();

  execFileSync(restart, [executable]);
  await until("the dashboard never noticed the restart", 15000, async () => !(await live()));
  await until("the dashboard never came back after the restart", 20000, live);
  await sleep(3000);
  seen.loads_after_restart = seen.loads;

  execFileSync(restart, [upgraded]);
  await until("the dashboard never reloaded after the upgrade", 30000, async () =>
    seen.loads >= 2 && (await live()));
  seen.loads_after_upgrade = seen.loads;
  seen.build_after = await build();
} catch (error) {
  seen.failed = error instanceof Failed ? error.message : String((error && error.stack) || error);
  process.exitCode = 1;
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
