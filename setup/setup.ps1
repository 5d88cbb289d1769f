# setup.ps1 - the lab's entry point in Azure Cloud Shell (PowerShell): runs setup.sh, which does the
# work, with the same arguments. Cloud Shell's PowerShell has bash too.
#   ./setup/setup.ps1 --dry-run
#   ./setup/setup.ps1 --region westeurope
bash (Join-Path $PSScriptRoot 'setup.sh') @args
exit $LASTEXITCODE
