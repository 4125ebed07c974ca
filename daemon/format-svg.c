/*
 * format-svg.c -- the flame graph: one self-contained interactive SVG (inline
 * style and script, nothing fetched) that any browser opens.  Samples merge
 * into a call tree drawn root at the bottom, each frame as wide as its
 * weight; the inline script does hover details, click-to-zoom and regex
 * search, and exposes search(), resetSearch(), zoom() and resetZoom() so
 * tests can drive it.
 *
 * The tree is never built: samples are sorted by stack, frames compared by
 * label, so every node is a run of consecutive samples and its weight a
 * difference of two prefix sums.  Memory is linear in the profile.
 *
 * Size bound: frames narrower than FORMAT_SVG_MIN_PX are not drawn, and if
 * more than FORMAT_SVG_MAX_FRAMES would still be, that minimum doubles until
 * they fit; labels are cut to FORMAT_SVG_LABEL_MAX bytes and stacks to
 * FORMAT_SVG_MAX_DEPTH frames.  A frame costs about 250 bytes plus its label
 * twice (escaped), so a file holds at most FORMAT_SVG_MAX_FRAMES of those:
 * 100k random stacks give about 0.6 MB (tests/unit/test_format_svg.c).
 */

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

#define FORMAT_SVG_WIDTH	1200	/* image width, px */
#define FORMAT_SVG_XPAD		10	/* left and right margin, px */
#define FORMAT_SVG_TOP		64	/* title, subtitle, controls, px */
#define FORMAT_SVG_BOTTOM	44	/* details line and note, px */
#define FORMAT_SVG_FRAME_H	16	/* one stack level, px */
#define FORMAT_SVG_EMPTY_H	48	/* plot height without samples, px */
#define FORMAT_SVG_FONT		12	/* font size, px */
#define FORMAT_SVG_TITLE_FONT	17	/* title font size, px */
#define FORMAT_SVG_CHAR_W	0.59	/* mean glyph width, in font sizes */
#define FORMAT_SVG_TEXT_PAD	3	/* text inset in its frame, px */
#define FORMAT_SVG_MIN_PX	0.1	/* narrower frames are not drawn */
#define FORMAT_SVG_MAX_FRAMES	30000	/* most frames drawn */
#define FORMAT_SVG_MAX_DEPTH	1024	/* deeper frames are cut */
#define FORMAT_SVG_LABEL_MAX	512	/* bytes of a frame label */
#define FORMAT_SVG_TITLE_MAX	256	/* bytes of the title */

#define FORMAT_SVG_PLOT_W	(FORMAT_SVG_WIDTH - 2 * FORMAT_SVG_XPAD)
#define FORMAT_SVG_BAD		UINT32_MAX	/* frame out of range */
#define FORMAT_SVG_DASH		" \xe2\x80\x94 "	/* em dash */
#define FORMAT_SVG_REPLACEMENT	"\xef\xbf\xbd"	/* U+FFFD */

/* One encoding in progress. */
struct format_svg {
	const struct profile	*p;
	struct evbuffer		*out;
	int			 error;

	uint32_t		*canon;		/* frame -> canonical id */
	uint32_t		*rep;		/* canonical id -> a frame */
	uint32_t		*order;		/* kept samples, by stack */
	size_t			 n;
	uint64_t		*csum;		/* prefix sums of counts */
	uint64_t		*tsum;		/* of time weights */
	const uint64_t		*wsum;		/* of the chosen weight */
	uint64_t		 total;		/* of the chosen weight */
	size_t			 cut;		/* samples deeper than the max */

	double			 scale;		/* px per unit of weight */
	double			 min_w;		/* narrowest frame drawn */
	int			 emit;		/* 0: count only */
	size_t			 frames;	/* drawn */
	size_t			 pruned;	/* subtrees too narrow */
	uint32_t		 levels;
	int			 height;

	char			 label[FORMAT_SVG_LABEL_MAX];
	char			 clean[FORMAT_SVG_LABEL_MAX];
	char			 name[FORMAT_SVG_LABEL_MAX];	/* in a box */
};

