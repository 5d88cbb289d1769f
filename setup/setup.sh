#!/usr/bin/env bash
#
# setup.sh - create (or reuse) an Azure Databricks workspace for the penguin classifier, point the
# Databricks CLI at it and deploy the bundle. Runs in Azure Cloud Shell (setup.ps1 runs it from
# PowerShell), or in bash 4.4+ on Linux or macOS with the Azure CLI signed in (`az login`).
#
# Usage: setup/setup.sh [options]
#   --subscription ID      Azure subscription (default: the Azure CLI's current one)
#   --region REGION        only this region (default: the lab's regions, from a random start)
#   --resource-group NAME  group to create or reuse (default: the one setup.sh made before,
#                          else msl-<random>)
#   --profile NAME         Databricks CLI profile to write (default: penguins)
#   --target dev|scale     bundle target to deploy (default: dev); scale runs the distribute
#                          stage on worker nodes
#   --num-workers N        scale's worker nodes, 1 to 99 (default: 2, databricks.yml's)
#   --no-deploy            stop after writing the profile
#   --dry-run              print every change it would make as a DRY-RUN line; make none
# Example: setup/setup.sh --dry-run
#
# It checks the tools (az signed in; Databricks CLI 0.236+ unless --no-deploy), registers missing
# resource providers, picks a region with the free vCPUs the target's clusters need for
# Standard_D4ds_v5 (4 a node; dev 8, scale 4 x (2 + N)), creates or reuses the group and premium
# workspace (tagged created-by=penguin-classifier), writes profile [penguins] (host, auth_type =
# azure-cli, the workspace's resource id; never a token) and deploys the bundle with the
# workspace's default catalog. Every command it prints is shell-quoted. Exit status: 0 done; 1 a
# step failed; 2 bad arguments, a missing tool or an unknown region.

set -euo pipefail
PROG=setup.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=setup/lib.sh
source "$HERE/lib.sh"

# The lab's regions. Without --region they are tried from a random start, so a class spreads out.
REGIONS=(eastus eastus2 westus centralus northcentralus northeurope westeurope uksouth)
PROVIDERS=(Microsoft.Databricks Microsoft.Compute Microsoft.Storage Microsoft.Network)
# databricks.yml's node type, 4 vCPUs a node, counted in the family's quota and the region's.
NODE_TYPE=Standard_D4ds_v5 FAMILY=standardDDSv5Family NODE_VCPUS=4
CLI_MINOR=236 # Databricks CLI 0.236.0: the first that deploys bundles with volumes

parse_args() {
    SUBSCRIPTION="" REGION="" RESOURCE_GROUP="" PROFILE=penguins DEPLOY=1 TARGET=dev NUM_WORKERS=""
    while (($#)); do
        case $1 in
        --subscription) need_value "$@" && SUBSCRIPTION=$2 && shift ;;
        --region) need_value "$@" && REGION=$2 && shift ;;
        --resource-group) need_value "$@" && RESOURCE_GROUP=$2 && shift ;;
        --profile) need_value "$@" && PROFILE=$2 && shift ;;
        --target) need_value "$@" && TARGET=$2 && shift ;;
        --num-workers) need_value "$@" && NUM_WORKERS=$2 && shift ;;
        --no-deploy) DEPLOY=0 ;;
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage && exit 0 ;;
        *) die "unknown option '$1' (see --help)" 2 ;;
        esac
        shift
    done
    # Names end up in JMESPath queries and Azure requests: accept only what Azure accepts.
    [[ $REGION =~ ^[a-z0-9]*$ ]] || die "--region: a name such as westeurope, not '$REGION'" 2
    [[ -z $RESOURCE_GROUP || $RESOURCE_GROUP =~ ^[-_.()A-Za-z0-9]{0,89}[-_()A-Za-z0-9]$ ]] ||
        die "--resource-group: up to 90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'" 2
    [[ $PROFILE =~ ^[-_.A-Za-z0-9]+$ ]] || die "--profile: letters, digits, '-', '_' or '.'" 2
    # The nodes the target's clusters may hold at once (dev: the interactive cluster, started on
    # deploy, and the job's, on `bundle run`; scale: the job's single node, and its distribute
    # cluster's driver and workers), and the options that choose it again.
    TARGET_OPTS=() VARS=()
    case $TARGET in
    dev)
        [[ -z $NUM_WORKERS ]] || die "--num-workers: only for --target scale" 2
        NODES=2 WHY="the interactive cluster and the job's, one node each"
        ;;
    scale)
        NUM_WORKERS=${NUM_WORKERS:-2}
        [[ $NUM_WORKERS =~ ^[1-9][0-9]?$ ]] || die "--num-workers: a whole number from 1 to 99, not '$NUM_WORKERS'" 2
        NODES=$((2 + NUM_WORKERS)) WHY="the job's single node and the distribute cluster's driver, plus num_workers=$NUM_WORKERS"
        TARGET_OPTS=(--target scale --num-workers "$NUM_WORKERS") VARS=(--var "num_workers=$NUM_WORKERS")
        ;;
    *) die "--target: dev or scale (prod is deployed by hand, see README), not '$TARGET'" 2 ;;
    esac
    VCPUS=$((NODES * NODE_VCPUS))
}

