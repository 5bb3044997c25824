# mdm_user: Apple MDM server logic inside PostgreSQL (PGXS build)

EXTENSION = mdm_user
EXTVERSION = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" $(EXTENSION).control)
PGFILEDESC = "mdm_user - Apple MDM server logic inside PostgreSQL"

MODULE_big = mdm_user
OBJS = \
	src/mdm_user.o \
	src/resources.o \
	src/plist_read.o \
	src/plist_bscan.o \
	src/plist_xml.o \
	src/plist_jsonb.o \
	src/plist_write.o \
	src/mdm_message.o \
	src/endpoint.o \
	src/routing.o \
	src/enrollment_id.o \
	src/push_cert.o \
	src/cms.o \
	src/identity.o \
	src/spi_plans.o \
	src/shard_local.o \
	src/key_lookup.o \
	src/row_insert.o \
	src/row_update.o \
	src/raw_message.o \
	src/checkin_path.o \
	src/connect_path.o \
	src/event_path.o \
	src/enqueue_path.o \
	src/fanout_path.o \
	src/error_context.o

# The install script is built from one file per concern, in name order.
SCHEMA_PARTS = $(sort $(wildcard schema/*.sql))
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
# From 1.0 on, every change of SQL objects also ships as an upgrade script
# updates/mdm_user--OLD--NEW.sql (docs/releasing.md); the released full
# scripts are frozen under test/upgrade/releases/ (make freeze-release).
DATA = $(sort $(wildcard updates/$(EXTENSION)--*--*.sql))

# pg_regress: sql/*.sql against expected/*.out, in name order.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))


# isolationtester: test/isolation/specs/*.spec against test/isolation/expected/*.out
ISOLATION = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation

PKG_CONFIG ?= pkg-config
PG_CPPFLAGS = $(shell $(PKG_CONFIG) --cflags libplist-2.0 openssl)
SHLIB_LINK = $(shell $(PKG_CONFIG) --libs libplist-2.0 openssl)
# Warnings go to gcc only (CFLAGS); clang builds the LLVM bitcode from CPPFLAGS.
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: rebuild every object when a header
# changes (a stale object with an old struct layout reads garbage).
$(OBJS) $(OBJS:.o=.bc): $(wildcard src/*.h)

$(EXTENSION)--$(EXTVERSION).sql: $(SCHEMA_PARTS) $(EXTENSION).control
	cat $(SCHEMA_PARTS) > $@

# The HTTP front end (frontend/, docs/frontend.md): built with the extension
# and installed beside PostgreSQL's programs (pg_config --bindir).
FRONTEND = frontend/mdm-frontend
all: $(FRONTEND)
$(FRONTEND): $(wildcard frontend/*.c frontend/*.h) frontend/Makefile
	$(MAKE) -C frontend VERSION=$(EXTVERSION)
install: install-frontend
.PHONY: install-frontend clean-frontend
install-frontend: $(FRONTEND)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(FRONTEND) '$(DESTDIR)$(bindir)/mdm-frontend'
clean: clean-frontend
clean-frontend:
	$(MAKE) -C frontend clean

# Releasing (docs/releasing.md): freeze the install script of the version in
# mdm_user.control as test/upgrade/releases/VERSION/ (REPLACE=1: again, for a
# version not yet published).
.PHONY: freeze-release deb
freeze-release:
	tools/freeze-release $(if $(REPLACE),--replace) $(EXTVERSION)

# Debian packages (postgresql-15-mdm-user, mdm-frontend) built with
# dpkg-buildpackage in a temporary copy of the tree; the .deb files land in
# DEB_OUT (default build/debs).
DEB_OUT ?= build/debs
deb:
	tools/build-debs $(DEB_OUT)

# The benchmark at its default scale (docs/performance.md): a throwaway
# cluster, the installed extension (or MDM_BENCH_STAGE=/dir to build and
# stage this tree).  Not part of the tests.
.PHONY: bench
bench:
	test/bench/run

# Apple's MDM schema (a copy of github.com/apple/device-management) ->
# schema/05_apple_schema.sql.  The output is committed: normal builds need
# neither the copy nor Python.  See docs/apple-schema.md.
APPLE_DM ?= ../shared/apple-device-management
APPLE_SCHEMA_PYTHON ?= python3
.PHONY: apple-schema
apple-schema:
	$(APPLE_SCHEMA_PYTHON) tools/gen_apple_schema.py $(APPLE_DM)

ifeq ($(shell test $(VERSION_NUM) -ge 150000 && echo yes),)
$(error mdm_user requires PostgreSQL 15 or later)
endif

# Fuzzing the plist reader and the message decoder outside the server
# (docs/fuzzing.md):
#   make fuzz        build test/fuzz/build/fuzz_plist
#   make fuzz-run    bounded run for CI (FUZZ_RUNS executions, at most 120 s)
#   make fuzz-long   long run (FUZZ_SECONDS, FUZZ_JOBS processes)
# FUZZ_PLIST_FLAGS may point at an instrumented build of libplist.
FUZZ_CC ?= clang-14
FUZZ_DIR = test/fuzz
FUZZ_BIN = $(FUZZ_DIR)/build/fuzz_plist
FUZZ_SRCS = src/plist_read.c src/plist_bscan.c src/plist_xml.c src/mdm_message.c \
	$(FUZZ_DIR)/fuzz_plist.c $(FUZZ_DIR)/fuzz_walk.c $(FUZZ_DIR)/fuzz_text.c \
	$(FUZZ_DIR)/fuzz_message.c
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -Wall -Wextra -Werror -Isrc
FUZZ_PLIST_FLAGS ?= $(shell $(PKG_CONFIG) --cflags --libs libplist-2.0)
FUZZ_RUNS ?= 300000
FUZZ_SECONDS ?= 3600
FUZZ_JOBS ?= 2
FUZZ_ENV = FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS)
EXTRA_CLEAN += $(FUZZ_DIR)/build

.PHONY: fuzz fuzz-run fuzz-long

fuzz: $(FUZZ_BIN)

$(FUZZ_BIN): $(FUZZ_SRCS) $(FUZZ_DIR)/fuzz_plist.h src/plist_read.h src/mdm_message.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_SRCS) $(FUZZ_PLIST_FLAGS) -lm

fuzz-run: fuzz
	$(FUZZ_ENV) $(FUZZ_DIR)/run.sh bounded

fuzz-long: fuzz
	$(FUZZ_ENV) $(FUZZ_DIR)/run.sh long