static const char format_svg_style[] =
    "text { font-family: Verdana, sans-serif; font-size: 12px; }\n"
    "#title { font-size: 17px; }\n"
    "#note, #subtitle { fill: #555; }\n"
    ".ctl { cursor: pointer; fill: #1a4a8c; }\n"
    ".ctl:hover { text-decoration: underline; }\n"
    ".hide { display: none; }\n"
    "g.f { cursor: pointer; }\n"
    "g.f text { pointer-events: none; }\n"
    "g.f:hover rect { stroke: #000; stroke-width: 0.5; }\n"
    "g.a { opacity: 0.5; }\n"
    "g.h { display: none; }\n"
    "g.m rect { fill: rgb(230,0,230); }\n";

/* The viewer; format_svg_footer() puts X0, W and CHAR_W before it. */
static const char format_svg_script[] =
    "var SEP = \" \\u2014 \";\n"
    "var frames = [], total = 0;\n"
    "var details, matched, unzoomCtl, searchCtl;\n"
    "\n"
    "function init() {\n"
    "	var gs = document.querySelectorAll(\"g.f\"), i, g, t, f;\n"
    "\n"
    "	details = document.getElementById(\"details\");\n"
    "	matched = document.getElementById(\"matched\");\n"
    "	unzoomCtl = document.getElementById(\"unzoom\");\n"
    "	searchCtl = document.getElementById(\"search\");\n"
    "	for (i = 0; i < gs.length; i++) {\n"
    "		g = gs[i];\n"
    "		t = g.querySelector(\"title\").textContent;\n"
    "		f = {\n"
    "			g: g, r: g.querySelector(\"rect\"), t: g.querySelector(\"text\"),\n"
    "			tip: t, label: boxName(t.slice(0, t.lastIndexOf(SEP))),\n"
    "			o: +g.getAttribute(\"data-o\"), v: +g.getAttribute(\"data-v\"),\n"
    "			d: +g.getAttribute(\"data-d\")\n"
    "		};\n"
    "		f.x = +f.r.getAttribute(\"x\");\n"
    "		f.w = +f.r.getAttribute(\"width\");\n"
    "		g.fi = i;\n"
    "		frames.push(f);\n"
    "		if (f.d === 0)\n"
    "			total = f.v;\n"
    "	}\n"
    "	document.documentElement.addEventListener(\"mouseover\", function (e) {\n"
    "		var f = frameOf(e.target);\n"
    "		if (f)\n"
    "			details.textContent = f.tip;\n"
    "	});\n"
    "	document.documentElement.addEventListener(\"mouseout\", function (e) {\n"
    "		if (frameOf(e.target))\n"
    "			details.textContent = \"\\u00a0\";\n"
    "	});\n"
    "	document.documentElement.addEventListener(\"click\", function (e) {\n"
    "		var f = frameOf(e.target);\n"
    "		if (f)\n"
    "			zoom(f.g);\n"
    "	});\n"
    "	unzoomCtl.addEventListener(\"click\", resetZoom);\n"
    "	searchCtl.addEventListener(\"click\", openSearch);\n"
    "	document.addEventListener(\"keydown\", function (e) {\n"
    "		if ((e.ctrlKey || e.metaKey) && e.key === \"f\") {\n"
    "			e.preventDefault();\n"
    "			openSearch();\n"
    "		} else if (e.key === \"Escape\") {\n"
    "			resetZoom();\n"
    "			resetSearch();\n"
    "		}\n"
    "	});\n"
    "}\n"
    "\n"
    "// A box shows the function's name; its file and line are in the tip.\n"
    "function boxName(s) {\n"
    "	var i = s.lastIndexOf(\" (\");\n"
    "\n"
    "	return (i > 0 && s.charAt(s.length - 1) === \")\" ? s.slice(0, i) : s);\n"
    "}\n"
    "\n"
    "function frameOf(el) {\n"
    "	var g = el && el.closest ? el.closest(\"g.f\") : null;\n"
    "	return (g && g.fi !== undefined ? frames[g.fi] : null);\n"
    "}\n"
    "\n"
    "function fit(f, w) {\n"
    "	var n = Math.floor((w - 6) / CHAR_W), cp = Array.from(f.label);\n"
    "\n"
    "	if (n < 3)\n"
    "		return (\"\");\n"
    "	if (cp.length <= n)\n"
    "		return (f.label);\n"
    "	return (cp.slice(0, n - 2).join(\"\") + \"..\");\n"
    "}\n"
    "\n"
    "function place(f, x, w) {\n"
    "	f.r.setAttribute(\"x\", x.toFixed(2));\n"
    "	f.r.setAttribute(\"width\", w.toFixed(2));\n"
    "	f.t.setAttribute(\"x\", (x + 3).toFixed(2));\n"
    "	f.t.textContent = fit(f, w);\n"
    "}\n"
    "\n"
    "function resolve(what) {\n"
    "	if (typeof what === \"number\" || /^[0-9]+$/.test(what))\n"
    "		what = \"f\" + what;\n"
    "	if (typeof what === \"string\")\n"
    "		what = document.getElementById(what);\n"
    "	if (what && what.g)\n"
    "		return (what);\n"
    "	return (frameOf(what));\n"
    "}\n"
    "\n"
    "function zoom(what) {\n"
    "	var z = resolve(what);\n"
    "\n"
    "	if (!z)\n"
    "		return (false);\n"
    "	if (z.d === 0) {\n"
    "		resetZoom();\n"
    "		return (true);\n"
    "	}\n"
    "	frames.forEach(function (f) {\n"
    "		var c = f.g.classList;\n"
    "\n"
    "		if (f.d < z.d && f.o <= z.o && f.o + f.v >= z.o + z.v) {\n"
    "			c.remove(\"h\");\n"
    "			c.add(\"a\");\n"
    "			place(f, X0, W);\n"
    "		} else if (f.d >= z.d && f.o >= z.o &&\n"
    "		    f.o + f.v <= z.o + z.v) {\n"
    "			c.remove(\"h\", \"a\");\n"
    "			place(f, X0 + (f.o - z.o) / z.v * W, f.v / z.v * W);\n"
    "		} else {\n"
    "			c.remove(\"a\");\n"
    "			c.add(\"h\");\n"
    "		}\n"
    "	});\n"
    "	unzoomCtl.classList.remove(\"hide\");\n"
    "	return (true);\n"
    "}\n"
    "\n"
    "function resetZoom() {\n"
    "	frames.forEach(function (f) {\n"
    "		f.g.classList.remove(\"h\", \"a\");\n"
    "		place(f, f.x, f.w);\n"
    "	});\n"
    "	unzoomCtl.classList.add(\"hide\");\n"
    "}\n"
    "\n"
    "function search(re) {\n"
    "	var hits = [], sum = 0, end = -1, pct;\n"
    "\n"
    "	if (!(re instanceof RegExp))\n"
    "		re = new RegExp(String(re));\n"
    "	re = new RegExp(re.source, re.flags.replace(\"g\", \"\").replace(\"y\", \"\"));\n"
    "	frames.forEach(function (f) {\n"
    "		var m = re.test(f.label);\n"
    "\n"
    "		f.g.classList.toggle(\"m\", m);\n"
    "		if (m)\n"
    "			hits.push(f);\n"
    "	});\n"
    "	hits.sort(function (a, b) { return (a.o - b.o || b.v - a.v); });\n"
    "	hits.forEach(function (f) {\n"
    "		if (f.o >= end) {\n"
    "			sum += f.v;\n"
    "			end = f.o + f.v;\n"
    "		}\n"
    "	});\n"
    "	pct = total > 0 ? 100 * sum / total : 0;\n"
    "	matched.textContent = \"Matched: \" + pct.toFixed(2) + \"%\";\n"
    "	matched.classList.remove(\"hide\");\n"
    "	return (pct);\n"
    "}\n"
    "\n"
    "function resetSearch() {\n"
    "	frames.forEach(function (f) { f.g.classList.remove(\"m\"); });\n"
    "	matched.textContent = \"\";\n"
    "	matched.classList.add(\"hide\");\n"
    "}\n"
    "\n"
    "function openSearch() {\n"
    "	var term = window.prompt(\"Search (regular expression):\", \"\");\n"
    "\n"
    "	if (term === null)\n"
    "		return;\n"
    "	if (term === \"\") {\n"
    "		resetSearch();\n"
    "		return;\n"
    "	}\n"
    "	try {\n"
    "		search(term);\n"
    "	} catch (e) {\n"
    "		matched.textContent = \"Bad expression: \" + e.message;\n"
    "		matched.classList.remove(\"hide\");\n"
    "	}\n"
    "}\n"
    "\n"
    "init();\n"
    "// The roots are at the bottom: a deep graph opens on them.\n"
    "window.scrollTo(0, document.documentElement.scrollHeight || 1e9);\n";

