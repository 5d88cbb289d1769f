#!/usr/bin/env bash
#
# setup.sh - provision the Azure Databricks workspace for the penguin classifier and point the
# Databricks CLI at it. The bash twin of setup.ps1: run it in Azure Cloud Shell (Bash) or in any
# bash 4+ with the Azure CLI logged in (`az login`).
#
# Usage:
#   setup/setup.sh [--region REGION] [--resource-group NAME] [--workspace NAME]
#                  [--node-type VM_SIZE] [--nodes N] [--profile NAME] [--subscription ID]
#                  [--no-deploy] [--dry-run] [--yes]
#
# Examples:
#   setup/setup.sh --dry-run                       # show what it would do; change nothing
#   setup/setup.sh                                 # a random supported region with quota
#   setup/setup.sh --region westeurope             # only westeurope
#   setup/setup.sh --resource-group msl-abc1234    # run again: reuses the group and workspace
#
# What it does (the Microsoft Learn lab's setup script, then the steps the lab did by hand):
#   1. picks the subscription (asks when there are several and none is given)
#   2. registers the resource providers Azure Databricks needs
#   3. picks a region where the node type is offered without restriction and the subscription has
#      the vCPU quota for it (its VM family's and the region's total), trying others on failure
#   4. creates, or reuses, resource group msl-<suffix> and premium workspace databricks-<suffix>
#   5. writes profile [penguins] to ~/.databrickscfg: the workspace host and auth_type =
#      azure-cli, so the Databricks CLI signs in with your az login (no token is ever written)
#   6. deploys and runs the bundle when the databricks CLI is on PATH
#
# Outputs:
#   stdout  the resource group, workspace URL, CLI profile and the commands to deploy and run the
#           bundle; with --dry-run, one "DRY-RUN: <command>" line per change it would make
#   stderr  progress and errors
#   file    section [PROFILE] of ~/.databrickscfg ($DATABRICKS_CONFIG_FILE when set)
#
# Exit status: 0 done; 1 failed (no region with quota, an Azure error); 2 bad arguments.

set -euo pipefail

PROG=setup.sh
SETUP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$SETUP_DIR")
# shellcheck source=setup/lib.sh
source "$SETUP_DIR/lib.sh"

DATABRICKS=${DATABRICKS:-databricks}

# The regions the lab's setup script chooses from: Azure Databricks runs in all of them.
SUPPORTED_REGIONS=(centralus eastus eastus2 northcentralus northeurope westeurope westus uksouth)
# The lab registers the first three; a workspace also creates a virtual network.
PROVIDERS=(Microsoft.Databricks Microsoft.Compute Microsoft.Storage Microsoft.Network)
# The bundle job's node type (the lab's cluster: 4 vCPUs, 14 GB).
DEFAULT_NODE_TYPE=Standard_DS3_v2
# The bundle and job that the printed commands deploy and run.
BUNDLE_TARGET=dev
BUNDLE_JOB=penguin_training

usage() {
    cat <<EOF
Usage: $PROG [options]

Create (or reuse) an Azure Databricks workspace for the penguin classifier, write a Databricks CLI
profile for it, and deploy and run the bundle when the databricks CLI is installed.

Options:
  --region REGION         use this region only (default: a random one of
                          ${SUPPORTED_REGIONS[*]}
                          with quota, trying the others in turn)
  --resource-group NAME   resource group to create or reuse (default: msl-<random suffix>)
  --workspace NAME        workspace to create or reuse (default: the one already in the group,
                          else databricks-<suffix>)
  --node-type VM_SIZE     VM size the job's cluster uses, for the quota check
                          (default: $DEFAULT_NODE_TYPE)
  --nodes N               nodes in that cluster, driver included (default: 1, single node)
  --profile NAME          Databricks CLI profile to write (default: penguins)
  --subscription ID       Azure subscription (default: ask when there are several)
  --no-deploy             do not run the bundle commands, only print them
  --dry-run               print each change instead of making it; only read-only queries run
  -y, --yes               do not ask: use the default subscription when there are several
  -h, --help              show this help

Example:
  $PROG --region westeurope --dry-run
EOF
}

