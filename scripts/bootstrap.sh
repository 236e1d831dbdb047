#!/usr/bin/env bash
# Set up everything the README's commands need, idempotently:
#   1. Debian packages (ffmpeg, postgresql, espeak-ng, chromium, pocketsphinx-testdata) when missing and running
#      as root;
#   2. a virtual environment in .venv with the pinned Python packages.
# A second run with nothing changed returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VIDEOBERT_VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)   # METEOR in pycocoevalcap
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)   # spoken audio for the demo and the whisper tests
[[ -x /usr/bin/chromium ]] || missing+=(chromium)   # the browser the Prefect UI test drives (Playwright, tests/ui/)
# LibriVox utterances with reference transcripts: real speech for the whisper test and bench
[[ -f /usr/share/pocketsphinx/test/data/librivox/transcription ]] || missing+=(pocketsphinx-testdata)
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        log "missing system packages: ${missing[*]} (not root, or no apt-get): install them, then re-run"
        exit 1
    fi
fi

# --- Python environment ----------------------------------------------------------------------
stamp="$VENV/.videobert-installed"
want=$(cat pyproject.toml constraints.txt scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip's own exit status is kept; only the noise about this machine's unused local index is dropped.
pip_install() { "$VENV/bin/python" -m pip install -q "$@" 2> >(grep -v "is ignored" >&2); }
pip_install --upgrade "pip>=25"
# torch first, alone: a CPU build lies on local disk; asked for through another package's range
# pip could otherwise pick a multi-GB CUDA build.
log "installing torch (CPU build)"
pip_install "torch==$(sed -n 's/^torch==//p' constraints.txt)"
log "installing the project and its pinned dependencies (a few minutes the first time)"
pip_install -c constraints.txt -e ".[dev]"
"$VENV/bin/python" -c "import videobert, torch, tensorflow_hub, prefect" 2>/dev/null \
    || { log "the environment did not install cleanly; see pip's output above"; exit 1; }
echo "$want" > "$stamp"
log "environment ready: $VENV"
