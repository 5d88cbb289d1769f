# shellcheck shell=bash disable=SC2034 # TAG_*, SUB: used by the scripts that source this file
# lib.sh - what setup.sh and cleanup.sh share. Sourced, never run; the sourcing script sets PROG.

# bash 4.4: the first where "${empty_array[@]}" is no error under `set -u`.
if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 404)); then
    echo "$PROG needs bash 4.4 or later, not $BASH_VERSION (macOS: brew install bash)" >&2
    exit 2
fi

# Every resource group and workspace setup.sh creates carries this tag; cleanup.sh deletes only
# a group that carries it and holds nothing without it.
TAG_KEY=created-by TAG_VALUE=penguin-classifier
DRY_RUN=0

log() { printf '%s\n' "$*" >&2; }
die() { log "$PROG: $1" && exit "${2:-1}"; } # die MESSAGE [STATUS]: one line, exit 1 or STATUS
need_value() { [[ $# -ge 2 && -n $2 && $2 != -* ]] || die "$1 needs a value (see --help)" 2; }
# The script's help is its header comment, down to the first blank line.
usage() { sed -n '3,/^$/{s/^# \{0,1\}//;p;}' "$0"; }

# words ARG...: the arguments as one shell-quoted command line (printf %q), so a value with
# spaces or shell characters in a printed command can neither break it nor run anything.
words() {
    local line=""
    (($# == 0)) || printf -v line ' %q' "$@"
    printf '%s\n' "${line# }"
}

# change COMMAND...: runs a command that changes something; with --dry-run, prints it instead.
change() {
    if ((DRY_RUN)); then
        printf 'DRY-RUN: %s\n' "$(words "$@")"
    else
        log "+ $(words "$@")" && "$@"
    fi
}

# use_subscription [ID]: checks that az is there and signed in; sets SUBSCRIPTION (the one given,
# else the Azure CLI's current one) and SUB, which every later az call passes.
use_subscription() {
    command -v az >/dev/null ||
        die "the Azure CLI (az) is not installed: use Azure Cloud Shell or https://learn.microsoft.com/cli/azure/install-azure-cli" 2
    local -a given=()
    [[ -z $1 ]] || given=(--subscription "$1")
    local row name
    row=$(az account show "${given[@]}" --query "[[id, name]]" -o tsv) ||
        die "az cannot use subscription '${1:-(current)}': run 'az login', or check --subscription" 2
    IFS=$'\t' read -r SUBSCRIPTION name <<<"$row"
    SUB=(--subscription "$SUBSCRIPTION")
    log "Subscription: $name ($SUBSCRIPTION)."
}

# dbx ARG...: the Databricks CLI against workspace HOST (resource id WORKSPACE_ID), signed in
# through the Azure CLI, whatever DATABRICKS_CONFIG_PROFILE this shell has set.
dbx() {
    env -u DATABRICKS_CONFIG_PROFILE DATABRICKS_HOST="$HOST" DATABRICKS_AUTH_TYPE=azure-cli \
        DATABRICKS_AZURE_RESOURCE_ID="$WORKSPACE_ID" databricks "$@"
}
