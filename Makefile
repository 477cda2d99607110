# kiln: see README.md. Every target works on a fresh Debian machine as root.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all build test test-short deps demo demo-debs vet fuzz clean bench

all: build

# kiln-init is the init of the initramfs kiln generates; kiln finds it
# beside its own binary. Its bytes become image bytes, so it is built the
# same way everywhere: static, trimmed paths, no VCS stamp.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags '-s -w' -o bin/kiln-init ./cmd/kiln-init
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kiln ./cmd/kiln

# The judge tools the tests run (e2fsck, debugfs, fsck.vfat, mtools, sgdisk,
# sfdisk, qemu-img, mmdebstrap): installed with apt-get when missing.
deps:
	scripts/install-deps.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd pkg internal)" || { echo "gofmt needed:"; gofmt -l cmd pkg internal; exit 1; }

# The boot tests use the demo's Debian packages as layers: fetched once
# into .cache/debs (outside git), found there through KILN_DEBS. Packages
# run one at a time (-p 1): QEMU boots under TCG on two cores are slow
# enough alone, and a starved guest kernel can fail its timer check.
test: deps build vet demo-debs
	KILN_DEBS=$(CURDIR)/.cache/debs $(GO) test -p 1 -count=1 -timeout 25m ./...
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Every fuzz target (layer reader, merge, spec parser, partition tables,
# image formats, ext4 and FAT readers) for FUZZTIME each; make test runs
# them briefly, so every CI run explores further.
FUZZTIME ?= 15s
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

test-short: build
	$(GO) test -short ./...

# The demo: fetch its Debian packages with apt (into .cache/, outside git),
# build the demo image and show what is in it.
demo-debs:
	scripts/fetch-debs.sh layers/demo/debs.txt .cache/debs

demo: deps build demo-debs
	bin/kiln build layers/demo/kiln.yaml
	bin/kiln inspect out/demo.img
	@echo "== booting out/demo.img under UEFI (OVMF, systemd-boot); TCG, no KVM needed"
	bin/kiln run --firmware uefi --expect KILN-DEMO-BOOTED --timeout 180s out/demo.img
	@echo "== booting out/demo.img under BIOS (SeaBIOS, syslinux)"
	bin/kiln run --firmware bios --expect KILN-DEMO-BOOTED --timeout 180s out/demo.img

# kiln against the shell pipeline (tar, sgdisk, mkfs.vfat, mcopy, mke2fs -d,
# qemu-img convert) on a Debian rootfs, and a scaling run: medians of
# BENCH_RUNS runs, a table on stdout and in .cache/bench/results.md.
# BENCH_SCALE=0 skips the scaling run; see scripts/bench.sh for the rest.
bench: deps build
	GO=$(GO) scripts/bench.sh

clean:
	rm -rf bin out
