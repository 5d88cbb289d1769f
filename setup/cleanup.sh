#!/usr/bin/env bash
#
# cleanup.sh - delete what setup.sh made: first the bundle's deployment, when the CLI can reach
# the workspace (the lab volume and the model live in the Unity Catalog metastore and would outlive
# the resource group): the versions of your own development model, the one your deployment's state
# names (<catalog>.<schema>.dev_<you>_penguin_classifier; `bundle destroy` deletes a model with a
# plain delete, which fails while it has versions: databricks/cli#1848), the serving endpoint
# notebook 08 made for you (predict-penguin-<target>-<you>), then `databricks bundle destroy`;
# then the resource group with the workspace in it (Azure then deletes the workspace's managed
# group, databricks-rg-...).
#
# It deletes a group only when the group carries setup.sh's tag (created-by=penguin-classifier)
# and so does everything in it; otherwise it refuses and changes nothing, even with --yes. A group
# you named for setup.sh is yours: cleanup prints the command that deletes just the workspace.
#
# Usage: setup/cleanup.sh --resource-group NAME [options]
#   --resource-group NAME  the group setup.sh printed (required)
#   --subscription ID      Azure subscription (default: the Azure CLI's current one)
#   --target dev|scale     the bundle target setup.sh deployed (default: dev)
#   -y, --yes              do not ask before deleting
#   --dry-run              print every change it would make as a DRY-RUN line; make none
# Example: setup/cleanup.sh --subscription <id> --resource-group msl-1a2b3c4 --dry-run
#
# Exit status: 0 deleted; 1 the group not deleted (refused, not confirmed, or a step failed: the
# message says what it deleted in the workspace before); 2 bad arguments.

set -euo pipefail
PROG=cleanup.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=setup/lib.sh
source "$HERE/lib.sh"

parse_args() {
    RESOURCE_GROUP="" SUBSCRIPTION="" ASSUME_YES=0 TARGET=dev
    while (($#)); do
        case $1 in
        --resource-group) need_value "$@" && RESOURCE_GROUP=$2 && shift ;;
        --subscription) need_value "$@" && SUBSCRIPTION=$2 && shift ;;
        --target) need_value "$@" && TARGET=$2 && shift ;;
        -y | --yes) ASSUME_YES=1 ;;
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage && exit 0 ;;
        *) die "unknown option '$1' (see --help)" 2 ;;
        esac
        shift
    done
    [[ -n $RESOURCE_GROUP ]] || die "--resource-group is required (setup.sh printed it)" 2
    [[ $RESOURCE_GROUP =~ ^[-_.()A-Za-z0-9]{1,90}$ ]] || die "--resource-group: not a resource group name: '$RESOURCE_GROUP'" 2
    [[ $TARGET == dev || $TARGET == scale ]] || die "--target: dev or scale, not '$TARGET'" 2
}

