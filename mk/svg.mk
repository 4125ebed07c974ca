# svg.mk -- the flame graph's browser check (make check-svg): the unit suite
# writes a sample SVG, xmllint parses it, and headless Chromium drives it
# through tests/browser/svg-check.js.  Needs libxml2-utils, chromium, nodejs
# and npm (playwright-core only; no browser is downloaded).
SVG_OUT	?= build/svg
SVG_FUNC ?= db_query

.PHONY: check-svg svg-check
svg-check: check-svg
check-svg:
	@$(MAKE) --no-print-directory $(OBJDIR)/tests/test_format_svg
	@mkdir -p $(SVG_OUT)
	PROFD_SVG_OUT=$(abspath $(SVG_OUT))/sample.svg \
	    $(OBJDIR)/tests/test_format_svg --filter 'format_svg/sample_for_browser'
	xmllint --noout --nonet $(SVG_OUT)/sample.svg
	@test -d tests/browser/node_modules/playwright-core || \
	    (cd tests/browser && npm ci --no-audit --no-fund)
	node tests/browser/svg-check.js $(SVG_OUT)/sample.svg $(SVG_OUT)/shots \
	    '$(SVG_FUNC)'

# A rule here must not become the default goal.
ifeq ($(.DEFAULT_GOAL),svg-check)
.DEFAULT_GOAL :=
endif
