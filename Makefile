# gocr build entry points. Generated files are committed so that `go build`
# alone works; `make verify-generated` proves they match their sources.

GO            ?= go
PROTOC        ?= protoc
TOOLS_DIR     := $(CURDIR)/.tools
# Pinned so that regenerated code is byte-for-byte reproducible: the
# generator's version is written into the header of every .pb.go.
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO := $(TOOLS_DIR)/protoc-gen-go
# Stamp naming the installed version, so changing the pin reinstalls.
PROTOC_GEN_GO_STAMP := $(TOOLS_DIR)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
# Debian 12's protobuf-compiler; protoc also records its version in the header.
PROTOC_VERSION := 3.21.12

PROTO_SRC     := gocrpb/gocr.proto
PROTO_GEN     := gocrpb/gocr.pb.go

BINARY        := gocr

.PHONY: all tools proto verify-proto blobs verify-blobs verify-generated build install-caps libgocr install-lib test test-noavx512 fuzz soak reliability demo deps bench man install

all: build libgocr

tools: $(PROTOC_GEN_GO_STAMP)
	@if ! command -v $(PROTOC) >/dev/null 2>&1; then \
		echo "installing protoc (protobuf-compiler) with apt-get"; \
		apt-get update && apt-get install -y protobuf-compiler; \
	fi
	@$(PROTOC) --version | grep -qF '$(PROTOC_VERSION)' || \
		echo "warning: expected protoc $(PROTOC_VERSION), got $$($(PROTOC) --version); generated code may differ"

$(PROTOC_GEN_GO_STAMP):
	rm -f $(TOOLS_DIR)/.protoc-gen-go-*
	GOBIN=$(TOOLS_DIR) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	touch $@

# protoc_gen runs protoc on $(PROTO_SRC), writing the generated file under
# directory $(1) at the .proto's own relative path (paths=source_relative).
define protoc_gen
	$(PROTOC) --plugin=protoc-gen-go=$(PROTOC_GEN_GO) \
		--go_out=$(1) --go_opt=paths=source_relative \
		$(PROTO_SRC)
endef

proto: tools
	$(call protoc_gen,.)

verify-proto: tools
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(call protoc_gen,$$tmp) && \
	if ! cmp -s "$$tmp/$(PROTO_GEN)" $(PROTO_GEN); then \
		diff -u $(PROTO_GEN) "$$tmp/$(PROTO_GEN)" | head -n 40; \
		echo "$(PROTO_GEN) is not up to date with $(PROTO_SRC): run 'make proto' and commit the result" >&2; \
		exit 1; \
	fi; \
	echo "$(PROTO_GEN) is up to date"

# The parasite and restorer blobs: freestanding, position-independent C.
# The flags keep the bytes reproducible and the code free of anything that
# needs a runtime: no SSE (the parasite must not touch the target's vector
# registers), no stack protector, no unwind tables, no jump tables (they
# would need relocations), no CET notes.
CC            ?= gcc
LD            ?= ld
OBJCOPY       ?= objcopy
BLOB_CFLAGS   := -O2 -fpie -ffreestanding -fno-builtin -nostdlib -mgeneral-regs-only \
		 -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables \
		 -fcf-protection=none -fno-jump-tables -g0 -Wall -Wextra -Werror -std=gnu11
BLOB_LDFLAGS  := -pie --no-dynamic-linker -z noexecstack --no-warn-rwx-segments --build-id=none

PARASITE_BIN  := parasite/parasite.bin
RESTORER_BIN  := restorer/restorer.elf
PARASITE_SRC  := parasite/c/parasite.c parasite/c/abi.h parasite/c/parasite.lds nolibc/nolibc.h nolibc/crc32c.h
RESTORER_SRC  := restorer/c/restorer.c restorer/c/peercred.c restorer/c/abi.h restorer/c/restorer.lds nolibc/nolibc.h nolibc/crc32c.h

