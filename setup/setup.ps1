<#
.SYNOPSIS
    Provisions the Azure Databricks workspace for the penguin classifier and points the Databricks
    CLI at it.

.DESCRIPTION
    The Microsoft Learn lab's setup script, then the steps the lab did by hand. Run it in Azure
    Cloud Shell (PowerShell), or in PowerShell 7 with the Az modules after Connect-AzAccount.
    setup.sh does the same with the Azure CLI.

    1. Picks the subscription (asks when there are several and none is given).
    2. Registers the resource providers Azure Databricks needs.
    3. Picks a region where the node type is offered without restriction and the subscription
       has the vCPU quota for it (its VM family's and the region's total), trying others on
       failure.
    4. Creates, or reuses, resource group msl-<suffix> and premium workspace databricks-<suffix>.
    5. Writes profile [penguins] to ~/.databrickscfg: the workspace host and
       auth_type = azure-cli, so the Databricks CLI signs in with your Azure CLI login
       (no token is ever written).
    6. Deploys and runs the bundle when the databricks CLI is on PATH.

    Safe to run twice: it looks before it creates, and rewrites only its own profile section.
    -WhatIf prints each change instead of making it; only read-only queries run.

.PARAMETER Region
    Use this region only. Default: a random one of the lab's regions with quota, trying the
    others in turn.

.PARAMETER ResourceGroup
    Resource group to create or reuse. Default: msl-<random suffix>.

.PARAMETER Workspace
    Workspace to create or reuse. Default: the one already in the group, else
    databricks-<suffix>.

.PARAMETER NodeType
    VM size of the job's cluster, for the quota check. Default: Standard_DS3_v2.

.PARAMETER NodeCount
    Nodes in that cluster, driver included. Default: 1 (single node).

.PARAMETER ProfileName
    Databricks CLI profile to write (alias -Profile). Default: penguins.

.PARAMETER SubscriptionId
    Azure subscription to use. Default: ask when there are several.

.PARAMETER SkipDeploy
    Do not run the bundle commands, only print them.

.PARAMETER Force
    Do not ask: use the current subscription when there are several.

.EXAMPLE
    ./setup/setup.ps1 -WhatIf
    Shows what it would do and changes nothing.

.EXAMPLE
    ./setup/setup.ps1 -Region westeurope

.EXAMPLE
    ./setup/setup.ps1 -ResourceGroup msl-abc1234
    Run again: reuses the resource group and its workspace, and rewrites the profile.

.OUTPUTS
    Progress on the host; section [ProfileName] of ~/.databrickscfg ($env:DATABRICKS_CONFIG_FILE
    when set); then the resource group, the workspace URL and the commands to deploy and run the
    bundle.
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [ValidatePattern('^[a-z0-9]+$')]
    [string]$Region,

    [ValidatePattern('^[-\w.()]{0,89}[-\w()]$')]
    [string]$ResourceGroup,

    [ValidatePattern('^[-\w]{3,64}$')]
    [string]$Workspace,

    [ValidatePattern('^\w+$')]
    [string]$NodeType = 'Standard_DS3_v2',

    [ValidateRange(1, 999)]
    [int]$NodeCount = 1,

    [Alias('Profile')]
    [ValidatePattern('^[-\w.]+$')]
    [string]$ProfileName = 'penguins',

    [string]$SubscriptionId,

    [switch]$SkipDeploy,

    [switch]$Force
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

# The regions the lab's setup script chooses from: Azure Databricks runs in all of them.
$SupportedRegions = 'centralus', 'eastus', 'eastus2', 'northcentralus', 'northeurope', 'westeurope', 'westus', 'uksouth'
# The lab registers the first three; a workspace also creates a virtual network.
$Providers = 'Microsoft.Databricks', 'Microsoft.Compute', 'Microsoft.Storage', 'Microsoft.Network'
# The bundle target and job that the printed commands deploy and run.
$BundleTarget = 'dev'
$BundleJob = 'penguin_training'
$RepoRoot = Split-Path -Parent $PSScriptRoot
$QuotaDocs = 'https://learn.microsoft.com/azure/quotas/per-vm-quota-requests'
# Get-ConfigPath, Test-DatabricksProfile, Set-DatabricksProfile.
. (Join-Path $PSScriptRoot 'DatabricksCliProfile.ps1')