check_tools() {
    command -v python3 >/dev/null || die "python3 is needed to write the Databricks CLI profile" 2
    if ((DEPLOY)); then
        local version
        version=$(databricks --version 2>/dev/null) ||
            die "the Databricks CLI is not installed: https://docs.databricks.com/dev-tools/cli/install.html (or pass --no-deploy)" 2
        if ! [[ $version =~ v([0-9]+)\.([0-9]+)\. ]] || ((BASH_REMATCH[1] == 0 && BASH_REMATCH[2] < CLI_MINOR)); then
            die "$version is too old: bundles with volumes need Databricks CLI 0.$CLI_MINOR.0 or later" 2
        fi
    fi
}

register_providers() {
    local namespace state
    for namespace in "${PROVIDERS[@]}"; do
        state=$(az provider show --namespace "$namespace" "${SUB[@]}" --query registrationState -o tsv) ||
            die "could not look up resource provider $namespace"
        [[ $state == Registered ]] && continue
        log "$namespace is $state; registering it (a minute or two)."
        change az provider register --namespace "$namespace" --wait "${SUB[@]}" || die "could not register $namespace"
    done
}

# Sets RESOURCE_GROUP, GROUP_EXISTS, and WORKSPACE when there is one to reuse.
find_existing() {
    local found
    GROUP_EXISTS=0 WORKSPACE=""
    if [[ -n $RESOURCE_GROUP ]]; then
        found=$(az group exists --name "$RESOURCE_GROUP" "${SUB[@]}" -o tsv) || die "could not look up $RESOURCE_GROUP"
        [[ ${found,,} == true ]] && GROUP_EXISTS=1
    else
        found=$(az group list "${SUB[@]}" --query "[?tags.\"$TAG_KEY\"=='$TAG_VALUE'].name" -o tsv) ||
            die "could not list the resource groups"
        [[ $found != *$'\n'* ]] ||
            die "setup.sh made several resource groups (${found//$'\n'/, }): choose one with --resource-group" 2
        RESOURCE_GROUP=${found:-msl-$(printf '%04x%03x' "$RANDOM" "$((RANDOM % 4096))")}
        [[ -n $found ]] && GROUP_EXISTS=1 && log "Reusing resource group $RESOURCE_GROUP, which setup.sh made."
    fi
    if ((GROUP_EXISTS)); then
        found=$(az databricks workspace list --resource-group "$RESOURCE_GROUP" "${SUB[@]}" --query "[].name" -o tsv) ||
            die "could not list the workspaces in $RESOURCE_GROUP"
        WORKSPACE=${found%%$'\n'*}
        [[ -z $WORKSPACE ]] || log "Reusing workspace $WORKSPACE in $RESOURCE_GROUP."
    fi
}

