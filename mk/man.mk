# mk/man.mk - the man pages (man/*.scd, scdoc), built by make when scdoc
# is installed (bash .ci/deps.sh build installs it) and by make install
# always. batchd.conf(5) is generated from the daemon's option table
# (batchd --dump-options, man/gen-conf.sh), so page and code agree.

SCDOC := $(shell command -v scdoc 2>/dev/null)
MAN_SCD := $(wildcard man/*.scd)
MAN_PAGES := $(patsubst man/%.scd,$(BUILD)/man/%,$(MAN_SCD)) $(BUILD)/man/batchd.conf.5
NEED_SCDOC = @command -v scdoc >/dev/null || { echo "scdoc not found: apt-get install scdoc (or bash .ci/deps.sh build)" >&2; exit 1; }

$(patsubst man/%.scd,$(BUILD)/man/%,$(MAN_SCD)): $(BUILD)/man/%: man/%.scd
	$(NEED_SCDOC)
	@mkdir -p $(dir $@)
	scdoc < $< > $@

$(BUILD)/man/batchd.conf.5.scd: $(BATCHD) man/batchd.conf.5.scd.in man/gen-conf.sh
	@mkdir -p $(dir $@)
	$(BATCHD) --dump-options | sh man/gen-conf.sh man/batchd.conf.5.scd.in > $@

$(BUILD)/man/batchd.conf.5: $(BUILD)/man/batchd.conf.5.scd
	$(NEED_SCDOC)
	scdoc < $< > $@

.PHONY: man
man: $(MAN_PAGES)

ifneq ($(SCDOC),)
all: $(MAN_PAGES)
endif

install: $(MAN_PAGES)
MAN_INSTALL = for p in $(MAN_PAGES); do \
		s=$${p\#\#*.}; install -d $(DESTDIR)$(MANDIR)/man$$s && \
		install -m 644 $$p $(DESTDIR)$(MANDIR)/man$$s/ || exit 1; \
	done