/* Appends formatted text, remembering a failure. */
static void __attribute__((format(printf, 2, 3)))
format_svg_printf(struct format_svg *fs, const char *fmt, ...)
{
	va_list	ap;

	if (fs->error)
		return;
	va_start(ap, fmt);
	if (evbuffer_add_vprintf(fs->out, fmt, ap) < 0)
		fs->error = 1;
	va_end(ap);
}

/* Appends bytes, remembering a failure. */
static void
format_svg_add(struct format_svg *fs, const char *s, size_t len)
{
	if (!fs->error && len > 0 && evbuffer_add(fs->out, s, len) != 0)
		fs->error = 1;
}

/*
 * Length of the well-formed UTF-8 character at s (n bytes left) that XML
 * allows, or 0: control characters (C0, DEL, C1), overlong forms,
 * surrogates, U+FFFE, U+FFFF and anything past U+10FFFF are refused.
 */
static size_t
format_svg_char(const unsigned char *s, size_t n)
{
	uint32_t	cp;
	size_t		len, i;

	if (s[0] < 0x20 || s[0] == 0x7f)
		return (0);
	if (s[0] < 0x80)
		return (1);
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return (0);
	if (n < len)
		return (0);
	cp = s[0] & (0x7f >> len);
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return (0);
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0xa0) || (len == 3 && cp < 0x800) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return (0);
	if ((cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
		return (0);
	return (len);
}

/*
 * Copies s into buf (len bytes) as text XML allows, every refused byte
 * becoming U+FFFD, cut at a character to fit.  Returns the characters.
 */
static size_t
format_svg_clean(const char *s, char *buf, size_t len)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 n = strlen(s), i = 0, used = 0, chars = 0;
	size_t			 c;
	const char		*from;

	while (i < n) {
		if ((c = format_svg_char(u + i, n - i)) == 0) {
			from = FORMAT_SVG_REPLACEMENT;
			c = sizeof FORMAT_SVG_REPLACEMENT - 1;
			i++;
		} else {
			from = s + i;
			i += c;
		}
		if (used + c >= len)
			break;
		memcpy(buf + used, from, c);
		used += c;
		chars++;
	}
	buf[used] = '\0';
	return (chars);
}