# build_parasite/build_restorer OUT TMPDIR: compile, link, refuse any
# dynamic relocation (the blob is copied byte for byte to wherever it
# runs), and write OUT.
define build_parasite
	$(CC) $(BLOB_CFLAGS) -c parasite/c/parasite.c -o $(2)/parasite.o && \
	$(LD) $(BLOB_LDFLAGS) -T parasite/c/parasite.lds $(2)/parasite.o -o $(2)/parasite.elf && \
	{ readelf -r $(2)/parasite.elf | grep -q 'There are no relocations' || \
		{ echo "parasite blob has relocations" >&2; exit 1; }; } && \
	end=$$(nm $(2)/parasite.elf | awk '$$3=="__blob_end"{print $$1}') && \
	{ [ $$((0x$$end)) -le $$((0x10000)) ] || { echo "parasite blob exceeds PARASITE_BLOB_MAX" >&2; exit 1; }; } && \
	{ ! readelf -SW $(2)/parasite.elf | grep -qE ' \.(data|bss)' || \
		{ echo "parasite blob has data or bss, which it could not write under PR_SET_MDWE (parasite/infect.go mapRegion)" >&2; exit 1; }; } && \
	$(OBJCOPY) -O binary $(2)/parasite.elf $(1)
endef

define build_restorer
	$(CC) $(BLOB_CFLAGS) -c restorer/c/restorer.c -o $(2)/restorer.o && \
	$(LD) $(BLOB_LDFLAGS) -T restorer/c/restorer.lds $(2)/restorer.o -o $(1) && \
	{ readelf -r $(1) | grep -q 'There are no relocations' || \
		{ echo "restorer has relocations" >&2; exit 1; }; }
endef

blobs: $(PARASITE_BIN) $(RESTORER_BIN)

$(PARASITE_BIN): $(PARASITE_SRC)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(call build_parasite,$@,$$tmp)

$(RESTORER_BIN): $(RESTORER_SRC)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(call build_restorer,$@,$$tmp)

verify-blobs:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(call build_parasite,$$tmp/parasite.bin,$$tmp) && \
	$(call build_restorer,$$tmp/restorer.elf,$$tmp) && \
	for f in $(PARASITE_BIN) $(RESTORER_BIN); do \
		if ! cmp -s "$$tmp/$$(basename $$f)" $$f; then \
			echo "$$f is not up to date with its C source: run 'make blobs' and commit the result" >&2; \
			exit 1; \
		fi; \
	done; \
	echo "blobs are up to date"

# Every check that a committed generated file matches its source.
verify-generated: verify-proto verify-blobs

# deps installs what building and testing need on a fresh Debian machine:
# gcc and binutils for the blobs and the test targets, python3 for the
# Python targets, setpriv for the set-id test, gdb and strace for the tests
# that corrupt or trace targets, setcap and getcap for install-caps and the
# ordinary-user tests, script and tmux for the terminal tests, the sqlite3 shell and
# libsqlite3-dev for the database test (test/sqlite_test.go), and a Slurm controller, node daemon, client commands
# and munge for the tests that run jobs on a one-node Slurm cluster
# (test/slurm_harness_test.go starts the daemons by hand, so no service is
# enabled or started; --no-install-recommends keeps out Slurm's optional
# plugins and their libraries), and the real programs of the acceptance
# tests (test/accept_*_test.go: redis-server, Open MPI's mpirun and
# mpicc), which the tests start themselves, each on a port of its own
# (where services run, Debian starts redis's own on 6379 too). Only what
# is missing, so a ready machine skips apt.
deps:
	@missing=""; lean=""; \
	for c in gcc:gcc ld:binutils objcopy:binutils readelf:binutils python3:python3 setpriv:util-linux gdb:gdb strace:strace setcap:libcap2-bin getcap:libcap2-bin nft:nftables script:bsdutils tmux:tmux sqlite3:sqlite3; do \
		command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c##*:}"; \
	done; \
	[ -e /usr/include/sqlite3.h ] || missing="$$missing libsqlite3-dev"; \
	for c in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge redis-server:redis-server mpirun:openmpi-bin mpicc:libopenmpi-dev; do \
		command -v $${c%%:*} >/dev/null 2>&1 || lean="$$lean $${c##*:}"; \
	done; \
	if [ -n "$$missing$$lean" ]; then apt-get update; fi && \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing with apt-get"; \
		apt-get install -y $$missing; \
	fi && \
	if [ -n "$$lean" ]; then \
		echo "installing$$lean with apt-get"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$lean; \
	fi

build:
	$(GO) build -o $(BINARY) .

# install: gocr, BLCR's names for it (the binary acts as cr_checkpoint,
# cr_restart or cr_run when run under that name) and the man pages.
PREFIX        ?= /usr/local
BINDIR        ?= $(PREFIX)/bin
MANDIR        ?= $(PREFIX)/share/man/man1
BLCR_NAMES    := cr_checkpoint cr_restart cr_run
MAN_DIR       := man

