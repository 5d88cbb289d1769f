#!/usr/bin/env bash
# Build and install Horovod 0.28.1 (PyTorch + Gloo, no MPI) into the given virtualenv.
#
# Usage:   scripts/install_horovod.sh [VENV]        (default: .venv)
# Needs:   torch already installed in VENV, g++ (C++17); cmake (taken from PyPI if missing).
# Why:     Horovod's last release compiles with -std=c++14, but torch >= 2.1 headers need C++17.
#          A small CXX wrapper swaps the flag. The first build takes about 10 minutes on 2 cores;
#          pip caches the built wheel, so later installs take seconds.
# Databricks Runtime ML up to 15.4 LTS already ships Horovod: this script is for local use.
set -euo pipefail

venv="${1:-.venv}"
python="$venv/bin/python"

if "$python" -c "import horovod.torch" 2>/dev/null; then
    echo "horovod: already installed in $venv"
    exit 0
fi

# Horovod's build runs cmake; take it from PyPI when the machine has none.
venv_bin="$(cd "$venv/bin" && pwd)"
export PATH="$venv_bin:$PATH"
if ! command -v cmake >/dev/null 2>&1; then
    "$python" -m pip install -q "cmake<4"
fi
if ! command -v g++ >/dev/null 2>&1; then
    echo "horovod: g++ not found; install a C++17 compiler (Debian/Ubuntu: apt-get install g++)" >&2
    exit 1
fi

wrapper_dir="$(mktemp -d)"
trap 'rm -rf "$wrapper_dir"' EXIT
cat >"$wrapper_dir/cxx17" <<'WRAP'
#!/usr/bin/env bash
args=()
for a in "$@"; do
    case "$a" in
        -std=c++14 | -std=c++11) args+=("-std=c++17") ;;
        *) args+=("$a") ;;
    esac
done
exec g++ "${args[@]}"
WRAP
chmod +x "$wrapper_dir/cxx17"

echo "horovod: building 0.28.1 for torch $("$python" -c 'import torch; print(torch.__version__)') (about 10 minutes the first time)"
CXX="$wrapper_dir/cxx17" \
    HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
    "$python" -m pip install --no-build-isolation -c constraints.txt horovod==0.28.1
"$python" -c "import horovod.torch; print('horovod: installed', horovod.__version__)"
