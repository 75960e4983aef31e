/**
 * Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, with a fresh profile
 * per browser, for the login tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface TestBrowser {
  context: BrowserContext;
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    newPage: () => context.newPage(),
    close: async () => {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Signs in at node-oidc-provider's development login form and consents. */
export async function signInAtOp(page: Page, login: string): Promise<void> {
  await page.waitForSelector('input[name=login]');
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any-password');
  await page.click('button[type=submit]');
  // The consent page comes once per client and account.
  await page.waitForLoadState();
  const consent = page.locator('button:has-text("Continue")');
  if (await consent.count()) await consent.click();
  await page.waitForLoadState();
}

/** Opens a device's login URL, signs in and confirms the device; returns the final page text. */
export async function loginInBrowser(page: Page, authUrl: string, login: string): Promise<string> {
  await page.goto(authUrl);
  await signInAtOp(page, login);
  await page.waitForSelector('h1');
  const heading = await page.textContent('h1');
  if (heading?.includes('Add this device')) {
    // Keyboard only: focus the button and press Enter.
    await page.focus('button[type=submit]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('h1:has-text("Device added")');
  }
  return (await page.textContent('main')) ?? '';
}
