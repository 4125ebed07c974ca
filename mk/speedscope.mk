# speedscope.mk -- check-speedscope: the folded and speedscope encoders' output
# of a hostile sample profile, checked with tools we did not write: python3's
# json module, and speedscope's own app in headless Chromium
# (tests/tools/speedscope-check.sh; needs node, npm and Debian's chromium).
# This file is read before the Makefile sets OBJDIR and the object lists,
# so only the recipe, expanded late, names them.

.PHONY: check-speedscope

check-speedscope:
	@$(MAKE) --no-print-directory $(DAEMON_LIB_OBJS) $(PROTO_OBJS)
	@mkdir -p $(OBJDIR)/tests
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -iquote daemon \
	    -o $(OBJDIR)/tests/format-sample tests/tools/format-sample.c \
	    $(DAEMON_LIB_OBJS) $(PROTO_OBJS) $(PKG_LIBS) $(LDFLAGS) -lm
	@sh tests/tools/check-formats.sh $(OBJDIR)/tests/format-sample
