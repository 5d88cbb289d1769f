#!/usr/bin/env bash
#
# cleanup.sh - delete what setup.sh made: first the bundle's deployment (`databricks bundle
# destroy`, when the CLI can reach the workspace: the lab volume lives in the Unity Catalog
# metastore and would outlive the resource group), then the resource group with the workspace in
# it (Azure then deletes the workspace's managed group, databricks-rg-...).
#
# It deletes a group only when the group carries setup.sh's tag (created-by=penguin-classifier)
# and so does everything in it; otherwise it refuses and changes nothing, even with --yes. A group
# you named for setup.sh is yours: cleanup prints the command that deletes just the workspace.
#
# Usage: setup/cleanup.sh --resource-group NAME [options]
#   --resource-group NAME  the group setup.sh printed (required)
#   --subscription ID      Azure subscription (default: the Azure CLI's current one)
#   -y, --yes              do not ask before deleting
#   --dry-run              print every change it would make as a DRY-RUN line; make none
# Example: setup/cleanup.sh --subscription <id> --resource-group msl-1a2b3c4 --dry-run
#
# Exit status: 0 deleted; 1 nothing deleted (refused, not confirmed, or failed); 2 bad arguments.

set -euo pipefail
PROG=cleanup.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=setup/lib.sh
source "$HERE/lib.sh"

parse_args() {
    RESOURCE_GROUP="" SUBSCRIPTION="" ASSUME_YES=0
    while (($#)); do
        case $1 in
        --resource-group) need_value "$@" && RESOURCE_GROUP=$2 && shift ;;
        --subscription) need_value "$@" && SUBSCRIPTION=$2 && shift ;;
        -y | --yes) ASSUME_YES=1 ;;
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage && exit 0 ;;
        *) die "unknown option '$1' (see --help)" 2 ;;
        esac
        shift
    done
    [[ -n $RESOURCE_GROUP ]] || die "--resource-group is required (setup.sh printed it)" 2
    [[ $RESOURCE_GROUP =~ ^[-_.()A-Za-z0-9]{1,90}$ ]] || die "--resource-group: not a resource group name: '$RESOURCE_GROUP'" 2
}

# destroy_bundle ID: `databricks bundle destroy -t dev` in the workspace with resource id ID, when
# the Databricks CLI can reach it.
destroy_bundle() {
    local url
    url=$(az resource show --ids "$1" --query properties.workspaceUrl -o tsv) || url=""
    HOST=https://$url WORKSPACE_ID=$1
    if [[ -z $url ]] || ! command -v databricks >/dev/null || ! dbx current-user me >/dev/null 2>&1; then
        log "The Databricks CLI cannot reach workspace ${1##*/}, so the bundle stays deployed: its lab volume will outlive the group, in the Unity Catalog metastore."
        return
    fi
    if ((DRY_RUN)); then
        echo "DRY-RUN: databricks bundle destroy -t dev --auto-approve  # in $HOST"
        return
    fi
    log "Destroying the bundle's deployment in ${1##*/} first."
    (cd "$HERE/.." && dbx bundle destroy -t dev --auto-approve) ||
        die "databricks bundle destroy failed (the error is above); nothing deleted in Azure"
}

main() {
    parse_args "$@"
    use_subscription "$SUBSCRIPTION"
    ((DRY_RUN)) && log "Dry run: read-only queries only; every change is printed as a DRY-RUN line."
    local tag rows type name resource_tag id answer
    local -a found=() foreign=() workspaces=()
    tag=$(az group show --name "$RESOURCE_GROUP" "${SUB[@]}" --query "tags.\"$TAG_KEY\"" -o tsv) ||
        die "cannot see resource group $RESOURCE_GROUP in subscription $SUBSCRIPTION; nothing changed"
    rows=$(az resource list --resource-group "$RESOURCE_GROUP" "${SUB[@]}" \
        --query "[].[type, name, tags.\"$TAG_KEY\", id]" -o tsv) ||
        die "could not list the resources in $RESOURCE_GROUP; nothing changed"
    while IFS=$'\t' read -r type name resource_tag id; do
        [[ -n $type ]] || continue
        found+=("$name ($type)")
        if [[ $resource_tag != "$TAG_VALUE" ]]; then
            foreign+=("$name ($type)")
        elif [[ ${type,,} == microsoft.databricks/workspaces ]]; then
            workspaces+=("$id")
        fi
    done <<<"$rows"
    if [[ $tag != "$TAG_VALUE" ]]; then
        log "$PROG: resource group $RESOURCE_GROUP has no tag $TAG_KEY=$TAG_VALUE: setup.sh did not make it, so it stays; it holds: ${found[*]:-nothing}"
        for id in "${workspaces[@]}"; do
            echo "To delete just workspace ${id##*/}: az databricks workspace delete --resource-group $RESOURCE_GROUP --name ${id##*/} --subscription $SUBSCRIPTION"
        done
        exit 1
    fi
    ((${#foreign[@]} == 0)) ||
        die "resource group $RESOURCE_GROUP holds what setup.sh did not make: ${foreign[*]}; nothing deleted"
    if ((!ASSUME_YES && !DRY_RUN)); then
        read -r -p "Delete resource group $RESOURCE_GROUP (${found[*]:-empty}) in subscription $SUBSCRIPTION? [y/N] " answer ||
            die "no answer on standard input; nothing deleted (pass --yes to skip the question)"
        [[ ${answer,,} == y || ${answer,,} == yes ]] || die "nothing deleted"
    fi
    for id in "${workspaces[@]}"; do
        destroy_bundle "$id"
    done
    change az group delete --name "$RESOURCE_GROUP" --yes "${SUB[@]}" || die "could not delete resource group $RESOURCE_GROUP"
    ((DRY_RUN)) || echo "Deleted resource group $RESOURCE_GROUP (subscription $SUBSCRIPTION)."
}

main "$@"
