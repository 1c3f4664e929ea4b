#!/bin/sh
# The two commands of README.md:
#   ./run.sh demo   set up .venv, run the STS and the echo service under gunicorn,
#                   run the client against them, stop both
#   ./run.sh test   set up .venv, the programs the tests run for real and the Node
#                   interop tools (npm ci), then run the whole test suite (extra
#                   arguments go to pytest)
# Needs only python3 (3.11+) on Debian. What is missing is installed with apt-get
# when run as root: python3-venv (both commands) and, for test, xmlsec1,
# redis-server, slapd, ldap-utils, postgresql, opensaml-tools, opensaml-schemas,
# xmltooling-schemas, libxml2-utils, nodejs, npm, default-jdk-headless and
# libwss4j-java (WSS4J, for the P_SHA1 cross-check). Otherwise it prints the one
# apt-get command that installs everything missing. .ci/run installs the same list;
# tests/test_readme.py holds README.md, this file and .ci/run to one list.
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

say() { printf '%s\n' "$*" >&2; }

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian packages: $*"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        say "missing Debian packages: $* (run: sudo apt-get install $*)"
        exit 1
    fi
}

# Debian packages python3 -m venv needs, if .venv is still to be made (Debian ships
# ensurepip, and so venv's pip, in python3-venv): added to the one list asked for.
venv_missing() {
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "wstrust-wsgi needs Python 3.11 or newer as $PYTHON"
        exit 1
    fi
    [ -x .venv/bin/python ] || "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing="$missing python3-venv"
}

setup() {
    if [ ! -x .venv/bin/python ]; then
        if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
            rm -rf .venv
            apt_install python3-venv
            "$PYTHON" -m venv .venv
        fi
    fi
    stamp=".venv/.installed-$(cksum pyproject.toml | cut -d' ' -f1)"
    if [ ! -f "$stamp" ]; then
        say "installing wstrust-wsgi and its test tools into .venv ..."
        if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" >.venv/install.log 2>&1; then
            cat .venv/install.log >&2
            say "pip install failed (log above, also in .venv/install.log)"
            exit 1
        fi
        rm -f .venv/.installed-*
        touch "$stamp"
    fi
    # Byte-compile the package once: the tests start `python -m wstrust_wsgi` and gunicorn hundreds of
    # times, and where PYTHONDONTWRITEBYTECODE is set each start would compile every module again.
    .venv/bin/python -m compileall -q wstrust_wsgi demo_sts demo_service >/dev/null
}

case "${1:-}" in
    demo)
        missing=""
        venv_missing
        [ -z "$missing" ] || apt_install $missing
        setup
        exec .venv/bin/python -m demo_sts.roundtrip
        ;;
    test)
        shift
        # outside programs the tests run for real (each test starts its own instance)
        missing=""
        venv_missing
        command -v xmlsec1 >/dev/null 2>&1 || missing="$missing xmlsec1"
        command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
        [ -x /usr/sbin/slapd ] && command -v ldapwhoami >/dev/null 2>&1 || missing="$missing slapd ldap-utils"
        ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
        command -v samlsign >/dev/null 2>&1 || missing="$missing opensaml-tools"
        [ -f /usr/share/xml/opensaml/saml-schema-assertion-2.0.xsd ] || missing="$missing opensaml-schemas"
        [ -f /usr/share/xml/xmltooling/xmldsig-core-schema.xsd ] || missing="$missing xmltooling-schemas"
        command -v xmllint >/dev/null 2>&1 || missing="$missing libxml2-utils"
        command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
        command -v javac >/dev/null 2>&1 || missing="$missing default-jdk-headless"
        [ -f /usr/share/java/wss4j.jar ] || missing="$missing libwss4j-java"
        [ -z "$missing" ] || apt_install $missing
        # the Node clients and verifiers of the interop tests, at the versions package-lock.json pins
        if [ ! -f tests/interop/node/node_modules/.package-lock.json ] ||
           [ tests/interop/node/package-lock.json -nt tests/interop/node/node_modules/.package-lock.json ]; then
            say "installing the Node interop tools (npm ci) ..."
            (cd tests/interop/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        fi
        setup
        exec .venv/bin/python -m pytest "$@"
        ;;
    *)
        say "usage: ./run.sh demo | ./run.sh test [pytest options]"
        exit 2
        ;;
esac