/*
 * Appends clean text (chars characters) escaped for XML, cut to max
 * characters ending in "..", or nothing if fewer than 3 fit.
 */
static void
format_svg_text(struct format_svg *fs, const char *s, size_t chars,
    size_t max)
{
	const char	*run = s, *ent;
	size_t		 keep = chars, seen = 0;

	if (max < 3)
		return;
	if (chars > max)
		keep = max - 2;
	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80 && seen++ == keep)
			break;
		switch (*s) {
		case '&':
			ent = "&amp;";
			break;
		case '<':
			ent = "&lt;";
			break;
		case '>':
			ent = "&gt;";
			break;
		case '"':
			ent = "&quot;";
			break;
		case '\'':
			ent = "&#39;";
			break;
		default:
			continue;
		}
		format_svg_add(fs, run, s - run);
		format_svg_add(fs, ent, strlen(ent));
		run = s + 1;
	}
	format_svg_add(fs, run, s - run);
	if (keep < chars)
		format_svg_add(fs, "..", 2);
}

/* How many characters fit in a width of px at a font size. */
static size_t
format_svg_fit(double px, int font)
{
	double	n = (px - 2 * FORMAT_SVG_TEXT_PAD) / (font * FORMAT_SVG_CHAR_W);

	return (n < 0 ? 0 : (size_t)n);
}

/* Writes a duration given in microseconds. */
static void
format_svg_time(uint64_t us, char *buf, size_t len)
{
	if (us < 1000)
		snprintf(buf, len, "%" PRIu64 " us", us);
	else if (us < 1000000)
		snprintf(buf, len, "%.1f ms", us / 1e3);
	else
		snprintf(buf, len, "%.2f s", us / 1e6);
}

/* Picks a warm colour from a function name (FNV-1a), as flamegraph.pl's
 * "hot" palette does. */
static void
format_svg_colour(const char *name, int *r, int *g, int *b)
{
	uint32_t	h = 2166136261u;

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	*r = 205 + (int)(50 * ((h >> 16) & 0xff) / 255);
	*g = (int)(230 * (h & 0xff) / 255);
	*b = (int)(55 * ((h >> 8) & 0xff) / 255);
}

