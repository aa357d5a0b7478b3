# avatarcast — `make run` and `make test` install whatever is missing, then do their job.
# System packages come from apt-get, Python packages from PyPI into .venv (pinned in
# requirements.lock). Nothing is downloaded from anywhere else.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# janus: the SFU of Protocol janus's tests (run by them, never as a service); gcc + libc6-dev
# compile the tests' loopback ICE shim for it (not on a fresh Debian by default).
# postgresql: the tests of the PostgreSQL store start a throwaway server of their own
# (tests/pg_server.py), never the service.
APT_PACKAGES := ffmpeg espeak-ng libespeak-ng1 sox nginx libnginx-mod-rtmp chromium iproute2 \
  pocketsphinx-testdata janus gcc libc6-dev postgresql
STAMP := $(VENV)/.installed
DATA_DIR ?= ./avatarcast-data
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run test lint typecheck pytest bench clean system-packages

setup: system-packages $(STAMP)

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  echo "(their services are not started: avatarcast and its tests run their own nginx,"; \
	  echo " janus and postgres on 127.0.0.1; the janus and postgresql services are also"; \
	  echo " disabled at boot)"; \
	  blocker=""; if [ ! -e /usr/sbin/policy-rc.d ]; then blocker=/usr/sbin/policy-rc.d; \
	    printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$blocker >/dev/null && $(SUDO) chmod 755 $$blocker; fi; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	  status=$$?; [ -z "$$blocker" ] || $(SUDO) rm -f $$blocker; \
	  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then \
	    for unit in janus.service postgresql.service; do \
	      $(SUDO) systemctl disable --now $$unit >/dev/null 2>&1 || true; done; fi; \
	  exit $$status; \
	fi

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 needed"' \
	  || { echo "avatarcast needs Python 3.11 as $(PYTHON)"; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || { \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	@# --no-deps: the lock is complete, and mediapipe 0.10.21 declares protobuf<5 although its
	@# face mesh works with the protobuf 6 that livekit needs (see THIRD_PARTY.md).
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: setup
	@mkdir -p $(DATA_DIR)
	@[ -f $(DATA_DIR)/demo.mp4 ] || $(BIN)/avatarcast render --data-dir $(DATA_DIR) \
	  --text "Hello! I am your avatarcast presenter. Give me any text or any recording, and I will say it for you." \
	  --out $(DATA_DIR)/demo.mp4 --mouth-track $(DATA_DIR)/demo.mouth.json
	@# A development key on first start, kept in the data directory (mode 600).
	@[ -f $(DATA_DIR)/dev-key.json ] || { umask 077; \
	  $(BIN)/avatarcast keys create --name dev --data-dir $(DATA_DIR) > $(DATA_DIR)/dev-key.json; }
	@echo
	@echo "Demo page:    http://127.0.0.1:8080/  (open it in a browser; it uses the dev key on loopback)"
	@echo "Demo clip:    $(DATA_DIR)/demo.mp4"
	@echo "Dev key:      $(DATA_DIR)/dev-key.json  (appkey + accesstoken for the API)"
	@echo "RTMP server:  rtmp://127.0.0.1:1935/live/<SessionId>  (sessions with Protocol rtmp)"
	@echo
	@# A local RTMP server (Debian nginx + RTMP module, own prefix) for Protocol rtmp; it is
	@# stopped when the API server stops.
	@scripts/rtmp-server.sh start $(DATA_DIR); \
	  trap 'scripts/rtmp-server.sh stop $(DATA_DIR)' EXIT; \
	  $(BIN)/avatarcast serve --data-dir $(DATA_DIR) --rtmp-ingest-url rtmp://127.0.0.1:1935/live

lint: setup
	$(BIN)/ruff check src tests benchmarks tools examples
	$(BIN)/ruff format --check src tests benchmarks tools examples

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: setup
	$(BIN)/python benchmarks/engine.py --json
	$(BIN)/python benchmarks/lipsync.py --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
