# shellcheck shell=bash
#
# lib.sh - helpers shared by setup.sh and cleanup.sh. Sourced, never run on its own.
#
# The sourcing script sets PROG (its name, for messages) and defines usage().
# Conventions: progress and errors go to stderr; results and "DRY-RUN: <command>" lines go to
# stdout. Every command that changes something (in Azure or on disk) goes through mutate(), so
# --dry-run can print it instead; read-only queries call "$AZ" directly.

# The Azure CLI to call. Tests point it (or PATH) at a fake that answers with recorded output.
AZ=${AZ:-az}
# 1 in --dry-run: print changes instead of making them.
DRY_RUN=0
# "--subscription ID" once a subscription is chosen, so that no call depends on (or changes)
# the CLI's default subscription.
SUB_ARGS=()

log() { printf '%s\n' "$*" >&2; }

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

# Bad command line: one line saying what is wrong, then the usage, exit status 2.
usage_error() {
    printf '%s: %s\n' "$PROG" "$1" >&2
    usage >&2
    exit 2
}

# need_value OPTION [VALUE...]: fails unless OPTION is followed by a value.
need_value() {
    [[ $# -ge 2 && -n $2 && $2 != -* ]] || usage_error "$1 needs a value"
}

# mutate COMMAND [ARG...]: runs a command that changes something; in --dry-run prints it instead.
mutate() {
    if ((DRY_RUN)); then
        printf 'DRY-RUN:'
        printf ' %q' "$@"
        printf '\n'
    else
        log "+ $*"
        "$@"
    fi
}

# az_sub ARG...: a read-only az call against the chosen subscription.
az_sub() {
    "$AZ" "$@" "${SUB_ARGS[@]}"
}

require_az() {
    command -v "$AZ" >/dev/null 2>&1 ||
        die "the Azure CLI ('$AZ') is not on PATH: use Azure Cloud Shell or install it (https://learn.microsoft.com/cli/azure/install-azure-cli), then run 'az login'"
}

# resource_group_exists NAME: `az group exists` prints true or false.
resource_group_exists() {
    local answer
    answer=$(az_sub group exists --name "$1" -o tsv) || die "could not look up resource group $1"
    [[ ${answer,,} == true ]]
}

# The Databricks CLI config file; the CLI reads the same variable.
config_file() {
    printf '%s\n' "${DATABRICKS_CONFIG_FILE:-$HOME/.databrickscfg}"
}

# edit_profile FILE NAME [HOST]: with HOST, writes section [NAME] of the Databricks CLI config
# file as host + azure-cli auth (no token: the CLI gets one from `az login` each time); without
# HOST, removes the section. The section is rewritten where it stands and the other sections are
# kept as they were (blank lines at the end of the file are dropped), so running this twice gives
# the same file.
edit_profile() {
    local file=$1 name=$2 host=${3:-} input=/dev/null tmp
    if [[ -f $file ]]; then
        input=$file
    elif [[ -z $host ]]; then
        return 0
    fi
    mkdir -p "$(dirname "$file")"
    tmp=$(mktemp "$file.XXXXXX") # mode 600: the file may hold other profiles' tokens
    awk -v section="[$name]" -v host="$host" '
        # Blank lines wait in "blanks" until a line follows them, so none pile up or trail.
        function out(line) {
            while (blanks > 0) { print ""; blanks-- }
            print line
            printed = 1
        }
        function emit() {
            out(section)
            out("host      = " host)
            out("auth_type = azure-cli")
        }
        /^[ \t]*\[/ {
            header = $0
            gsub(/[ \t]/, "", header)
            if (header == section) {
                if (!done && host != "") emit()
                done = 1
                skip = 1
                next
            }
            if (skip && host != "") blanks = 1
            skip = 0
        }
        skip { next }
        /^[ \t]*$/ { blanks++; next }
        { out($0) }
        END {
            if (!done && host != "") {
                blanks = printed ? 1 : 0
                emit()
            }
        }
    ' "$input" >"$tmp"
    mv -f "$tmp" "$file"
}

# profile_exists FILE NAME: whether the config file has section [NAME].
profile_exists() {
    [[ -f $1 ]] || return 1
    awk -v section="[$2]" '
        { header = $0; gsub(/[ \t]/, "", header) }
        header == section { found = 1 }
        END { exit !found }
    ' "$1"
}