/* Orders frames by function name, file and line. */
static int
format_svg_cmp_frame(const void *a, const void *b, void *arg)
{
	const struct profile		*p = arg;
	const struct profile_frame	*x = &p->frames[*(const uint32_t *)a];
	const struct profile_frame	*y = &p->frames[*(const uint32_t *)b];
	const struct profile_func	*fx = &p->funcs[x->func];
	const struct profile_func	*fy = &p->funcs[y->func];
	int				 c;

	if ((c = strcmp(fx->name, fy->name)) != 0)
		return (c);
	if ((c = strcmp(fx->file, fy->file)) != 0)
		return (c);
	if (x->line != y->line)
		return (x->line < y->line ? -1 : 1);
	return (0);
}

/* Frames of a sample drawn: its depth, cut to the max. */
static uint32_t
format_svg_depth(const struct profile_sample *s)
{
	return (s->depth > FORMAT_SVG_MAX_DEPTH ? FORMAT_SVG_MAX_DEPTH :
	    s->depth);
}

/* Canonical id of a sample's frame at a level. */
static uint32_t
format_svg_canon(const struct format_svg *fs, const struct profile_sample *s,
    uint32_t level)
{
	uint32_t	f = s->frames[level];

	return (f < fs->p->nframes ? fs->canon[f] : FORMAT_SVG_BAD);
}

/* Orders samples by their stacks, root first, a prefix before its
 * extensions. */
static int
format_svg_cmp_sample(const void *a, const void *b, void *arg)
{
	const struct format_svg		*fs = arg;
	const struct profile_sample	*x = &fs->p->samples[*(const uint32_t *)a];
	const struct profile_sample	*y = &fs->p->samples[*(const uint32_t *)b];
	uint32_t			 dx = format_svg_depth(x);
	uint32_t			 dy = format_svg_depth(y), i, cx, cy;

	for (i = 0; i < dx && i < dy; i++) {
		cx = format_svg_canon(fs, x, i);
		cy = format_svg_canon(fs, y, i);
		if (cx != cy)
			return (cx < cy ? -1 : 1);
	}
	if (dx != dy)
		return (dx < dy ? -1 : 1);
	return (0);
}

/* Gives frames with the same label one canonical id, in label order. */
static int
format_svg_canonicalize(struct format_svg *fs)
{
	const struct profile	*p = fs->p;
	uint32_t		*sorted = NULL, f, id = 0;
	size_t			 i, nvalid = 0;

	if (p->nframes == 0)
		return (0);
	if ((fs->canon = calloc(p->nframes, sizeof *fs->canon)) == NULL ||
	    (fs->rep = calloc(p->nframes, sizeof *fs->rep)) == NULL ||
	    (sorted = calloc(p->nframes, sizeof *sorted)) == NULL)
		goto fail;
	for (i = 0; i < p->nframes; i++) {
		fs->canon[i] = FORMAT_SVG_BAD;
		if (p->frames[i].func < p->nfuncs)
			sorted[nvalid++] = (uint32_t)i;
	}
	qsort_r(sorted, nvalid, sizeof *sorted, format_svg_cmp_frame,
	    (void *)p);
	for (i = 0; i < nvalid; i++) {
		f = sorted[i];
		if (i > 0 && format_svg_cmp_frame(&sorted[i - 1], &f,
		    (void *)p) != 0)
			id++;
		fs->canon[f] = id;
		fs->rep[id] = f;
	}
	free(sorted);
	return (0);

fail:
	free(sorted);
	return (-1);
}

