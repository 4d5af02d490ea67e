#!/usr/bin/env bash
# System libraries the pipeline needs: libfluidsynth (MIDI rendering) and libsndfile (FLAC I/O;
# the soundfile wheel bundles one, so only FluidSynth is checked here).
set -euo pipefail
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
if have_lib libfluidsynth.so; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing libfluidsynth3 with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends libfluidsynth3 >/dev/null
  have_lib libfluidsynth.so && exit 0
fi
cat >&2 <<'MSG'
libfluidsynth is missing and could not be installed automatically (needs root on Debian/Ubuntu).
Install it, then rerun:
  Debian/Ubuntu: sudo apt-get install libfluidsynth3
  Fedora:        sudo dnf install fluidsynth-libs
  macOS:         brew install fluid-synth
MSG
exit 1