function New-Suffix {
    # Seven distinct lowercase letters and digits, as in the lab (msl-<suffix>).
    -join ((48..57) + (97..122) | Get-Random -Count 7 | ForEach-Object { [char]$_ })
}

function Get-DefaultWorkspaceName {
    param([string]$Group)
    $name = 'databricks-' + (($Group -replace '^msl-', '') -replace '[^-\w]', '-')
    $name.Substring(0, [Math]::Min(64, $name.Length))
}

function Get-OrNull {
    # Runs a Get-Az* lookup; $null when the thing does not exist (the cmdlets throw on "not found").
    param([scriptblock]$Query)
    try {
        & $Query
    }
    catch {
        $null
    }
}

function Select-Subscription {
    # Changes the Az context of this PowerShell session only (-Scope Process), also under -WhatIf:
    # the read-only queries that follow must look at the chosen subscription.
    if ($SubscriptionId) {
        $chosen = Get-AzSubscription -SubscriptionId $SubscriptionId
    }
    else {
        $subs = @(Get-AzSubscription | Where-Object { $_.State -eq 'Enabled' })
        if ($subs.Count -eq 0) {
            throw 'No enabled Azure subscription: run Connect-AzAccount first.'
        }
        if ($subs.Count -eq 1) {
            $chosen = $subs[0]
        }
        elseif ($Force) {
            $current = (Get-AzContext).Subscription.Id
            $chosen = @($subs.Where({ $_.Id -eq $current }))[0]
            if (-not $chosen) {
                $chosen = $subs[0]
            }
            Write-Host "You have $($subs.Count) subscriptions; using the current one (choose with -SubscriptionId)."
        }
        else {
            Write-Host 'You have several Azure subscriptions; choose the one to use:'
            for ($i = 0; $i -lt $subs.Count; $i++) {
                Write-Host "  [$i] $($subs[$i].Name) (ID = $($subs[$i].Id))"
            }
            while ($true) {
                $answer = Read-Host -Prompt "Enter 0 to $($subs.Count - 1)"
                if ($answer -match '^\d+$' -and [int]$answer -lt $subs.Count) {
                    break
                }
                Write-Host 'Please enter a valid subscription number.'
            }
            $chosen = $subs[[int]$answer]
        }
    }
    Set-AzContext -Subscription $chosen.Id -Scope Process -WhatIf:$false | Out-Null
    Write-Host "Using subscription $($chosen.Name) ($($chosen.Id))."
}

function Register-RequiredProvider {
    [CmdletBinding(SupportsShouldProcess)]
    param()
    foreach ($namespace in $Providers) {
        $state = @(Get-AzResourceProvider -ProviderNamespace $namespace)[0].RegistrationState
        if ($state -eq 'Registered') {
            Write-Host "${namespace}: registered."
            continue
        }
        if ($PSCmdlet.ShouldProcess($namespace, 'Register resource provider')) {
            Write-Host "${namespace}: $state; registering it (a minute or two)..."
            Register-AzResourceProvider -ProviderNamespace $namespace | Out-Null
            # Register-AzResourceProvider returns at once; the workspace needs the provider ready.
            for ($try = 0; $try -lt 60 -and $state -ne 'Registered'; $try++) {
                Start-Sleep -Seconds 10
                $state = @(Get-AzResourceProvider -ProviderNamespace $namespace)[0].RegistrationState
            }
            if ($state -ne 'Registered') {
                throw "$namespace is still $state after 10 minutes; run the script again later."
            }
        }
    }
}

function Get-FreeVCpuCount {
    # The vCPUs free for a VM family in a region: the smaller of the family's quota and the
    # region's total ("cores"); 0 when the subscription has no quota for the family.
    param([string]$Location, [string]$Family)
    $usage = @(Get-AzVMUsage -Location $Location)
    $familyUsage = @($usage.Where({ $_.Name.Value -eq $Family }))
    if ($familyUsage.Count -eq 0) {
        return 0
    }
    $free = $familyUsage[0].Limit - $familyUsage[0].CurrentValue
    $total = @($usage.Where({ $_.Name.Value -eq 'cores' }))
    if ($total.Count -gt 0) {
        $free = [Math]::Min($free, $total[0].Limit - $total[0].CurrentValue)
    }
    return $free
}