/* Sorts the samples of non-zero weight by stack and sums their weights. */
static int
format_svg_sort(struct format_svg *fs, enum format_weight weight)
{
	const struct profile		*p = fs->p;
	const struct profile_sample	*s;
	size_t				 i, k;
	uint64_t			 w;

	if ((fs->order = calloc(p->nsamples + 1, sizeof *fs->order)) == NULL)
		goto fail;
	for (i = 0; i < p->nsamples; i++) {
		s = &p->samples[i];
		w = weight == FORMAT_WEIGHT_TIME ? s->weight_us : s->count;
		if (w == 0 || (s->depth > 0 && s->frames == NULL))
			continue;
		if (s->depth > FORMAT_SVG_MAX_DEPTH)
			fs->cut++;
		fs->order[fs->n++] = (uint32_t)i;
	}
	qsort_r(fs->order, fs->n, sizeof *fs->order, format_svg_cmp_sample,
	    fs);
	if ((fs->csum = calloc(fs->n + 1, sizeof *fs->csum)) == NULL ||
	    (fs->tsum = calloc(fs->n + 1, sizeof *fs->tsum)) == NULL)
		goto fail;
	for (k = 0; k < fs->n; k++) {
		s = &p->samples[fs->order[k]];
		if (fs->csum[k] > UINT64_MAX - s->count ||
		    fs->tsum[k] > UINT64_MAX - s->weight_us) {
			errno = EOVERFLOW;
			goto fail;
		}
		fs->csum[k + 1] = fs->csum[k] + s->count;
		fs->tsum[k + 1] = fs->tsum[k] + s->weight_us;
	}
	fs->wsum = weight == FORMAT_WEIGHT_TIME ? fs->tsum : fs->csum;
	fs->total = fs->wsum[fs->n];
	return (0);

fail:
	return (-1);
}

/* Draws the frame of samples [lo, hi), which share `level` frames. */
static void
format_svg_frame(struct format_svg *fs, uint32_t level, size_t lo, size_t hi,
    uint64_t off)
{
	const struct profile		*p = fs->p;
	const struct profile_sample	*s = &p->samples[fs->order[lo]];
	uint64_t			 w = fs->wsum[hi] - fs->wsum[lo];
	uint64_t			 count = fs->csum[hi] - fs->csum[lo];
	uint64_t			 us = fs->tsum[hi] - fs->tsum[lo];
	double				 x, width;
	const char			*name = "?";
	char				 t[32];
	uint32_t			 c, f = FORMAT_SVG_BAD;
	size_t				 chars, nchars;
	int				 y, r, g, b;

	if (level == 0) {
		name = "all";
		snprintf(fs->label, sizeof fs->label, "all");
	} else {
		if ((c = format_svg_canon(fs, s, level - 1)) != FORMAT_SVG_BAD)
			f = fs->rep[c];
		format_frame_label(p, f, fs->label, sizeof fs->label);
		if (f != FORMAT_SVG_BAD)
			name = p->funcs[p->frames[f].func].name;
	}
	chars = format_svg_clean(fs->label, fs->clean, sizeof fs->clean);
	nchars = format_svg_clean(name, fs->name, sizeof fs->name);
	format_svg_colour(name, &r, &g, &b);
	x = FORMAT_SVG_XPAD + off * fs->scale;
	width = w * fs->scale;
	y = fs->height - FORMAT_SVG_BOTTOM - (int)(level + 1) *
	    FORMAT_SVG_FRAME_H;

	format_svg_printf(fs, "<g id=\"f%zu\" class=\"f\" data-o=\"%" PRIu64
	    "\" data-v=\"%" PRIu64 "\" data-d=\"%u\"><title>", fs->frames,
	    off, w, level);
	format_svg_text(fs, fs->clean, chars, SIZE_MAX);
	format_svg_printf(fs, FORMAT_SVG_DASH "%" PRIu64 " sample%s", count,
	    count == 1 ? "" : "s");
	if (fs->tsum[fs->n] > 0) {
		format_svg_time(us, t, sizeof t);
		format_svg_printf(fs, ", %s", t);
	}
	format_svg_printf(fs, " (%.2f%%)</title><rect x=\"%.2f\" y=\"%d\" "
	    "width=\"%.2f\" height=\"%d\" fill=\"rgb(%d,%d,%d)\" rx=\"2\"/>"
	    "<text x=\"%.2f\" y=\"%d\">", 100.0 * w / fs->total, x, y, width,
	    FORMAT_SVG_FRAME_H - 1, r, g, b, x + FORMAT_SVG_TEXT_PAD,
	    y + FORMAT_SVG_FRAME_H - 4);
	format_svg_text(fs, fs->name, nchars,
	    format_svg_fit(width, FORMAT_SVG_FONT));
	format_svg_printf(fs, "</text></g>\n");
}

/*
 * Draws (or only counts) the node of samples [lo, hi), which share their
 * first `level` frames, then its children left to right; a child narrower
 * than min_w is not drawn, nor anything above it.
 */