# man: a man page for gocr and for each BLCR name, generated from the
# command definitions (`gocr man NAME`); not committed, made again by
# every install.
man: build
	mkdir -p $(MAN_DIR)
	for n in gocr $(BLCR_NAMES); do ./$(BINARY) man $$n > $(MAN_DIR)/$$n.1 || exit 1; done

install: build man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 0755 $(BINARY) $(DESTDIR)$(BINDIR)/gocr
	for n in $(BLCR_NAMES); do ln -sfn gocr $(DESTDIR)$(BINDIR)/$$n || exit 1; done
	for n in gocr $(BLCR_NAMES); do install -m 0644 $(MAN_DIR)/$$n.1 $(DESTDIR)$(MANDIR)/$$n.1 || exit 1; done

# install-caps gives an installed gocr the one file capability an
# ordinary user needs to checkpoint and restart their own jobs (README,
# "Ordinary users"): cap_checkpoint_restore, permitted and effective.
# GOCR_INSTALLED names the file (by default where an install to PREFIX
# puts it). A file with capabilities that a user other than root could
# rewrite would hand them the capability, so such a file is refused;
# setcap fails on a filesystem without extended attributes.
GOCR_INSTALLED ?= $(DESTDIR)$(PREFIX)/bin/gocr
install-caps:
	@command -v setcap >/dev/null 2>&1 || { echo "install-caps needs setcap: run 'make deps'" >&2; exit 1; }
	@test -f '$(GOCR_INSTALLED)' || { echo "$(GOCR_INSTALLED): no such file: install gocr first, or set GOCR_INSTALLED" >&2; exit 1; }
	@[ "$$(stat -c %u '$(GOCR_INSTALLED)')" = 0 ] && [ $$(( 0$$(stat -c %a '$(GOCR_INSTALLED)') & 022 )) = 0 ] || \
		{ echo "$(GOCR_INSTALLED) must be owned by root and writable by no one else before it gets a capability" >&2; exit 1; }
	setcap cap_checkpoint_restore=ep '$(GOCR_INSTALLED)'
	@getcap '$(GOCR_INSTALLED)'
# libgocr: the callbacks library a program links to run code before a
# checkpoint and after a restart (libgocr/gocr.h, docs/CALLBACKS.md),
# static and shared; only gocr.h's functions are exported. install-lib
# installs it with its header under PREFIX (DESTDIR for packaging).
AR            ?= ar
LIBDIR        ?= $(PREFIX)/lib
INCLUDEDIR    ?= $(PREFIX)/include
LIBGOCR_CFLAGS := -O2 -g -fPIC -fvisibility=hidden -pthread -Wall -Wextra -Werror -std=gnu11
LIBGOCR_SRC   := libgocr/libgocr.c libgocr/gocr.h libgocr/protocol.h
LIBGOCR_A     := libgocr/libgocr.a
LIBGOCR_SO    := libgocr/libgocr.so.1

libgocr: $(LIBGOCR_A) $(LIBGOCR_SO)

$(LIBGOCR_A): $(LIBGOCR_SRC)
	$(CC) $(LIBGOCR_CFLAGS) -c libgocr/libgocr.c -o libgocr/libgocr.o
	rm -f $@ && $(AR) rcs $@ libgocr/libgocr.o

$(LIBGOCR_SO): $(LIBGOCR_SRC)
	$(CC) $(LIBGOCR_CFLAGS) -shared -Wl,-soname,libgocr.so.1 -o $@ libgocr/libgocr.c

install-lib: libgocr
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)
	install -m 644 libgocr/gocr.h $(DESTDIR)$(INCLUDEDIR)/gocr.h
	install -m 644 $(LIBGOCR_A) $(DESTDIR)$(LIBDIR)/libgocr.a
	install -m 755 $(LIBGOCR_SO) $(DESTDIR)$(LIBDIR)/libgocr.so.1
	ln -sf libgocr.so.1 $(DESTDIR)$(LIBDIR)/libgocr.so
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null 2>&1; then ldconfig; fi

# demo: a counter is dumped, killed and restored with the same PID.
demo: deps build
	./scripts/demo.sh

