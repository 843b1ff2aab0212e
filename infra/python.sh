#!/usr/bin/env bash
# Prints the Python the virtual environment is made with (the Makefile's PYTHON): the
# operating system's own CPython when it is 3.11 or later and can make a venv, else
# the first python3 on the PATH. Debian builds its CPython with profile-guided and
# link-time optimisation; a CPython built from source without them (pyenv's default)
# served the API's approvals about 12 % slower here (ADR 0013).
for candidate in /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' \
            >/dev/null 2>&1; then
        echo "$candidate"
        exit 0
    fi
done
echo python3