parse_args() {
    REGION=""
    RESOURCE_GROUP=""
    WORKSPACE=""
    NODE_TYPE=$DEFAULT_NODE_TYPE
    NODES=1
    PROFILE=penguins
    SUBSCRIPTION=""
    DEPLOY=1
    DRY_RUN=0
    ASSUME_YES=0
    while (($#)); do
        if [[ $1 == --*=* ]]; then # --flag=value is --flag value
            set -- "${1%%=*}" "${1#*=}" "${@:2}"
        fi
        case $1 in
        --region) need_value "$@" && REGION=$2 && shift ;;
        --resource-group) need_value "$@" && RESOURCE_GROUP=$2 && shift ;;
        --workspace) need_value "$@" && WORKSPACE=$2 && shift ;;
        --node-type) need_value "$@" && NODE_TYPE=$2 && shift ;;
        --nodes) need_value "$@" && NODES=$2 && shift ;;
        --profile) need_value "$@" && PROFILE=$2 && shift ;;
        --subscription) need_value "$@" && SUBSCRIPTION=$2 && shift ;;
        --no-deploy) DEPLOY=0 ;;
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
    # Names go into Azure requests and JMESPath queries: accept only what Azure accepts.
    [[ -z $REGION || $REGION =~ ^[a-z0-9]+$ ]] ||
        usage_error "--region must be a region name such as westeurope, not '$REGION'"
    [[ -z $RESOURCE_GROUP || $RESOURCE_GROUP =~ ^[-_.()A-Za-z0-9]{1,90}$ && $RESOURCE_GROUP != *. ]] ||
        usage_error "--resource-group: 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'"
    [[ -z $WORKSPACE || $WORKSPACE =~ ^[-_A-Za-z0-9]{3,64}$ ]] ||
        usage_error "--workspace: 3-64 letters, digits, '-' or '_'"
    [[ $NODE_TYPE =~ ^[A-Za-z0-9_]+$ ]] ||
        usage_error "--node-type must be a VM size such as $DEFAULT_NODE_TYPE, not '$NODE_TYPE'"
    [[ $NODES =~ ^[1-9][0-9]{0,2}$ ]] || usage_error "--nodes must be a whole number from 1 to 999"
    [[ $PROFILE =~ ^[-_.A-Za-z0-9]+$ ]] || usage_error "--profile: letters, digits, '-', '_' or '.'"
}