# test: the whole suite, as CI runs it (integration tests need root),
# then a short fuzz pass. TEST_TIMEOUT is go test's limit for a package
# (make test-noavx512 raises it where QEMU emulates the CPU).
TEST_TIMEOUT  ?= 20m
test: deps tools verify-generated
	$(GO) vet ./...
	$(MAKE) fuzz
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# test-noavx512: `make test`, as CI runs it, in a guest whose CPU has no
# AVX-512, booting Debian 12's Linux 6.12 (test/cpuvm/run.sh, which
# installs QEMU and debootstrap with apt-get when missing; needs root).
# KVM where this machine has it, else QEMU's slower emulation (TCG).
# GOCR_CPUVM_DIR keeps the guest's root file system between runs.
test-noavx512:
	test/cpuvm/run.sh

# fuzz: every fuzz target (the image readers, the /proc parsers and the
# restore plan built from images) for FUZZTIME each, a count of inputs:
# a time limit (-fuzztime 3s) can end a run as it tests an input, which go
# test then reports as a failure ("context deadline exceeded"); `go test` alone runs
# only their seeds. A fuzzing run takes one target at a time, so each
# package's instrumented test binary is built once and the targets run in
# turn, in two lines side by side with one fuzzing worker each (two cores
# in all), each in its package's directory with go test's corpus cache.
# Each input that finds new code is minimized for at most FUZZMINIMIZE
# executions: go test's default, 60s, would spend a short run minimizing
# instead of fuzzing. A crasher is written to PKG/testdata/fuzz/TARGET/:
# commit it with the fix, as a regression seed.
FUZZTIME      ?= 3000x
FUZZMINIMIZE  ?= 200x
FUZZ_PKGS     := ./images ./proc ./restorer
fuzz:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cache=$$($(GO) env GOCACHE)/fuzz; mod=$$($(GO) list -m); all=""; \
	for pkg in $(FUZZ_PKGS); do \
		bin=$$tmp/$$(basename $$pkg).test; \
		$(GO) test -c -fuzz . -o $$bin $$pkg; \
		for target in $$($$bin -test.list '^Fuzz'); do all="$$all $$pkg:$$target"; done; \
	done; \
	pids=""; for line in 0 1; do \
		( i=0; for t in $$all; do \
			i=$$((i + 1)); [ $$((i % 2)) -eq $$line ] || continue; \
			pkg=$${t%%:*}; target=$${t#*:}; log=$$tmp/$$target.log; \
			echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
			( cd $$pkg && $$tmp/$$(basename $$pkg).test -test.run '^$$' -test.fuzz "^$$target\$$" \
				-test.fuzztime $(FUZZTIME) -test.fuzzminimizetime $(FUZZMINIMIZE) -test.parallel 1 \
				-test.fuzzcachedir "$$cache/$$mod/$${pkg#./}" ) >$$log 2>&1 || { cat $$log; exit 1; }; \
		done ) & pids="$$pids $$!"; \
	done; \
	fail=0; for pid in $$pids; do wait $$pid || fail=1; done; exit $$fail

# soak: the long checks, not run by test: the fuzz targets for a million
# inputs each, gocr killed at random, and the integration tests
# SOAK_COUNT times in a row with the soak-only ones (GOCR_SOAK=1: many
# cycles, much memory) among them.
SOAK_COUNT ?= 20
soak: deps tools
	$(MAKE) fuzz FUZZTIME=1000000x
	$(MAKE) reliability
	GOCR_SOAK=1 $(GO) test -count=$(SOAK_COUNT) -timeout 0 ./test

# reliability: gocr SIGKILLed at random instants of dumps and restores,
# RELIABILITY_TRIALS trials (docs/RELIABILITY.md, "gocr killed at
# random"); needs root, about 10 minutes for 1000. A lost job fails it,
# printing the seed and trial (RELIABILITY_FLAGS="-seed S -trial N"
# reproduces one) and keeping the evidence.
RELIABILITY_TRIALS ?= 1000
reliability: deps build
	$(GO) run ./test/reliability -gocr ./$(BINARY) -trials $(RELIABILITY_TRIALS) $(RELIABILITY_FLAGS)

# bench: gocr against the machine's limit for the same work, one table
# (docs/PERFORMANCE.md); needs root, about 10 minutes. BENCH_FLAGS=-quick
# measures 1 GiB only.
bench: deps build
	$(GO) run ./bench -gocr ./$(BINARY) $(BENCH_FLAGS)