# region_fits REGION: NODE_TYPE is offered there without a region-wide restriction, and VCPUS are
# free in both its family's quota and the region's total ("cores").
region_fits() {
    local region=$1 restricted rows name used limit free=-1
    # --all: without it az hides the sizes restricted for this subscription.
    restricted=$(az vm list-skus --location "$region" --size "$NODE_TYPE" --all --resource-type virtualMachines \
        "${SUB[@]}" --query "[?name=='$NODE_TYPE'].length(restrictions[?type=='Location'])" -o tsv) || restricted="?"
    case $restricted in
    0) ;;
    "" | "?") log "$region: $NODE_TYPE is not offered${restricted:+ (or az failed)}; skipping." && return 1 ;;
    *) log "$region: $NODE_TYPE is restricted for this subscription; skipping." && return 1 ;;
    esac
    rows=$(az vm list-usage --location "$region" "${SUB[@]}" -o tsv \
        --query "[?name.value=='$FAMILY' || name.value=='cores'].[name.value, currentValue, limit]") || rows=""
    [[ $rows == *"$FAMILY"* ]] || free=0 # no quota row for the family: nothing free
    while IFS=$'\t' read -r name used limit; do
        if [[ -n $name ]] && ((free < 0 || limit - used < free)); then free=$((limit - used)); fi
    done <<<"$rows"
    log "$region: $free vCPUs free for $NODE_TYPE ($FAMILY and region total), $VCPUS needed."
    ((free >= VCPUS))
}