# Seven random lowercase letters and digits, like the lab's resource names (msl-<suffix>).
random_suffix() {
    local chars=abcdefghijklmnopqrstuvwxyz0123456789 suffix="" _
    for _ in 1 2 3 4 5 6 7; do
        suffix+=${chars:RANDOM%${#chars}:1}
    done
    printf '%s\n' "$suffix"
}

# The default workspace name for a resource group: databricks-<suffix> for msl-<suffix>.
default_workspace_name() {
    local name=${1#msl-}
    name=databricks-${name//[^-_A-Za-z0-9]/-}
    printf '%s\n' "${name:0:64}"
}

choose_subscription() {
    if [[ -n $SUBSCRIPTION ]]; then
        log "Using subscription $SUBSCRIPTION."
        SUB_ARGS=(--subscription "$SUBSCRIPTION")
        return
    fi
    local listing id name answer i
    local -a ids=() names=()
    listing=$("$AZ" account list --query "[?state=='Enabled'].[id, name]" -o tsv) ||
        die "could not list subscriptions: run 'az login' first"
    while IFS=$'\t' read -r id name; do
        [[ -n $id ]] && ids+=("$id") && names+=("$name")
    done <<<"$listing"
    if ((${#ids[@]} == 0)); then
        die "no enabled Azure subscription: run 'az login' first"
    elif ((${#ids[@]} == 1)); then
        SUBSCRIPTION=${ids[0]}
        log "Using subscription ${names[0]} ($SUBSCRIPTION)."
    elif ((ASSUME_YES)) || [[ ! -t 0 ]]; then
        SUBSCRIPTION=$("$AZ" account show --query id -o tsv) || die "could not read the default subscription"
        log "You have ${#ids[@]} subscriptions; using the default one, $SUBSCRIPTION (choose with --subscription)."
    else
        log "You have several Azure subscriptions; choose the one to use:"
        for i in "${!ids[@]}"; do
            log "  [$i] ${names[$i]} (${ids[$i]})"
        done
        while true; do
            printf 'Enter 0 to %d: ' $((${#ids[@]} - 1)) >&2
            read -r answer || die "no subscription chosen"
            if [[ $answer =~ ^[0-9]+$ ]] && ((10#$answer < ${#ids[@]})); then
                break
            fi
            log "Please enter a valid subscription number."
        done
        SUBSCRIPTION=${ids[10#$answer]}
    fi
    SUB_ARGS=(--subscription "$SUBSCRIPTION")
}

register_providers() {
    local namespace state
    for namespace in "${PROVIDERS[@]}"; do
        state=$(az_sub provider show --namespace "$namespace" --query registrationState -o tsv) ||
            die "could not look up resource provider $namespace"
        if [[ $state == Registered ]]; then
            log "$namespace: registered."
        else
            log "$namespace: $state; registering it (a minute or two)..."
            mutate "$AZ" provider register --namespace "$namespace" --wait "${SUB_ARGS[@]}"
        fi
    done
}

# The `az databricks` commands live in a CLI extension. Installing it changes only the local CLI,
# and the read-only workspace lookups need it, so this runs in --dry-run too.
ensure_databricks_extension() {
    if ! "$AZ" extension show --name databricks -o none >/dev/null 2>&1; then
        log "Adding the Azure CLI extension 'databricks'..."
        "$AZ" extension add --name databricks --only-show-errors
    fi
}

# JMESPath over `az vm list-skus`: one row per SKU of that exact name (`--size` matches by
# prefix: Standard_DS3_v2 also finds Standard_DS3_v2_Promo) with its VM family, its vCPUs, and
# how many restrictions bar it from the whole region for this subscription (type Location; a Zone
# restriction only rules out some availability zones). Rows, not one flat list: `-o tsv` prints
# a top-level list one item a line.
sku_query() {
    printf "[?name=='%s'].[family, capabilities[?name=='vCPUs'].value | [0], length(restrictions[?type=='Location'])]" "$1"
}

# JMESPath over `az vm list-usage`: used and limit for the VM family and for all vCPUs in the
# region ("cores"); a new VM needs room in both.
usage_query() {
    printf "[?name.value=='%s' || name.value=='cores'].[name.value, currentValue, limit]" "$1"
}

# free_vcpus REGION FAMILY: prints the vCPUs free for FAMILY in REGION, the smaller of the
# family's and the region's total; 0 when the subscription has no quota for the family.
free_vcpus() {
    local region=$1 family=$2 rows name used limit free="" seen=0
    rows=$(az_sub vm list-usage --location "$region" --query "$(usage_query "$family")" -o tsv) || return 1
    while IFS=$'\t' read -r name used limit; do
        [[ -n $name ]] || continue
        [[ $name == "$family" ]] && seen=1
        if [[ -z $free ]] || ((limit - used < free)); then
            free=$((limit - used))
        fi
    done <<<"$rows"
    ((seen)) || free=0
    printf '%s\n' "$free"
}

# region_fits REGION NODE_TYPE NODES: succeeds when REGION offers NODE_TYPE to this subscription
# without restriction and has the vCPU quota for NODES of them. Says on stderr why or why not.
region_fits() {
    local region=$1 node_type=$2 nodes=$3 sku family vcpus restricted free needed
    # --all: without it az hides the sizes restricted for this subscription, and we could not
    # tell "restricted" from "not offered".
    if ! sku=$(az_sub vm list-skus --location "$region" --size "$node_type" --all \
        --resource-type virtualMachines --query "$(sku_query "$node_type")" -o tsv); then
        log "$region: could not list VM sizes; skipping."
        return 1
    fi
    if [[ -z $sku ]]; then
        log "$region: $node_type is not offered; skipping."
        return 1
    fi
    IFS=$'\t' read -r family vcpus restricted <<<"$sku"
    if ((restricted > 0)); then
        log "$region: $node_type is restricted for this subscription; skipping."
        return 1
    fi
    needed=$((vcpus * nodes))
    if ! free=$(free_vcpus "$region" "$family"); then
        log "$region: could not read the vCPU quota; skipping."
        return 1
    fi
    if ((free < needed)); then
        log "$region: $free $family vCPUs free, $needed needed; skipping."
        return 1
    fi
    log "$region: $free $family vCPUs free, $needed needed."
}

# pick_region NODE_TYPE NODES REGION...: prints the first REGION that fits; fails when none does.
pick_region() {
    local node_type=$1 nodes=$2 region
    shift 2
    for region in "$@"; do
        if region_fits "$region" "$node_type" "$nodes"; then
            printf '%s\n' "$region"
            return 0
        fi
    done
    return 1
}

# The regions to try, in order: the one given, or the supported ones shuffled so that a class
# running the lab at once spreads over several regions (the lab's reason for picking at random).
candidate_regions() {
    if [[ -n $REGION ]]; then
        printf '%s\n' "$REGION"
    else
        printf '%s\n' "${SUPPORTED_REGIONS[@]}" | shuf
    fi
}

# Sets WORKSPACE to the workspace already in the resource group, if any; fails when there is none.
find_workspace() {
    local found
    if [[ -n $WORKSPACE ]]; then
        az_sub databricks workspace show --resource-group "$RESOURCE_GROUP" --name "$WORKSPACE" \
            --query name -o tsv >/dev/null 2>&1
        return
    fi
    found=$(az_sub databricks workspace list --resource-group "$RESOURCE_GROUP" --query "[0].name" -o tsv) ||
        die "could not list the workspaces in $RESOURCE_GROUP"
    [[ -n $found ]] && WORKSPACE=$found
}

# Creates the resource group (when missing) and the workspace in the first region that fits,
# moving on to the next region when creating the workspace fails (capacity runs out).
create_workspace() {
    local group_exists=$1 region
    local -a regions
    mapfile -t regions < <(candidate_regions)
    for region in "${regions[@]}"; do
        region_fits "$region" "$NODE_TYPE" "$NODES" || continue
        if ((!group_exists)); then
            log "Creating resource group $RESOURCE_GROUP in $region..."
            mutate "$AZ" group create --name "$RESOURCE_GROUP" --location "$region" "${SUB_ARGS[@]}" -o none ||
                die "could not create resource group $RESOURCE_GROUP"
            group_exists=1
        fi
        log "Creating premium workspace $WORKSPACE in $region (a few minutes)..."
        if mutate "$AZ" databricks workspace create --name "$WORKSPACE" --resource-group "$RESOURCE_GROUP" \
            --location "$region" --sku premium "${SUB_ARGS[@]}" -o none; then
            WORKSPACE_REGION=$region
            return 0
        fi
        log "$region: creating the workspace failed; trying the next region."
    done
    if [[ -n $REGION ]]; then
        die "$REGION cannot host $NODES x $NODE_TYPE: pick another --region, leave it out to search ${SUPPORTED_REGIONS[*]}, or ask for more quota (https://learn.microsoft.com/azure/quotas/per-vm-quota-requests)"
    fi
    die "no region of ${SUPPORTED_REGIONS[*]} can host $NODES x $NODE_TYPE: try another --node-type or ask for more quota (https://learn.microsoft.com/azure/quotas/per-vm-quota-requests)"
}

# Sets WORKSPACE_URL (https://adb-<id>.<n>.azuredatabricks.net); a placeholder in --dry-run
# when the workspace does not exist yet.
read_workspace_url() {
    local url
    if url=$(az_sub databricks workspace show --resource-group "$RESOURCE_GROUP" --name "$WORKSPACE" \
        --query workspaceUrl -o tsv 2>/dev/null) && [[ -n $url ]]; then
        WORKSPACE_URL=https://$url
    elif ((DRY_RUN)); then
        WORKSPACE_URL="https://<url of $WORKSPACE>"
    else
        die "could not read the URL of workspace $WORKSPACE"
    fi
}

write_profile() {
    local file
    file=$(config_file)
    if ((DRY_RUN)); then
        printf 'DRY-RUN: write [%s] to %s: host = %s, auth_type = azure-cli\n' "$PROFILE" "$file" "$WORKSPACE_URL"
        return
    fi
    if profile_exists "$file" "$PROFILE"; then
        log "Updating profile [$PROFILE] in $file."
    else
        log "Adding profile [$PROFILE] to $file."
    fi
    edit_profile "$file" "$PROFILE" "$WORKSPACE_URL"
}

print_summary() {
    cat <<EOF
Resource group: $RESOURCE_GROUP
Workspace:      $WORKSPACE${WORKSPACE_REGION:+ ($WORKSPACE_REGION)}
Workspace URL:  $WORKSPACE_URL
CLI profile:    [$PROFILE] in $(config_file) (auth_type = azure-cli)

Deploy and run the training job, from the repository root ($REPO_ROOT):
  export DATABRICKS_CONFIG_PROFILE=$PROFILE
  databricks bundle deploy -t $BUNDLE_TARGET
  databricks bundle run $BUNDLE_JOB -t $BUNDLE_TARGET

Run this again, reusing all of it:
  setup/setup.sh --resource-group $RESOURCE_GROUP --profile $PROFILE

Delete everything when you are done:
  setup/cleanup.sh --resource-group $RESOURCE_GROUP --profile $PROFILE
EOF
}

# Runs the commands printed above when the (new, Go) databricks CLI is installed.
deploy_bundle() {
    if ((!DEPLOY)); then
        log "--no-deploy: not deploying."
        return
    fi
    if ! command -v "$DATABRICKS" >/dev/null 2>&1; then
        log "The databricks CLI is not on PATH: install it (https://docs.databricks.com/dev-tools/cli/install.html) and run the commands above."
        return
    fi
    if [[ ! -f $REPO_ROOT/databricks.yml ]]; then
        log "No databricks.yml in $REPO_ROOT: not deploying."
        return
    fi
    # `&&`, not set -e: errexit is off inside a command followed by `||`.
    (
        cd "$REPO_ROOT" &&
            mutate env "DATABRICKS_CONFIG_PROFILE=$PROFILE" "$DATABRICKS" bundle deploy -t "$BUNDLE_TARGET" &&
            mutate env "DATABRICKS_CONFIG_PROFILE=$PROFILE" "$DATABRICKS" bundle run "$BUNDLE_JOB" -t "$BUNDLE_TARGET"
    ) || die "the bundle commands failed; fix the error above and rerun them (the workspace and profile are ready)"
}

main() {
    parse_args "$@"
    require_az
    ((DRY_RUN)) && log "Dry run: read-only queries only; changes are printed as DRY-RUN lines."
    choose_subscription
    register_providers
    ensure_databricks_extension

    local group_exists=0
    WORKSPACE_REGION=""
    if [[ -z $RESOURCE_GROUP ]]; then
        RESOURCE_GROUP=msl-$(random_suffix)
    elif resource_group_exists "$RESOURCE_GROUP"; then
        group_exists=1
    fi
    if ((group_exists)) && find_workspace; then
        log "Workspace $WORKSPACE already exists in $RESOURCE_GROUP; reusing it."
    else
        WORKSPACE=${WORKSPACE:-$(default_workspace_name "$RESOURCE_GROUP")}
        ((group_exists)) && log "Resource group $RESOURCE_GROUP already exists; reusing it."
        create_workspace "$group_exists"
    fi
    read_workspace_url
    write_profile
    print_summary
    deploy_bundle
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