function Test-RegionFits {
    # True when the region offers the node type to this subscription without restriction and
    # has the vCPU quota for NodeCount of them. Says why or why not.
    param([string]$Location, [string]$Size, [int]$Nodes)
    $sku = @(Get-AzComputeResourceSku -Location $Location | Where-Object {
            $_.ResourceType -eq 'virtualMachines' -and $_.Name -eq $Size
        })
    if ($sku.Count -eq 0) {
        Write-Host "${Location}: $Size is not offered; skipping."
        return $false
    }
    # A Location restriction bars the whole region; a Zone restriction only some zones.
    $blocking = @($sku[0].Restrictions | Where-Object { $_.Type -eq 'Location' })
    if ($blocking.Count -gt 0) {
        Write-Host "${Location}: $Size is restricted for this subscription ($($blocking[0].ReasonCode)); skipping."
        return $false
    }
    $vcpus = [int](@($sku[0].Capabilities | Where-Object { $_.Name -eq 'vCPUs' })[0].Value)
    $needed = $vcpus * $Nodes
    $family = $sku[0].Family
    $free = Get-FreeVCpuCount -Location $Location -Family $family
    if ($free -lt $needed) {
        Write-Host "${Location}: $free $family vCPUs free, $needed needed; skipping."
        return $false
    }
    Write-Host "${Location}: $free $family vCPUs free, $needed needed."
    return $true
}

function New-Workspace {
    # Creates the resource group (when missing) and the workspace in the first region that fits,
    # moving on to the next region when creating the workspace fails (capacity runs out).
    # Returns the region, or throws.
    [CmdletBinding(SupportsShouldProcess)]
    param([string]$Group, [string]$Name, [bool]$GroupExists)
    if ($Region) {
        $candidates = @($Region)
    }
    else {
        # Random order spreads a class running the lab at once over several regions.
        $candidates = @($SupportedRegions | Get-Random -Count $SupportedRegions.Count)
    }
    foreach ($location in $candidates) {
        if (-not (Test-RegionFits -Location $location -Size $NodeType -Nodes $NodeCount)) {
            continue
        }
        if (-not $GroupExists) {
            if ($PSCmdlet.ShouldProcess("$Group ($location)", 'Create resource group')) {
                Write-Host "Creating resource group $Group in $location..."
                New-AzResourceGroup -Name $Group -Location $location | Out-Null
            }
            $GroupExists = $true
        }
        if ($PSCmdlet.ShouldProcess("$Name ($location)", 'Create premium Azure Databricks workspace')) {
            Write-Host "Creating premium workspace $Name in $location (a few minutes)..."
            try {
                New-AzDatabricksWorkspace -Name $Name -ResourceGroupName $Group -Location $location -Sku premium | Out-Null
                return $location
            }
            catch {
                Write-Warning "${location}: creating the workspace failed ($($_.Exception.Message)); trying the next region."
            }
        }
        else {
            return $location
        }
    }
    if ($Region) {
        throw "$Region cannot host $NodeCount x ${NodeType}: pick another -Region, leave it out to search $($SupportedRegions -join ', '), or ask for more quota ($QuotaDocs)."
    }
    throw "No region of $($SupportedRegions -join ', ') can host $NodeCount x ${NodeType}: try another -NodeType or ask for more quota ($QuotaDocs)."
}

function Get-WorkspaceUrl {
    param([string]$Group, [string]$Name)
    $ws = Get-OrNull { Get-AzDatabricksWorkspace -ResourceGroupName $Group -Name $Name }
    if ($ws) {
        # Az.Databricks calls it Url; some versions also expose WorkspaceUrl.
        foreach ($property in 'Url', 'WorkspaceUrl') {
            $p = $ws.PSObject.Properties[$property]
            if ($p -and $p.Value) {
                return "https://$($p.Value)"
            }
        }
    }
    if ($WhatIfPreference) {
        return "https://<url of $Name>"
    }
    throw "Could not read the URL of workspace $Name."
}