pick_region() {
    local -a candidates=("${REGIONS[@]}")
    [[ -z $REGION ]] || candidates=("$REGION")
    local n=${#candidates[@]} start=$RANDOM i
    for ((i = 0; i < n; i++)); do
        REGION=${candidates[(start + i) % n]}
        region_fits "$REGION" && return
    done
    die "no region of ${candidates[*]} has $VCPUS free vCPUs for $NODE_TYPE (target $TARGET: $NODES nodes of $NODE_VCPUS vCPUs, $WHY): try another --region, or ask for quota (https://learn.microsoft.com/azure/quotas/per-vm-quota-requests)"
}

create_workspace() {
    if ((!GROUP_EXISTS)); then
        change az group create --name "$RESOURCE_GROUP" --location "$REGION" --tags "$TAG_KEY=$TAG_VALUE" \
            "${SUB[@]}" -o none || die "could not create resource group $RESOURCE_GROUP"
    fi
    log "Creating premium workspace $WORKSPACE in $REGION (a few minutes)."
    change az databricks workspace create --name "$WORKSPACE" --resource-group "$RESOURCE_GROUP" \
        --location "$REGION" --sku premium --tags "$TAG_KEY=$TAG_VALUE" "${SUB[@]}" -o none ||
        die "creating workspace $WORKSPACE failed (Azure's error is above); it leaves resource group $RESOURCE_GROUP behind: $(cleanup_command)"
}

# Waits until the workspace's provisioningState is Succeeded; sets HOST and WORKSPACE_ID.
wait_for_workspace() {
    local -a workspace=(--resource-group "$RESOURCE_GROUP" --name "$WORKSPACE" "${SUB[@]}")
    local state url
    log "Waiting until workspace $WORKSPACE is provisioned."
    az databricks workspace wait --created "${workspace[@]}" || true # the state below says why
    IFS=$'\t' read -r state url WORKSPACE_ID < <(az databricks workspace show "${workspace[@]}" \
        --query "[[provisioningState, workspaceUrl, id]]" -o tsv)
    [[ $state == Succeeded ]] ||
        die "workspace $WORKSPACE is ${state:-unreadable}, not Succeeded; resource group $RESOURCE_GROUP is left behind: $(cleanup_command)"
    HOST=https://$url
}

# Section [PROFILE] of the Databricks CLI config, replaced whole: never a token. configparser
# keeps the other sections (not the file's comments).
write_profile() {
    local file=${DATABRICKS_CONFIG_FILE:-$HOME/.databrickscfg}
    if ((DRY_RUN)); then
        echo "DRY-RUN: write [$PROFILE] to $file: host = $HOST, auth_type = azure-cli, azure_workspace_resource_id = $WORKSPACE_ID"
        return
    fi
    log "Writing profile [$PROFILE] to $file."
    python3 - "$file" "$PROFILE" "$HOST" "$WORKSPACE_ID" <<'EOF'
import configparser, os, sys
path, name, host, resource_id = sys.argv[1:]
config = configparser.ConfigParser(interpolation=None, strict=False)
config.read(path)
config[name] = {"host": host, "auth_type": "azure-cli", "azure_workspace_resource_id": resource_id}
with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
    config.write(out)
EOF
}

# Deploys with the workspace's default catalog: a new Azure workspace is enabled for Unity Catalog
# with a workspace catalog named after it, and `main` may not exist. Sets CATALOG.
deploy() {
    local json catalog
    if [[ -n $NEW ]] && ((DRY_RUN)); then
        catalog="<default catalog of $WORKSPACE>"
    else
        json=$(dbx metastores current -o json) ||
            die "could not read the default catalog of $WORKSPACE (the error is above); try again soon: $(rerun_command)"
        CATALOG=$(python3 -c 'import json, sys; print(json.load(sys.stdin).get("default_catalog_name", ""))' <<<"$json")
        [[ -n $CATALOG && $CATALOG != hive_metastore ]] ||
            die "workspace $WORKSPACE has no Unity Catalog default catalog: deploy with --var catalog=<a catalog you can write to>"
        catalog=$CATALOG
    fi
    log "Deploying the bundle's target $TARGET to $WORKSPACE, catalog $catalog."
    (cd "$HERE/.." && change env "DATABRICKS_CONFIG_PROFILE=$PROFILE" \
        databricks bundle deploy -t "$TARGET" --var "catalog=$catalog" "${VARS[@]}") ||
        die "the bundle deploy failed (the error is above); the workspace and profile are ready: fix it, then deploy as below"
}

# The commands printed for later, shell-quoted; <catalog> stands for a catalog not read yet.
deploy_command() {
    if [[ -n $CATALOG ]]; then
        words databricks bundle deploy -t "$TARGET" --var "catalog=$CATALOG" "${VARS[@]}"
    else
        echo "$(words databricks bundle deploy -t "$TARGET") --var catalog=<catalog>${VARS[*]:+ $(words "${VARS[@]}")}"
    fi
}
rerun_command() { words setup/setup.sh --subscription "$SUBSCRIPTION" --resource-group "$RESOURCE_GROUP" "${TARGET_OPTS[@]}"; }
cleanup_command() { words setup/cleanup.sh --subscription "$SUBSCRIPTION" --resource-group "$RESOURCE_GROUP" "${TARGET_OPTS[@]:0:2}"; }

main() {
    parse_args "$@"
    check_tools
    ((DRY_RUN)) && log "Dry run: read-only queries only; every change is printed as a DRY-RUN line."
    use_subscription "$SUBSCRIPTION"
    # `az databricks` is an Azure CLI extension. Adding it changes only this az, and the read-only
    # lookups need it, so it is added in --dry-run too.
    az extension show --name databricks >/dev/null 2>&1 || az extension add --name databricks --only-show-errors
    if [[ -n $REGION && $(az account list-locations --query "[?name=='$REGION'].name" -o tsv) != "$REGION" ]]; then
        die "unknown region '$REGION' ('az account list-locations -o table' lists them)" 2
    fi
    register_providers
    find_existing
    NEW="" CATALOG=""
    if [[ -z $WORKSPACE ]]; then
        NEW=1 WORKSPACE=databricks-${RESOURCE_GROUP#msl-}
        WORKSPACE=${WORKSPACE//[^-_A-Za-z0-9]/-} && WORKSPACE=${WORKSPACE:0:64}
        pick_region
        create_workspace
    fi
    if [[ -n $NEW ]] && ((DRY_RUN)); then
        HOST="https://<URL of $WORKSPACE>" WORKSPACE_ID="<resource id of $WORKSPACE>"
    else
        wait_for_workspace
    fi
    write_profile
    ((!DEPLOY)) || deploy
    cat <<EOF

Workspace $WORKSPACE ($HOST), resource group $RESOURCE_GROUP, subscription $SUBSCRIPTION.
Databricks CLI profile [$PROFILE]: signs in through az, for that workspace and subscription.
From the repository root:
  export $(words "DATABRICKS_CONFIG_PROFILE=$PROFILE")
  $(deploy_command)
  $(words databricks bundle run penguin_training -t "$TARGET")
Run setup again, reusing all of it:  $(rerun_command)
Delete it all when you are done:     $(cleanup_command)
EOF
}

main "$@"