static void
format_svg_walk(struct format_svg *fs, uint32_t level, size_t lo, size_t hi,
    uint64_t off)
{
	const struct profile	*p = fs->p;
	size_t			 i, j;
	uint32_t		 c;
	uint64_t		 w;

	if (fs->error || (!fs->emit && fs->frames > FORMAT_SVG_MAX_FRAMES))
		return;
	if (fs->emit)
		format_svg_frame(fs, level, lo, hi, off);
	fs->frames++;
	if (level + 1 > fs->levels)
		fs->levels = level + 1;

	i = lo;
	while (i < hi && format_svg_depth(&p->samples[fs->order[i]]) == level)
		i++;
	while (i < hi) {
		c = format_svg_canon(fs, &p->samples[fs->order[i]], level);
		j = i + 1;
		while (j < hi &&
		    format_svg_canon(fs, &p->samples[fs->order[j]], level) == c)
			j++;
		w = fs->wsum[j] - fs->wsum[i];
		if (w < fs->min_w)
			fs->pruned++;
		else
			format_svg_walk(fs, level + 1, i, j, off);
		off += w;
		i = j;
	}
}

/* Writes the header: size, style, title, subtitle and controls. */
static void
format_svg_header(struct format_svg *fs, enum format_weight weight)
{
	const struct profile	*p = fs->p;
	uint64_t		 count = fs->csum[fs->n];
	char			 title[FORMAT_SVG_TITLE_MAX], t[32];
	const char		*kind;
	size_t			 chars;
	int			 h = fs->height;

	format_svg_printf(fs, "<?xml version=\"1.0\" encoding=\"UTF-8\" "
	    "standalone=\"no\"?>\n"
	    "<svg version=\"1.1\" width=\"%d\" height=\"%d\" "
	    "viewBox=\"0 0 %d %d\" xmlns=\"http://www.w3.org/2000/svg\">\n"
	    "<style type=\"text/css\"><![CDATA[\n%s]]></style>\n"
	    "<defs><linearGradient id=\"bg\" x1=\"0\" y1=\"0\" x2=\"0\" "
	    "y2=\"1\"><stop stop-color=\"#eeeeee\" offset=\"5%%\"/>"
	    "<stop stop-color=\"#eeeeb0\" offset=\"95%%\"/></linearGradient>"
	    "</defs>\n"
	    "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" "
	    "fill=\"url(#bg)\"/>\n", FORMAT_SVG_WIDTH, h, FORMAT_SVG_WIDTH, h,
	    format_svg_style, FORMAT_SVG_WIDTH, h);

	chars = format_svg_clean(p->title[0] != '\0' ? p->title :
	    "Flame graph", title, sizeof title);
	format_svg_printf(fs, "<text id=\"title\" x=\"%d\" y=\"24\" "
	    "text-anchor=\"middle\">", FORMAT_SVG_WIDTH / 2);
	format_svg_text(fs, title, chars, format_svg_fit(FORMAT_SVG_PLOT_W -
	    200, FORMAT_SVG_TITLE_FONT));
	format_svg_printf(fs, "</text>\n");

	switch (p->weight) {
	case PROFILE_WEIGHT_WALL:
		kind = " wall";
		break;
	case PROFILE_WEIGHT_CPU:
		kind = " CPU";
		break;
	case PROFILE_WEIGHT_ONCPU:
		kind = " on-CPU";
		break;
	default:
		kind = "";
		break;
	}
	format_svg_time(fs->tsum[fs->n], t, sizeof t);
	format_svg_printf(fs, "<text id=\"subtitle\" x=\"%d\" y=\"44\" "
	    "text-anchor=\"middle\">%" PRIu64 " sample%s, %s%s time, %zu "
	    "stack%s; width by %s</text>\n", FORMAT_SVG_WIDTH / 2, count,
	    count == 1 ? "" : "s", t, kind, fs->n, fs->n == 1 ? "" : "s",
	    weight == FORMAT_WEIGHT_TIME ? "time" : "samples");

	format_svg_printf(fs, "<text id=\"unzoom\" class=\"ctl hide\" "
	    "x=\"%d\" y=\"24\">Reset zoom</text>\n"
	    "<text id=\"search\" class=\"ctl\" x=\"%d\" y=\"24\" "
	    "text-anchor=\"end\">Search</text>\n"
	    "<text id=\"matched\" class=\"hide\" x=\"%d\" y=\"%d\" "
	    "text-anchor=\"end\"></text>\n"
	    "<text id=\"details\" x=\"%d\" y=\"%d\">\xc2\xa0</text>\n",
	    FORMAT_SVG_XPAD, FORMAT_SVG_WIDTH - FORMAT_SVG_XPAD,
	    FORMAT_SVG_WIDTH - FORMAT_SVG_XPAD, h - 24, FORMAT_SVG_XPAD,
	    h - 24);
}

