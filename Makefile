.PHONY: test build bench

# make test is the one test command (see scripts/test).
test:
	./scripts/test

build:
	go build ./...

bench:
	go test -run='^$$' -bench=. -benchmem ./internal/text/
