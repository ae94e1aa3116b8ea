# unitenant — see README.md. `make dev` runs everything locally; `make test`
# runs every test against a real MariaDB (started if none is running).

SHELL   := /bin/bash
GO      ?= go
MODULE  := github.com/unitenant/unitenant
FUNCTIONS := $(sort $(notdir $(wildcard functions/*)))
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X $(MODULE)/shared/config.Version=$(VERSION)
# What the deployed functions run on (template.yaml: arm64, provided.al2023).
DEPLOY_ARCH ?= arm64
# lambda.norpc drops aws-lambda-go's legacy RPC mode, unused on provided.al2023.
BUILD := CGO_ENABLED=0 $(GO) build -trimpath -tags lambda.norpc -ldflags '$(LDFLAGS)'

.PHONY: help dev test bench build build-local invoke lint package clean

help: ## list the targets
	@grep -E '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

dev: ## run the whole system locally on :8080 (MariaDB, migrations, every function, crons)
	@scripts/dev.sh

test: ## vet, then every test (unit, integration, e2e) against a real MariaDB
	@scripts/test.sh

bench: ## run the benchmarks and write BENCHMARKS.md
	@scripts/bench.sh

build: ## linux/$(DEPLOY_ARCH) bootstrap per function under dist/<function>/
	@for f in $(FUNCTIONS); do \
		echo "build dist/$$f/bootstrap"; \
		GOOS=linux GOARCH=$(DEPLOY_ARCH) $(BUILD) -o dist/$$f/bootstrap ./functions/$$f || exit 1; \
	done

build-local: ## every function and tool for this machine, under .dev/bin
	@mkdir -p .dev/bin
	@$(BUILD) -o .dev/bin/ ./functions/... ./scripts/gateway ./scripts/invoke ./scripts/tenantctl ./scripts/fakeai

# `sam build` calls build-<LogicalId> with ARTIFACTS_DIR set: HealthFunction
# builds functions/health, ProvisionCronFunction functions/provision-cron.
build-%Function:
	GOOS=linux GOARCH=$(DEPLOY_ARCH) $(BUILD) -o $(ARTIFACTS_DIR)/bootstrap \
		./functions/$(shell echo '$*' | sed -E 's/([a-z0-9])([A-Z])/\1-\2/g' | tr 'A-Z' 'a-z')

# AiChatStreamFunction is functions/ai-chat again, behind a streaming Function
# URL (template.yaml); an explicit rule wins over the pattern.
build-AiChatStreamFunction:
	GOOS=linux GOARCH=$(DEPLOY_ARCH) $(BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/ai-chat

invoke: build-local ## sam local invoke without Docker: make invoke FN=health EVENT=events/health.json
	@test -n "$(FN)" || { echo "usage: make invoke FN=<function> [EVENT=events/<function>.json]"; exit 2; }
	@scripts/invoke.sh "$(FN)" "$(or $(EVENT),events/$(FN).json)"

package: build ## zip each bootstrap for upload (dist/<function>.zip)
	@for f in $(FUNCTIONS); do (cd dist/$$f && rm -f ../$$f.zip && zip -q ../$$f.zip bootstrap) || exit 1; echo "dist/$$f.zip"; done

lint: ## gofmt -s, go vet, staticcheck, go mod tidy check
	@out=$$(find . -name '*.go' -not -path './.dev/*' -not -path './dist/*' -print0 | xargs -0 gofmt -s -l); if [ -n "$$out" ]; then echo "gofmt -s would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.6.1 ./...
	$(GO) mod tidy -diff

clean: ## remove build output (keeps .dev/mysql, the private database)
	rm -rf dist .dev/bin .aws-sam
