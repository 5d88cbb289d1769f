#!/usr/bin/env bash
#
# cleanup.sh - delete what setup.sh created: the resource group, with the Azure Databricks
# workspace in it (Azure then deletes the workspace's managed resource group, databricks-rg-...),
# and optionally the Databricks CLI profile. The lab's clean-up step. The bash twin of cleanup.ps1.
#
# Usage:
#   setup/cleanup.sh --resource-group NAME [--profile NAME] [--subscription ID] [--no-wait]
#                    [--dry-run] [--yes]
#
# Examples:
#   setup/cleanup.sh --resource-group msl-abc1234 --dry-run          # show what it would delete
#   setup/cleanup.sh --resource-group msl-abc1234 --profile penguins # asks, then deletes
#
# Outputs:
#   stdout  what was deleted; with --dry-run, one "DRY-RUN: <command>" line per change
#   stderr  progress, the prompt and errors
#   file    section [PROFILE] removed from ~/.databrickscfg ($DATABRICKS_CONFIG_FILE when set)
#
# It asks before deleting unless --yes is given, and refuses when there is nobody to ask (no
# answer on standard input). Deleting a group that is already gone is not an error.
#
# Exit status: 0 done (or nothing to do, or you answered no); 1 failed or not confirmed;
# 2 bad arguments.

set -euo pipefail

PROG=cleanup.sh
SETUP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=setup/lib.sh
source "$SETUP_DIR/lib.sh"

usage() {
    cat <<EOF
Usage: $PROG --resource-group NAME [options]

Delete the resource group that setup.sh created, with everything in it, and optionally the
Databricks CLI profile that points at its workspace.

Options:
  --resource-group NAME   resource group to delete (required; setup.sh prints it)
  --profile NAME          also remove this profile from the Databricks CLI config file
  --subscription ID       Azure subscription (default: the Azure CLI's default)
  --no-wait               return once Azure has started deleting (default: wait until done,
                          about 10 minutes)
  --dry-run               print each change instead of making it
  -y, --yes               do not ask for confirmation
  -h, --help              show this help

Example:
  $PROG --resource-group msl-abc1234 --profile penguins
EOF
}

parse_args() {
    RESOURCE_GROUP=""
    PROFILE=""
    SUBSCRIPTION=""
    WAIT=1
    DRY_RUN=0
    ASSUME_YES=0
    while (($#)); do
        if [[ $1 == --*=* ]]; then # --flag=value is --flag value
            set -- "${1%%=*}" "${1#*=}" "${@:2}"
        fi
        case $1 in
        --resource-group) need_value "$@" && RESOURCE_GROUP=$2 && shift ;;
        --profile) need_value "$@" && PROFILE=$2 && shift ;;
        --subscription) need_value "$@" && SUBSCRIPTION=$2 && shift ;;
        --no-wait) WAIT=0 ;;
        --dry-run) DRY_RUN=1 ;;
        -y | --yes) ASSUME_YES=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) usage_error "unknown option: $1" ;;
        esac
        shift
    done
    [[ -n $RESOURCE_GROUP ]] || usage_error "--resource-group is required"
    [[ $RESOURCE_GROUP =~ ^[-_.()A-Za-z0-9]{1,90}$ && $RESOURCE_GROUP != *. ]] ||
        usage_error "--resource-group: 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'"
    [[ -z $PROFILE || $PROFILE =~ ^[-_.A-Za-z0-9]+$ ]] || usage_error "--profile: letters, digits, '-', '_' or '.'"
    if [[ -n $SUBSCRIPTION ]]; then
        SUB_ARGS=(--subscription "$SUBSCRIPTION")
    fi
}

# confirm QUESTION: succeeds on y/yes; --yes answers for the user. With no answer on stdin
# (a pipeline, CI), it refuses rather than delete anything unasked.
confirm() {
    local answer
    ((ASSUME_YES)) && return 0
    printf '%s [y/N] ' "$1" >&2
    if ! read -r answer; then
        printf '\n' >&2
        die "no answer on standard input; not deleting anything (pass --yes to skip the question)"
    fi
    [[ -t 0 ]] || printf '%s\n' "$answer" >&2 # a terminal echoes the answer; a pipe does not
    [[ ${answer,,} == y || ${answer,,} == yes ]]
}

delete_resource_group() {
    local resources
    if ! resource_group_exists "$RESOURCE_GROUP"; then
        log "Resource group $RESOURCE_GROUP does not exist; nothing to delete in Azure."
        return 0
    fi
    resources=$(az_sub resource list --resource-group "$RESOURCE_GROUP" --query "[].[type, name]" -o tsv) ||
        die "could not list the resources in $RESOURCE_GROUP"
    log "Resource group $RESOURCE_GROUP holds:"
    if [[ -n $resources ]]; then
        log "  ${resources//$'\n'/$'\n'  }"
    else
        log "  (nothing)"
    fi
    if ((!DRY_RUN)) && ! confirm "Delete resource group $RESOURCE_GROUP and everything in it?"; then
        log "Nothing deleted."
        return 1
    fi
    local -a wait_args=()
    ((WAIT)) || wait_args=(--no-wait)
    mutate "$AZ" group delete --name "$RESOURCE_GROUP" --yes "${wait_args[@]}" "${SUB_ARGS[@]}" ||
        die "could not delete resource group $RESOURCE_GROUP"
    if ((!DRY_RUN)); then
        if ((WAIT)); then
            printf 'Deleted resource group %s.\n' "$RESOURCE_GROUP"
        else
            printf 'Deleting resource group %s in the background (about 10 minutes); check with: az group exists --name %s\n' \
                "$RESOURCE_GROUP" "$RESOURCE_GROUP"
        fi
    fi
}

remove_profile() {
    local file
    file=$(config_file)
    if ! profile_exists "$file" "$PROFILE"; then
        log "No profile [$PROFILE] in $file; nothing to remove."
    elif ((DRY_RUN)); then
        printf 'DRY-RUN: remove [%s] from %s\n' "$PROFILE" "$file"
    else
        edit_profile "$file" "$PROFILE"
        printf 'Removed profile [%s] from %s.\n' "$PROFILE" "$file"
    fi
}

main() {
    parse_args "$@"
    require_az
    ((DRY_RUN)) && log "Dry run: read-only queries only; changes are printed as DRY-RUN lines."
    # Answering no keeps the profile too: it still points at a live workspace.
    delete_resource_group || return 0
    if [[ -n $PROFILE ]]; then
        remove_profile
    fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
