# kiln: see README.md. Every target works on a fresh Debian machine as root.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all build test test-short deps demo demo-debs demo-debs-arm64 server server-rootfs server-rootfs-arm64 server-rootfs-all server-arm64 server-arm64-run server-run shim e2fsprogs-tests vet lint fuzz clean bench

all: build

# kiln-init is the init of the initramfs kiln generates. It is built for
# every architecture kiln makes images for (INIT_ARCHES) and embedded in
# bin/kiln (internal/initbin), so bin/kiln alone builds bootable images
# for each; bin/kiln-init (amd64) stays for --init. Its bytes become image
# bytes, so it is built the same way everywhere: static, trimmed paths, no
# VCS stamp.
INIT_ARCHES = amd64 arm64
build:
	for a in $(INIT_ARCHES); do CGO_ENABLED=0 GOARCH=$$a $(GO) build -trimpath -buildvcs=false -ldflags '-s -w' -o internal/initbin/bin/kiln-init-$$a ./cmd/kiln-init || exit 1; done
	mkdir -p bin && cp internal/initbin/bin/kiln-init-amd64 bin/kiln-init
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kiln ./cmd/kiln

# The judge tools the tests run (e2fsck, debugfs, fsck.vfat, mtools, sgdisk,
# sfdisk, qemu-img, mmdebstrap): installed with apt-get when missing.
deps:
	scripts/install-deps.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd pkg internal scripts)" || { echo "gofmt needed:"; gofmt -l cmd pkg internal scripts; exit 1; }

# staticcheck, pinned in go.mod as a tool (go get -tool ...@VERSION).
lint: vet
	$(GO) tool staticcheck ./...

# Every test, then every fuzz target for FUZZTIME (scripts/test.sh): the
# boot tests use the demo's Debian packages as layers, fetched once into
# .cache/debs (outside git) and found there through KILN_DEBS, and the
# server example's rootfs for x86-64 and arm64 (.cache/server and
# .cache/server-arm64, mmdebstrap, a few minutes the first time, both at
# once) for the sealed servers' boots (TestBootServer, TestBootServerArm64),
# and the arm64 demo packages. The last
# line counts the tests that passed, failed and were skipped; CI=true (as
# .ci/run sets) turns a skip for a missing judge into a failure.
# TESTFLAGS='-run TestX' narrows the run.
FUZZTIME ?= 15s
test: deps build lint demo-debs demo-debs-arm64 e2fsprogs-tests server-rootfs-all
	KILN_DEBS=$(CURDIR)/.cache/debs KILN_E2FSPROGS_TESTS=$(CURDIR)/.cache/e2fsprogs/tests \
		GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/test.sh

# e2fsprogs' own test images, which the ext4 reader must read as blkid and
# debugfs do: fetched once with apt-get source into .cache/e2fsprogs.
e2fsprogs-tests:
	scripts/fetch-e2fsprogs-tests.sh .cache/e2fsprogs

# Every fuzz target (layer reader, merge, spec parser, partition tables,
# image formats, ext4 and FAT readers) for FUZZTIME each; make test runs
# them briefly, so every CI run explores further.
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

test-short: build
	$(GO) test -short ./...

# The demo: fetch its Debian packages with apt (into .cache/, outside git),
# build the demo image and show what is in it.
demo-debs:
	scripts/fetch-debs.sh layers/demo/debs.txt .cache/debs

# arm64 Debian packages (the kernel, busybox, systemd-boot for arm64) for
# arm64 images: dpkg learns the arm64 package lists, nothing is installed.
demo-debs-arm64:
	scripts/fetch-debs.sh layers/demo-arm64/debs.txt .cache/debs-arm64

demo: deps build demo-debs
	bin/kiln build layers/demo/kiln.yaml
	bin/kiln inspect out/demo.img
	@echo "== booting out/demo.img under UEFI (OVMF, systemd-boot); TCG, no KVM needed"
	bin/kiln run --firmware uefi --expect KILN-DEMO-BOOTED --timeout 180s out/demo.img
	@echo "== booting out/demo.img under BIOS (SeaBIOS, syslinux)"
	bin/kiln run --firmware bios --expect KILN-DEMO-BOOTED --timeout 180s out/demo.img