/* Writes the note on what the samples lack and what was not drawn, the
 * script and the end. */
static void
format_svg_footer(struct format_svg *fs)
{
	char	warning[FORMAT_SVG_TITLE_MAX];
	size_t	chars;
	int	h = fs->height;

	format_svg_printf(fs, "<text id=\"note\" x=\"%d\" y=\"%d\">",
	    FORMAT_SVG_XPAD, h - 8);
	if (fs->p->warning[0] != '\0') {
		chars = format_svg_clean(fs->p->warning, warning,
		    sizeof warning);
		format_svg_text(fs, warning, chars, SIZE_MAX);
		format_svg_printf(fs, ". ");
	}
	if (fs->pruned > 0)
		format_svg_printf(fs, "%zu frame%s narrower than %.2f px not "
		    "drawn. ", fs->pruned, fs->pruned == 1 ? "" : "s",
		    fs->min_w * fs->scale);
	if (fs->cut > 0)
		format_svg_printf(fs, "%zu stack%s cut at %d frames. ",
		    fs->cut, fs->cut == 1 ? "" : "s", FORMAT_SVG_MAX_DEPTH);
	format_svg_printf(fs, "Click a frame to zoom, Ctrl-F to search."
	    "</text>\n<script type=\"text/ecmascript\"><![CDATA[\n"
	    "\"use strict\";\nvar X0 = %d, W = %d, CHAR_W = %g;\n%s]]>"
	    "</script>\n</svg>\n", FORMAT_SVG_XPAD, FORMAT_SVG_PLOT_W,
	    FORMAT_SVG_FONT * FORMAT_SVG_CHAR_W, format_svg_script);
}

/* Encodes a profile as an interactive flame graph. */
int
format_svg(const struct profile *p, const struct format_opts *o,
    struct evbuffer *out)
{
	struct format_svg	*fs;
	enum format_weight	 weight;
	int			 ret = -1, saved;

	if (p == NULL || out == NULL) {
		errno = EINVAL;
		return (-1);
	}
	weight = o != NULL ? o->weight : FORMAT_WEIGHT_SAMPLES;
	if ((fs = calloc(1, sizeof *fs)) == NULL)
		return (-1);
	fs->p = p;
	fs->out = out;
	if (format_svg_canonicalize(fs) != 0 || format_svg_sort(fs, weight) != 0)
		goto fail;

	if (fs->total > 0) {
		fs->scale = (double)FORMAT_SVG_PLOT_W / fs->total;
		fs->min_w = FORMAT_SVG_MIN_PX / fs->scale;
		for (;;) {
			fs->frames = fs->pruned = fs->levels = 0;
			format_svg_walk(fs, 0, 0, fs->n, 0);
			if (fs->frames <= FORMAT_SVG_MAX_FRAMES)
				break;
			fs->min_w *= 2;
		}
	}
	fs->height = FORMAT_SVG_TOP + FORMAT_SVG_BOTTOM + (fs->levels > 0 ?
	    (int)fs->levels * FORMAT_SVG_FRAME_H : FORMAT_SVG_EMPTY_H);

	format_svg_header(fs, weight);
	if (fs->total == 0) {
		format_svg_printf(fs, "<text id=\"empty\" x=\"%d\" y=\"%d\" "
		    "text-anchor=\"middle\">no samples</text>\n",
		    FORMAT_SVG_WIDTH / 2, FORMAT_SVG_TOP +
		    FORMAT_SVG_EMPTY_H / 2);
	} else {
		format_svg_printf(fs, "<g id=\"plot\">\n");
		fs->emit = 1;
		fs->frames = fs->pruned = 0;
		format_svg_walk(fs, 0, 0, fs->n, 0);
		format_svg_printf(fs, "</g>\n");
	}
	format_svg_footer(fs);
	if (fs->error) {
		errno = ENOMEM;
		goto fail;
	}
	ret = 0;

fail:
	saved = errno;
	free(fs->canon);
	free(fs->rep);
	free(fs->order);
	free(fs->csum);
	free(fs->tsum);
	free(fs);
	errno = saved;
	return (ret);
}