# delete_model_versions: deletes the versions of the registered model that this user's deployment
# of TARGET made, as its state names it, and only when its name carries the development-mode
# prefix (dev_<you>_); any other model keeps its versions.
delete_model_versions() {
    local row model name listed versions version deleted=""
    command -v python3 >/dev/null || die "python3 is needed to read your deployment of $TARGET; nothing deleted"
    row=$(cd "$HERE/.." && dbx bundle summary -t "$TARGET" -o json | python3 -c '
import json, sys
summary = json.load(sys.stdin)
model = summary.get("resources", {}).get("registered_models", {}).get("penguin_classifier") or {}
endpoint = (summary.get("variables", {}).get("endpoint_name") or {}).get("value", "")
print(model.get("id", ""), model.get("name", ""), endpoint, sep="\n")') ||
        die "could not read your deployment of $TARGET (the error is above); nothing deleted"
    local -a fields
    mapfile -t fields <<<"$row"  # $(...) drops trailing empty lines: missing fields are empty
    model=${fields[0]:-} name=${fields[1]:-} ENDPOINT=${fields[2]:-}
    if [[ -z $model ]]; then
        log "Your deployment of $TARGET has no registered model: no model versions to delete."
        return
    elif [[ $name != dev_* || $model != *."$name" ]]; then
        log "Registered model $model is not your development model (${name:-no name}): its versions stay."
        return
    fi
    if ! listed=$(dbx model-versions list "$model" -o json) ||
        ! versions=$(python3 -c 'import json, sys; print(*sorted(int(v["version"]) for v in json.load(sys.stdin)))' <<<"$listed"); then
        log "Could not list the versions of $model (the error is above); destroying the bundle anyway."
        return
    fi
    [[ -n $versions ]] || { log "Registered model $model has no versions." && return; }
    log "Deleting versions ${versions// /, } of your registered model $model: bundle destroy cannot delete a model that has versions."
    for version in $versions; do
        if ((DRY_RUN)); then
            echo "DRY-RUN: $(words databricks model-versions delete "$model" "$version")  # in $HOST"
        else
            dbx model-versions delete "$model" "$version" ||
                die "could not delete version $version of $model (the error is above; deleted before it: ${deleted:-none}); nothing deleted in Azure"
            deleted+="${deleted:+, }$version"
        fi
    done
    ((DRY_RUN)) || echo "Deleted versions $deleted of registered model $model."
}

# delete_endpoint: deletes the serving endpoint that notebook 08 created for this user's deployment
# (the bundle's endpoint_name, predict-penguin-TARGET-<you>); the SDK made it, so `bundle destroy`
# does not know it. Any other name is left alone.
delete_endpoint() {
    if [[ -z ${ENDPOINT:-} ]]; then
        log "Your deployment of $TARGET names no serving endpoint: none to delete."
        return
    elif [[ $ENDPOINT != predict-penguin-"$TARGET"-* ]]; then
        log "Serving endpoint $ENDPOINT is not your development endpoint: it stays."
        return
    elif ! dbx serving-endpoints get "$ENDPOINT" >/dev/null 2>&1; then
        log "Serving endpoint $ENDPOINT does not exist: none to delete."
        return
    fi
    if ((DRY_RUN)); then
        echo "DRY-RUN: $(words databricks serving-endpoints delete "$ENDPOINT")  # in $HOST"
        return
    fi
    dbx serving-endpoints delete "$ENDPOINT" ||
        die "could not delete serving endpoint $ENDPOINT (the error is above); nothing deleted in Azure"
    echo "Deleted serving endpoint $ENDPOINT."
}

# destroy_bundle ID: `databricks bundle destroy -t TARGET` in the workspace with resource id ID, when
# the Databricks CLI can reach it.
destroy_bundle() {
    local url
    url=$(az resource show --ids "$1" --query properties.workspaceUrl -o tsv) || url=""
    HOST=https://$url WORKSPACE_ID=$1
    if [[ -z $url ]] || ! command -v databricks >/dev/null || ! dbx current-user me >/dev/null 2>&1; then
        log "The Databricks CLI cannot reach workspace ${1##*/}, so the bundle stays deployed: its lab volume and registered model will outlive the group, in the Unity Catalog metastore."
        return
    fi
    delete_model_versions
    delete_endpoint
    if ((DRY_RUN)); then
        echo "DRY-RUN: $(words databricks bundle destroy -t "$TARGET" --auto-approve)  # in $HOST"
        return
    fi
    log "Destroying your deployment of $TARGET in ${1##*/} first."
    (cd "$HERE/.." && dbx bundle destroy -t "$TARGET" --auto-approve) ||
        die "databricks bundle destroy failed (the error is above); nothing deleted in Azure: fix it, then run cleanup again"
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
            echo "To delete just workspace ${id##*/}: $(words az databricks workspace delete --resource-group "$RESOURCE_GROUP" --name "${id##*/}" --subscription "$SUBSCRIPTION")"
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