function Invoke-Bundle {
    # Runs the printed commands when the (new, Go) databricks CLI is installed.
    [CmdletBinding(SupportsShouldProcess)]
    param()
    if ($SkipDeploy) {
        Write-Host '-SkipDeploy: not deploying.'
        return
    }
    $cli = Get-Command databricks -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if (-not $cli) {
        Write-Host 'The databricks CLI is not on PATH: install it (https://docs.databricks.com/dev-tools/cli/install.html) and run the commands above.'
        return
    }
    if (-not (Test-Path -LiteralPath (Join-Path $RepoRoot 'databricks.yml'))) {
        Write-Host "No databricks.yml in ${RepoRoot}: not deploying."
        return
    }
    $commands = @(@('bundle', 'deploy', '-t', $BundleTarget), @('bundle', 'run', $BundleJob, '-t', $BundleTarget))
    $previous = $env:DATABRICKS_CONFIG_PROFILE
    Push-Location $RepoRoot
    try {
        $env:DATABRICKS_CONFIG_PROFILE = $ProfileName
        foreach ($arguments in $commands) {
            $text = "databricks $($arguments -join ' ')"
            if ($PSCmdlet.ShouldProcess("$text (profile $ProfileName, in $RepoRoot)", 'Run')) {
                & $cli.Source @arguments
                if ($LASTEXITCODE -ne 0) {
                    throw "'$text' failed; fix the error above and rerun it (the workspace and profile are ready)."
                }
            }
        }
    }
    finally {
        $env:DATABRICKS_CONFIG_PROFILE = $previous
        Pop-Location
    }
}

Write-Host "Starting script at $(Get-Date)"
if ($WhatIfPreference) {
    Write-Host 'WhatIf: read-only queries only; each change is printed instead of made.'
}
Select-Subscription
Register-RequiredProvider

$groupExists = $false
$workspaceRegion = $null
if (-not $ResourceGroup) {
    $ResourceGroup = 'msl-' + (New-Suffix)
}
elseif (Get-OrNull { Get-AzResourceGroup -Name $ResourceGroup }) {
    $groupExists = $true
}

$existing = $null
if ($groupExists) {
    if ($Workspace) {
        $existing = Get-OrNull { Get-AzDatabricksWorkspace -ResourceGroupName $ResourceGroup -Name $Workspace }
    }
    else {
        $existing = @(Get-AzDatabricksWorkspace -ResourceGroupName $ResourceGroup) | Select-Object -First 1
    }
}
if ($existing) {
    $Workspace = $existing.Name
    Write-Host "Workspace $Workspace already exists in $ResourceGroup; reusing it."
}
else {
    if (-not $Workspace) {
        $Workspace = Get-DefaultWorkspaceName -Group $ResourceGroup
    }
    if ($groupExists) {
        Write-Host "Resource group $ResourceGroup already exists; reusing it."
    }
    $workspaceRegion = New-Workspace -Group $ResourceGroup -Name $Workspace -GroupExists $groupExists
}

$url = Get-WorkspaceUrl -Group $ResourceGroup -Name $Workspace
$configPath = Get-ConfigPath
if (Test-DatabricksProfile -Path $configPath -Name $ProfileName) {
    Write-Host "Updating profile [$ProfileName] in $configPath."
}
else {
    Write-Host "Adding profile [$ProfileName] to $configPath."
}
Set-DatabricksProfile -Path $configPath -Name $ProfileName -HostUrl $url

$where = if ($workspaceRegion) { " ($workspaceRegion)" } else { '' }
Write-Host @"

Resource group: $ResourceGroup
Workspace:      $Workspace$where
Workspace URL:  $url
CLI profile:    [$ProfileName] in $configPath (auth_type = azure-cli)

Deploy and run the training job, from the repository root ($RepoRoot):
  `$env:DATABRICKS_CONFIG_PROFILE = '$ProfileName'
  databricks bundle deploy -t $BundleTarget
  databricks bundle run $BundleJob -t $BundleTarget

Run this again, reusing all of it:
  ./setup/setup.ps1 -ResourceGroup $ResourceGroup -ProfileName $ProfileName

Delete everything when you are done:
  ./setup/cleanup.ps1 -ResourceGroup $ResourceGroup -ProfileName $ProfileName
"@

Invoke-Bundle
Write-Host "Script completed at $(Get-Date)"
