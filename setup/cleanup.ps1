<#
.SYNOPSIS
    Deletes what setup.ps1 created: the resource group with its Azure Databricks workspace, and
    optionally the Databricks CLI profile.

.DESCRIPTION
    The lab's clean-up step. Deleting the resource group deletes the workspace in it, and Azure
    then deletes the workspace's managed resource group (databricks-rg-...). It lists what the
    group holds and asks before deleting unless -Force is given. Deleting a group that is already
    gone is not an error. -WhatIf prints each change instead of making it. cleanup.sh does the
    same with the Azure CLI.

.PARAMETER ResourceGroup
    Resource group to delete (setup.ps1 prints it).

.PARAMETER ProfileName
    Also remove this profile (alias -Profile) from the Databricks CLI config file
    (~/.databrickscfg, or $env:DATABRICKS_CONFIG_FILE when set).

.PARAMETER SubscriptionId
    Azure subscription. Default: the current Az context's.

.PARAMETER Force
    Do not ask for confirmation.

.EXAMPLE
    ./setup/cleanup.ps1 -ResourceGroup msl-abc1234 -WhatIf
    Shows what it would delete.

.EXAMPLE
    ./setup/cleanup.ps1 -ResourceGroup msl-abc1234 -ProfileName penguins
    Asks, then deletes the group (about 10 minutes) and removes the profile.
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)]
    [ValidatePattern('^[-\w.()]{0,89}[-\w()]$')]
    [string]$ResourceGroup,

    [Alias('Profile')]
    [ValidatePattern('^[-\w.]+$')]
    [string]$ProfileName,

    [string]$SubscriptionId,

    [switch]$Force
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

# Get-ConfigPath, Test-DatabricksProfile, Set-DatabricksProfile.
. (Join-Path $PSScriptRoot 'DatabricksCliProfile.ps1')

if ($SubscriptionId) {
    # This PowerShell session only; also under -WhatIf, so that the lookups below see it.
    Set-AzContext -Subscription $SubscriptionId -Scope Process -WhatIf:$false | Out-Null
}

$group = $null
try {
    $group = Get-AzResourceGroup -Name $ResourceGroup
}
catch {
    $group = $null
}

$deleted = $false
if (-not $group) {
    Write-Host "Resource group $ResourceGroup does not exist; nothing to delete in Azure."
    $deleted = $true
}
else {
    $resources = @(Get-AzResource -ResourceGroupName $ResourceGroup)
    Write-Host "Resource group $ResourceGroup ($($group.Location)) holds:"
    if ($resources.Count -eq 0) {
        Write-Host '  (nothing)'
    }
    foreach ($resource in $resources) {
        Write-Host "  $($resource.ResourceType) $($resource.Name)"
    }
    if ($PSCmdlet.ShouldProcess($ResourceGroup, 'Delete resource group and everything in it')) {
        # ShouldContinue asks even without -Confirm; in a session with no one to answer it fails
        # rather than delete anything unasked.
        $question = "Delete resource group $ResourceGroup and everything in it?"
        if ($Force -or $PSCmdlet.ShouldContinue($question, 'Confirm deletion')) {
            Write-Host "Deleting resource group $ResourceGroup (about 10 minutes)..."
            Remove-AzResourceGroup -Name $ResourceGroup -Force | Out-Null
            Write-Host "Deleted resource group $ResourceGroup."
            $deleted = $true
        }
        else {
            Write-Host 'Nothing deleted.'
        }
    }
    elseif ($WhatIfPreference) {
        $deleted = $true
    }
}

# Answering no keeps the profile too: it still points at a live workspace.
if ($ProfileName -and $deleted) {
    $configPath = Get-ConfigPath
    if (Test-DatabricksProfile -Path $configPath -Name $ProfileName) {
        # Without -HostUrl it removes the section.
        Set-DatabricksProfile -Path $configPath -Name $ProfileName
        if (-not $WhatIfPreference) {
            Write-Host "Removed profile [$ProfileName] from $configPath."
        }
    }
    else {
        Write-Host "No profile [$ProfileName] in $configPath; nothing to remove."
    }
}
