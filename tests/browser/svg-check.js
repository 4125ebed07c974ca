#!/usr/bin/env node
// svg-check.js -- opens a profd flame graph (SVG) in headless Chromium and
// drives it as a user would: hover, search (by clicking "Search" and via the
// global search()), click-to-zoom, reset.  Fails on any console error or
// network request.  Screenshots go to OUTDIR.
//
// Usage: node tests/browser/svg-check.js FILE.svg OUTDIR EXPECTED_FUNC
// Needs: npm ci in tests/browser (playwright-core only) and a system
// Chromium (CHROMIUM, default /usr/bin/chromium); no browser is downloaded.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const url = require("url");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
	"--no-first-run", "--disable-background-networking",
	"--disable-component-update", "--disable-sync"];
const PLOT_W = 1180;		// FORMAT_SVG_WIDTH - 2 * FORMAT_SVG_XPAD
const TIMEOUT_MS = 30000;

function fail(msg) {
	const e = new Error(msg);
	e.check = true;
	throw e;
}

function check(cond, msg) {
	if (!cond)
		fail(msg);
}

// Every drawn frame: id, label, depth, offset, weight, rect x/width, classes.
function readFrames(page) {
	return page.evaluate(() => Array.from(document.querySelectorAll("g.f"))
	    .map((g) => {
		const t = g.querySelector("title").textContent;
		const r = g.querySelector("rect");
		return {
			id: g.id, label: t.slice(0, t.lastIndexOf(" \u2014 ")),
			d: +g.getAttribute("data-d"), o: +g.getAttribute("data-o"),
			v: +g.getAttribute("data-v"),
			x: +r.getAttribute("x"), w: +r.getAttribute("width"),
			cls: g.getAttribute("class"),
			shown: getComputedStyle(g).display !== "none"
		};
	}));
}

function text(page, sel) {
	return page.$eval(sel, (e) => e.textContent);
}

function visible(page, sel) {
	return page.$eval(sel, (e) => getComputedStyle(e).display !== "none");
}

