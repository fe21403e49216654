// Records a real browser's HAR: Playwright (playwright-core, no bundled
// browser) drives the system's Chromium to PAGE_URL, whose script calls its
// gateway (models, chats, health) and sets window.done; closing the context
// writes the archive with bodies embedded.
// Usage: node har-record.mjs CHROMIUM PAGE_URL HAR_PATH
// Prints one JSON line: what the page reported (window.done's value).
// Only the gateway's API calls are kept in the archive (recordHar's
// urlFilter), as one saves a network panel filtered to the API: the page
// itself and the favicon are not traffic the gateway serves.
import { chromium } from "playwright-core";

const [executablePath, pageURL, harPath] = process.argv.slice(2);
if (!executablePath || !pageURL || !harPath) {
  console.error("usage: node har-record.mjs CHROMIUM PAGE_URL HAR_PATH");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath,
  timeout: 30000,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const context = await browser.newContext({
    recordHar: { path: harPath, content: "embed", urlFilter: /\/(v1\/[a-z/]+|health)$/ },
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(pageURL);
  const done = await page.waitForFunction(() => window.done, null, { timeout: 20000 });
  const result = await done.jsonValue();
  await context.close(); // writes the HAR
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
