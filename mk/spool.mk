# mk/spool.mk - the durable spool's fuzz target (fuzz/README.md): the
# record reader recovery runs over segment files. Included by the Makefile.
FUZZ_TARGETS += spool

fuzz-build: $(FUZZ_BUILD)/fuzz_spool

$(FUZZ_BUILD)/fuzz_spool: $(FUZZ_BUILD)/obj/fuzz/fuzz_spool.o \
		$(call fuzz_obj,daemon/spool_rec.c)
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer -o $@ $^