async function run(file, outdir, func) {
	const errors = [], requests = [];
	const profile = fs.mkdtempSync(path.join(os.tmpdir(), "svg-check-"));
	let context;

	fs.mkdirSync(outdir, { recursive: true });
	try {
		context = await chromium.launchPersistentContext(profile, {
			executablePath: CHROMIUM, args: ARGS, headless: true,
			viewport: { width: 1240, height: 800 }, timeout: TIMEOUT_MS
		});
		const page = context.pages()[0] || await context.newPage();
		page.setDefaultTimeout(TIMEOUT_MS);
		page.on("console", (m) => {
			if (m.type() === "error")
				errors.push("console: " + m.text());
		});
		page.on("pageerror", (e) => errors.push("page: " + e.message));
		await context.route("**/*", (route) => {
			const u = route.request().url();
			if (u.startsWith("file:"))
				return route.continue();
			requests.push(u);
			return route.abort();
		});

		await page.goto(url.pathToFileURL(path.resolve(file)).href);
		await page.waitForLoadState("load");
		check(await page.evaluate(() => typeof search === "function" &&
		    typeof zoom === "function" && typeof resetZoom === "function"),
		    "globals search/zoom/resetZoom missing");
		await page.screenshot({ path: path.join(outdir, "before.png") });

		let frames = await readFrames(page);
		check(frames.length > 1, "no frames drawn");
		const total = frames.find((f) => f.d === 0).v;
		const re = new RegExp(func);
		const targets = frames.filter((f) => re.test(f.label))
		    .sort((a, b) => b.w - a.w);
		check(targets.length > 0, `no frame matches /${func}/`);
		const target = targets[0];
		check(target.w < PLOT_W * 0.95,
		    `/${func}/ is already full width; pick a narrower function`);

		// Hover: details line shows label, count and percentage.
		await page.hover(`#${target.id} rect`);
		const details = await text(page, "#details");
		const pct = (100 * target.v / total).toFixed(2);
		check(details.startsWith(target.label) &&
		    /\u2014 [0-9]+ samples?/.test(details) &&
		    details.includes(`(${pct}%)`),
		    `hover details wrong: "${details}" (want ${target.label}, ` +
		    `a count, ${pct}%)`);

		// Search by clicking "Search" and answering its prompt.
		page.once("dialog", (d) => d.accept(func));
		await page.click("#search");
		await page.waitForFunction(() =>
		    document.getElementById("matched").textContent !== "");
		const matched = await text(page, "#matched");
		const m = /^Matched: ([0-9.]+)%$/.exec(matched);
		check(m && await visible(page, "#matched"),
		    `matched line wrong: "${matched}"`);
		frames = await readFrames(page);
		const hits = frames.filter((f) => f.cls.split(" ").includes("m"));
		check(hits.length === frames.filter((f) => re.test(f.label))
		    .length && hits.every((f) => re.test(f.label)),
		    `highlighted ${hits.length} frames, want those matching ` +
		    `/${func}/`);
		const fill = await page.$eval(`#${target.id} rect`,
		    (r) => getComputedStyle(r).fill);
		check(fill === "rgb(230, 0, 230)", `match not highlighted: ${fill}`);
		const api = await page.evaluate((f) => search(f), func);
		check(Math.abs(api - +m[1]) < 0.01 && api >= 100 * target.v /
		    total - 0.01 && api <= 100, `search() gave ${api}, ` +
		    `displayed ${m[1]}`);
		await page.screenshot({ path: path.join(outdir, "searched.png") });

		// Click-to-zoom: the frame becomes full width, ancestors dimmed.
		await page.click(`#${target.id} rect`);
		frames = await readFrames(page);
		const z = frames.find((f) => f.id === target.id);
		check(Math.abs(z.w - PLOT_W) < 1, `zoomed width ${z.w}, want ` +
		    `${PLOT_W}`);
		check(await visible(page, "#unzoom"), "Reset zoom not shown");
		const anc = frames.filter((f) => f.d < z.d && f.shown);
		check(anc.length === z.d && anc.every((f) =>
		    f.cls.split(" ").includes("a")), "ancestors not dimmed");
		check(frames.every((f) => !f.shown || f.d < z.d ||
		    (f.o >= z.o && f.o + f.v <= z.o + z.v)),
		    "frames outside the zoomed one still shown");
		await page.screenshot({ path: path.join(outdir, "zoomed.png") });

		// Reset by clicking "Reset zoom", then zoom(id) from the API.
		await page.click("#unzoom");
		frames = await readFrames(page);
		const back = frames.find((f) => f.id === target.id);
		check(Math.abs(back.w - target.w) < 0.01 &&
		    frames.every((f) => f.shown) && !await visible(page, "#unzoom"),
		    "Reset zoom did not restore the graph");
		check(await page.evaluate((id) => zoom(id), target.id),
		    "zoom(id) refused");
		check(Math.abs(await page.$eval(`#${target.id} rect`,
		    (r) => +r.getAttribute("width")) - PLOT_W) < 1,
		    "zoom(id) did not widen the frame");
		await page.evaluate(() => { resetZoom(); resetSearch(); });

		check(errors.length === 0, "errors: " + errors.join("; "));
		check(requests.length === 0, "network requests: " +
		    requests.join(" "));
		return `${frames.length} frames; /${func}/ ${target.label} ` +
		    `${pct}%, ${matched}`;
	} finally {
		if (context)
			await context.close();
		fs.rmSync(profile, { recursive: true, force: true });
	}
}

async function main() {
	const [file, outdir, func] = process.argv.slice(2);

	if (!file || !outdir || !func) {
		console.error("usage: node svg-check.js FILE.svg OUTDIR " +
		    "EXPECTED_FUNC");
		process.exit(2);
	}
	try {
		const summary = await run(file, outdir, func);
		console.log(`svg-check: OK: ${file}: ${summary}; screenshots ` +
		    `in ${outdir}`);
		process.exit(0);
	} catch (e) {
		console.error(`svg-check: FAIL: ${file}: ` +
		    (e.check ? e.message : e.stack));
		process.exit(1);
	}
}

main();
