<#
.SYNOPSIS
    Reads and rewrites one profile of the Databricks CLI config file. Dot-sourced by setup.ps1
    and cleanup.ps1; the PowerShell twin of edit_profile in lib.sh (same algorithm, same output).

.DESCRIPTION
    A profile written here holds the workspace host and auth_type = azure-cli: the Databricks CLI
    then gets a token from the Azure CLI login each time, so no token is ever written. Rewriting
    keeps the section where it stands and every other section as it was (blank lines at the end
    of the file are dropped), so doing it twice gives the same file.
#>

function Get-ConfigPath {
    # The Databricks CLI reads the same variable.
    if ($env:DATABRICKS_CONFIG_FILE) {
        return $env:DATABRICKS_CONFIG_FILE
    }
    Join-Path $HOME '.databrickscfg'
}

function Test-DatabricksProfile {
    param([string]$Path, [string]$Name)
    if (-not (Test-Path -LiteralPath $Path)) {
        return $false
    }
    $headers = @(Get-Content -LiteralPath $Path | Where-Object { ($_ -replace '\s', '') -ceq "[$Name]" })
    return $headers.Count -gt 0
}

function Edit-ProfileLines {
    # Data in, data out: the config file's lines with section [Name] set to HostUrl, or removed
    # when HostUrl is empty. Call it as @(Edit-ProfileLines ...): it writes the lines one by one.
    param([string[]]$Lines, [string]$Name, [string]$HostUrl)
    $section = "[$Name]"
    $new = @()
    if ($HostUrl) {
        $new = @($section, "host      = $HostUrl", 'auth_type = azure-cli')
    }
    $out = [System.Collections.Generic.List[string]]::new()
    # Blank lines wait in $blanks until a line follows them, so none pile up or trail.
    $blanks = 0
    $skip = $false
    $done = $false
    foreach ($line in $Lines) {
        if ($line -match '^\s*\[') {
            if (($line -replace '\s', '') -ceq $section) {
                if (-not $done) {
                    foreach ($l in $new) {
                        for (; $blanks -gt 0; $blanks--) { $out.Add('') }
                        $out.Add($l)
                    }
                }
                $done = $true
                $skip = $true
                continue
            }
            if ($skip -and $HostUrl) {
                $blanks = 1
            }
            $skip = $false
        }
        if ($skip) {
            continue
        }
        if ($line -match '^\s*$') {
            $blanks++
            continue
        }
        for (; $blanks -gt 0; $blanks--) { $out.Add('') }
        $out.Add($line)
    }
    if (-not $done -and $HostUrl) {
        if ($out.Count -gt 0) {
            $out.Add('')
        }
        foreach ($l in $new) { $out.Add($l) }
    }
    $out
}

function Set-DatabricksProfile {
    # Writes section [Name] of the config file at Path (HostUrl set) or removes it (HostUrl
    # empty). -WhatIf says what it would write.
    [CmdletBinding(SupportsShouldProcess)]
    param([string]$Path, [string]$Name, [string]$HostUrl)
    $exists = Test-Path -LiteralPath $Path
    if (-not $exists -and -not $HostUrl) {
        return
    }
    $lines = @()
    if ($exists) {
        $lines = @(Get-Content -LiteralPath $Path)
    }
    [string[]]$updated = @(Edit-ProfileLines -Lines $lines -Name $Name -HostUrl $HostUrl)
    $action = "Remove profile [$Name]"
    if ($HostUrl) {
        $action = "Write profile [$Name]: host = $HostUrl, auth_type = azure-cli"
    }
    if ($PSCmdlet.ShouldProcess($Path, $action)) {
        # WriteAllLines: UTF-8 without BOM, and no trouble with an empty list.
        $fullPath = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
        $null = New-Item -ItemType Directory -Force -Path (Split-Path -Parent $fullPath)
        [System.IO.File]::WriteAllLines($fullPath, $updated)
        if (-not $exists -and ($IsLinux -or $IsMacOS)) {
            # Other profiles may later hold tokens: keep the file private, as the CLI does.
            chmod 600 $fullPath
        }
    }
}
