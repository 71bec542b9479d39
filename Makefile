# Two entry points (see README Quickstart): `make demo` and `make test`.
# `setup` installs everything the project needs on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench bench-setup clean
NEO4J_LAUNCHER := tools/neo4j/target/kg-neo4j-launcher-1.jar

setup: $(STAMP) tools/cypherlint/node_modules/.installed $(NEO4J_LAUNCHER)
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (Debian package)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; }

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,local]'
	touch $(STAMP)

# Neo4j 5.26 Community and its launcher: Maven fetches the jars once (~120 MB, kept in
# ~/.m2 and copied to tools/neo4j/target/lib); later starts need no network.
$(NEO4J_LAUNCHER): tools/neo4j/pom.xml tools/neo4j/src/main/java/kg/neo4j/Launcher.java
	@command -v mvn >/dev/null || { \
	  echo "installing maven and a JDK 17 (Debian packages)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq maven openjdk-17-jdk-headless >/dev/null; }
	mvn -q -B -f tools/neo4j/pom.xml package
	touch $@

tools/cypherlint/node_modules/.installed: tools/cypherlint/package-lock.json
	npm ci --prefix tools/cypherlint --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(VENV)/bin/kg demo

test: setup
	$(PY) -m pytest -q

# The benchmarks' extras; bench.peer_mariadb's peer is Debian's MariaDB 10.11 server, and the
# `mariadb` connector in the bench extra builds against its C client (libmariadb-dev).
bench-setup: setup
	@command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || { \
	  echo "installing mariadb-server and libmariadb-dev (Debian packages)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mariadb-server libmariadb-dev >/dev/null; }
	$(PY) -m pip install -q -e '.[bench]'

bench: bench-setup
	$(PY) -m bench

clean:
	-$(VENV)/bin/kg down
	rm -rf $(VENV) .kg tools/cypherlint/node_modules tools/neo4j/target
