# relaymail: a sendmail that relays through one smarthost.
#   make demo     build relaymail and watch it relay a cron-style message
#                 through a throwaway local SMTP server
#   make test     every test (vet, race detector, shuffled order); as root
#                 also the real smarthosts (make peers) and the Debian
#                 package: built, installed, checked, purged
#   make peers    Postfix, Exim and Mailpit unpacked under
#                 /var/cache/relaymail-peers and the case table run against
#                 each on loopback, and the container built and run (root)
#   make fuzz     each fuzz target for FUZZTIME
#   make bench    round trips, throughput and memory side by side with msmtp

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME ?= 20s

.PHONY: all build demo test peers fuzz bench clean

all: build

# Static (CGO_ENABLED=0) like the Debian package and the container: no
# dynamic loader, libc or cgo thread at each start (issue 13: about a
# third fewer instructions per sendmail call); os/user reads /etc/passwd.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o relaymail .

demo:
	$(GO) test -count=1 -run '^TestDemo$$' -v ./internal/demo

# What the e2e tests drive besides relaymail, as "file-or-command:Debian
# package". A test whose client is missing skips (go test -v says why);
# make test names them at the end, so that no skip goes unnoticed.
CLIENTS = swaks:swaks php:php-cli \
	/usr/share/php/Symfony/Component/Mailer/autoload.php:php-symfony-mailer \
	/usr/share/php/Swift/autoload.php:php-swiftmailer python3:python3 man:man-db

test:
	$(GO) vet ./...
	$(GO) test -race -shuffle=on -count=1 ./...
	@if [ "$$(id -u)" = 0 ] && [ -z "$$RELAYMAIL_SKIP_PEERS" ]; then \
	  bash peers/run; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "make test: SKIPPED peers/run (RELAYMAIL_SKIP_PEERS is set)"; \
	else \
	  echo "make test: SKIPPED peers/run (needs root)"; \
	fi
	@if [ "$$(id -u)" = 0 ] && [ -z "$$RELAYMAIL_SKIP_PACKAGE" ]; then \
	  bash packaging/test-deb; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "make test: SKIPPED packaging/test-deb (RELAYMAIL_SKIP_PACKAGE is set)"; \
	else \
	  echo "make test: SKIPPED packaging/test-deb and the tests that mount a tmpfs or run as another user (they need root)"; \
	fi
	@missing=; for c in $(CLIENTS); do \
	  what=$${c%%:*}; pkg=$${c#*:}; \
	  case $$what in /*) [ -e "$$what" ] ;; *) command -v "$$what" >/dev/null ;; esac || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make test: SKIPPED the tests that drive:$$missing (not installed; apt-get install -y$$missing)"; \
	fi

peers:
	bash peers/run

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	./bench/run

clean:
	rm -f relaymail
