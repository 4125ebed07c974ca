// speedscope-check.js -- loads a profile file into speedscope's own app
// (the published package is a browser bundle with no importable module, so
// it runs in headless Chromium through playwright-core), opens it through
// the app's file input, then exports it back with the app's Export button:
// the export is what speedscope's importer built, so its totals and frame
// names are checked against the expected ones.
//
// usage: node speedscope-check.js FILE EXPECTED_TOTAL_WEIGHT [FRAME_NAME...]
// env:   CHROMIUM (default /usr/bin/chromium), SPEEDSCOPE_SCREENSHOT=out.png
// exit:  0 when it loads and matches, 1 otherwise (with the reason).
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const {chromium} = require('playwright-core')

const TIMEOUT_MS = 30000

function fail(msg) {
  console.error(`speedscope-check: FAIL: ${msg}`)
  process.exit(1)
}

// The summed weight under the roots of an exported (evented) profile.
function rootWeight(profile) {
  let depth = 0
  let opened = 0
  let total = 0
  for (const ev of profile.events) {
    if (ev.type === 'O') {
      if (depth++ === 0) opened = ev.at
    } else if (ev.type === 'C') {
      if (--depth === 0) total += ev.at - opened
    }
  }
  return total
}

async function main() {
  const [file, expectedArg, ...frameNames] = process.argv.slice(2)
  if (file === undefined || expectedArg === undefined || !/^\d+$/.test(expectedArg)) {
    console.error('usage: speedscope-check FILE EXPECTED_TOTAL_WEIGHT [FRAME_NAME...]')
    process.exit(1)
  }
  if (!fs.existsSync(file)) fail(`${file}: no such file`)
  const expected = Number(expectedArg)
  const index = require.resolve('speedscope/dist/release/index.html')

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
  try {
    const context = await browser.newContext({acceptDownloads: true})
    const page = await context.newPage()
    const log = []
    let dialog = null
    page.on('console', m => log.push(m.text()))
    page.on('pageerror', e => log.push(`page error: ${e.message}`))
    page.on('dialog', d => {
      dialog = d.message()
      d.dismiss().catch(() => {})
    })
    await page.goto('file://' + index)
    await page.setInputFiles('input[type=file]', file)

    // Loaded once the Export tab shows; an import error shows an alert
    // or logs "Failed to load format" instead.
    const exportTab = page.getByText('Export', {exact: false}).first()
    const deadline = Date.now() + TIMEOUT_MS
    for (;;) {
      if (await exportTab.isVisible()) break
      const failed = log.find(l => l.startsWith('Failed to load format'))
      if (dialog || failed || Date.now() > deadline)
        fail(`${file}: speedscope did not load it: ` +
          (dialog || (failed ? failed.split('\n')[0] : `no profile after ${TIMEOUT_MS} ms`)))
      await page.waitForTimeout(100)
    }
    const importedAs = log.find(l => l.startsWith('Importing as')) || 'format not logged'
    if (process.env.SPEEDSCOPE_SCREENSHOT) {
      await page.waitForTimeout(500)
      await page.screenshot({path: process.env.SPEEDSCOPE_SCREENSHOT})
    }
    const shown = await page.evaluate(() => document.body.innerText)

    const [download] = await Promise.all([
      page.waitForEvent('download', {timeout: TIMEOUT_MS}),
      exportTab.click(),
    ])
    const out = JSON.parse(fs.readFileSync(await download.path(), 'utf8'))
    if (!Array.isArray(out.profiles) || out.profiles.length === 0)
      fail(`${file}: speedscope imported no profile`)

    let total = 0
    let underRoots = 0
    for (const p of out.profiles) {
      total += p.endValue - p.startValue
      underRoots += rootWeight(p)
    }
    if (total !== expected)
      fail(`${file}: total weight ${total}, expected ${expected}`)
    if (underRoots !== expected)
      fail(`${file}: weight under the roots ${underRoots}, expected ${expected}`)

    const names = new Set(out.shared.frames.map(f => f.name))
    const missing = frameNames.filter(n => !names.has(n))
    if (missing.length !== 0)
      fail(`${file}: frames not in speedscope's profile: ${JSON.stringify(missing)}; ` +
        `it has ${JSON.stringify([...names].slice(0, 20))}`)

    // The app shows the first profile's name in its toolbar.
    const first = out.profiles[out.activeProfileIndex || 0].name
    if (!shown.includes(first))
      fail(`${file}: toolbar does not show the profile name ${JSON.stringify(first)}`)

    console.log(`speedscope-check: OK: ${path.basename(file)}: ${importedAs}; ` +
      `${out.profiles.length} profile(s), total ${total}, ${names.size} frames used, ` +
      `${frameNames.length} expected frame(s) found; shows ${JSON.stringify(first)}`)
  } finally {
    await browser.close()
  }
}

main().catch(e => fail(e.stack || String(e)))
