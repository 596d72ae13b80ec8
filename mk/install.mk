# mk/install.mk - make install (included by the Makefile).
#
#   make && sudo make install                 PREFIX=/usr/local
#   make install DESTDIR=/tmp/root PREFIX=/usr
#
# Paths come from this step: every file that names one (the daemon's
# default sink_dir, batchd.pc, the units) is regenerated when PREFIX and
# friends differ from the build's, so `make install PREFIX=/usr` after a
# plain `make` installs /usr paths, not /usr/local ones.
#
# Not installed: the test-only sinks (chaos, cost; the suites and benches
# use them from build/sinks). Never overwritten: an existing
# $(SYSCONFDIR)/batchd/batchd.conf; the sample always goes beside it as
# batchd.conf.sample, as Debian packages do.

TEST_ONLY_SINKS := chaos cost
INSTALL_SINKS := $(filter-out $(patsubst %,$(BUILD)/sinks/%.so,$(TEST_ONLY_SINKS)),$(SINKS))
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions

# The paths every generated file depends on, one line; rewritten only
# when it changes, so that a change rebuilds exactly what names a path.
BD_PATHS := $(PREFIX) $(BINDIR) $(LIBDIR) $(INCDIR) $(SINKDIR) $(SYSCONFDIR)

.PHONY: FORCE
$(BUILD)/paths.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(BD_PATHS)' | cmp -s - $@ 2>/dev/null || echo '$(BD_PATHS)' > $@

# config.c holds the default sink_dir (BD_SINKDIR).
$(BUILD)/obj/daemon/config.o: $(BUILD)/paths.stamp

# The units with this install's paths.
UNIT_SED := -e 's|/usr/local/bin/batchd|$(BINDIR)/batchd|g' \
	-e 's|/etc/batchd/|$(SYSCONFDIR)/batchd/|g'

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) \
		$(DESTDIR)$(SINKDIR) $(DESTDIR)$(SYSCONFDIR)/batchd $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(BATCHD) $(BATCHCTL) $(DESTDIR)$(BINDIR)/
	install -m 755 $(LIBSO) $(DESTDIR)$(LIBDIR)/libbatchd.so.$(VERSION)
	ln -sf libbatchd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libbatchd.so.0
	ln -sf libbatchd.so.0 $(DESTDIR)$(LIBDIR)/libbatchd.so
	install -m 644 $(LIBA) $(DESTDIR)$(LIBDIR)/
	install -m 644 $(BUILD)/batchd.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 644 client/batchd.h proto/batchd_status.h daemon/batchd_sink.h $(DESTDIR)$(INCDIR)/
	install -m 755 $(INSTALL_SINKS) $(DESTDIR)$(SINKDIR)/
	install -m 644 conf/batchd.conf $(DESTDIR)$(SYSCONFDIR)/batchd/batchd.conf.sample
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/batchd/batchd.conf ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/batchd/batchd.conf (the new sample is batchd.conf.sample)"; \
	else \
		echo "install -m 644 conf/batchd.conf $(DESTDIR)$(SYSCONFDIR)/batchd/batchd.conf"; \
		install -m 644 conf/batchd.conf $(DESTDIR)$(SYSCONFDIR)/batchd/batchd.conf; \
	fi
	for u in batchd.service batchd.socket; do \
		sed $(UNIT_SED) systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		chmod 644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 644 systemd/batchd.sysusers $(DESTDIR)$(SYSUSERSDIR)/batchd.conf
	install -m 644 systemd/batchd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/batchd.conf
	install -m 644 client/batchctl.bash $(DESTDIR)$(BASHCOMPDIR)/batchctl
	$(MAN_INSTALL)