# The server example (layers/server): a Debian systemd server with a web
# page on a sealed root (EROFS under dm-verity, /var writable). Its root
# filesystem is made once with mmdebstrap into .cache/server (outside git).
# The boot prints KILN-STATUS lines (see layers/server/kiln.yaml): a failed
# unit or a page not served fails the run. To browse the page:
# bin/kiln run --forward 8080:80 out/server.img, then http://127.0.0.1:8080/.
SERVER_FAIL := --fail-on 'KILN-STATUS failed-unit=' --fail-on 'KILN-STATUS www=failed' --fail-on 'Kernel panic'
server-rootfs:
	scripts/mkserver-rootfs.sh .cache/server/rootfs.tar

# arm64's: mmdebstrap --arch=arm64 runs the maintainer scripts under
# qemu-user (scripts/foreign-arch.sh readies binfmt_misc); about 4 minutes.
server-rootfs-arm64:
	scripts/mkserver-rootfs.sh .cache/server-arm64/rootfs.tar arm64

# Both at once: the x86 one waits mostly on the mirror, arm64's on the CPU.
server-rootfs-all:
	scripts/foreign-arch.sh arm64
	scripts/mkserver-rootfs.sh .cache/server/rootfs.tar & pid=$$!; \
	scripts/mkserver-rootfs.sh .cache/server-arm64/rootfs.tar arm64; arm=$$?; \
	wait $$pid && [ $$arm = 0 ]

server: deps build server-rootfs
	bin/kiln build layers/server/kiln.yaml
	bin/kiln inspect out/server.img

server-arm64: deps build server-rootfs-arm64
	bin/kiln build layers/server-arm64/kiln.yaml
	bin/kiln inspect out/server-arm64.img

server-arm64-run: server-arm64
	@echo "== booting out/server-arm64.img under qemu-system-aarch64 (AAVMF, systemd-boot), with a NIC (DHCP)"
	bin/kiln run --net --expect KILN-SERVER-BOOTED $(SERVER_FAIL) --timeout 400s out/server-arm64.img

server-run: server
	@echo "== booting out/server.img under UEFI (OVMF, systemd-boot), with a NIC (DHCP)"
	bin/kiln run --firmware uefi --net --expect KILN-SERVER-BOOTED $(SERVER_FAIL) --timeout 300s out/server.img
	@echo "== booting out/server.img under BIOS (SeaBIOS, syslinux)"
	bin/kiln run --firmware bios --expect KILN-SERVER-BOOTED $(SERVER_FAIL) --timeout 300s out/server.img

# Secure Boot on stock firmware: Debian's Microsoft-signed shim, its signed
# GRUB and kernel (layers/shim), booted with Secure Boot enforced on OVMF's
# store with Microsoft's keys enrolled. No key of ours is involved.
shim: deps build demo-debs
	bin/kiln build layers/shim/kiln.yaml
	bin/kiln inspect out/shim.img
	@echo "== booting out/shim.img: OVMF Secure Boot, Microsoft's keys (OVMF_VARS_4M.ms.fd) -> shim -> GRUB -> kernel"
	bin/kiln run --microsoft-keys --expect KILN-DEMO-BOOTED --fail-on 'Access Denied' --timeout 180s out/shim.img

# kiln against the shell pipeline (tar, sgdisk, mkfs.vfat, mcopy, mke2fs -d,
# qemu-img convert) on a Debian rootfs, and a scaling run: medians of
# BENCH_RUNS runs, a table on stdout and in .cache/bench/results.md.
# BENCH_SCALE=0 skips the scaling run; see scripts/bench.sh for the rest.
# Then scripts/bench-sealed.sh: kiln's sealed root (EROFS + dm-verity)
# against mkfs.erofs + veritysetup format, in .cache/bench/sealed.md
# (BENCH_SEALED=0 skips it).
bench: deps build
	GO=$(GO) scripts/bench.sh
	[ "$(BENCH_SEALED)" = 0 ] || GO=$(GO) scripts/bench-sealed.sh
	[ "$(BENCH_ARCH)" = 0 ] || scripts/bench-arch.sh

clean:
	rm -rf bin out
