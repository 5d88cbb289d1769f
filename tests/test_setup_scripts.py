"""Tests for the Azure provisioning scripts in setup/.

There is no Azure here and no PowerShell. The bash scripts run against a fake ``az`` (and a fake
``databricks``) first on PATH: it answers with recorded output of the real commands and logs every
call, so the tests can assert on the exact commands a run would make. The PowerShell scripts are
parsed with tree-sitter-powershell, which must find no syntax error, and checked statically: every
cmdlet that changes something runs only where ``-WhatIf`` can stop it.

The recorded answers are what ``az ... --query <JMESPath> -o tsv`` prints. One test evaluates the
scripts' JMESPath queries over recorded JSON of the real commands (it needs the ``jmespath``
package) to show that the recorded TSV is what those queries give.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "setup"
BASH = shutil.which("bash") or "/bin/bash"

SUB = "00000000-0000-0000-0000-000000000001"
OTHER_SUB = "00000000-0000-0000-0000-000000000002"
PROVIDERS = ["Microsoft.Databricks", "Microsoft.Compute", "Microsoft.Storage", "Microsoft.Network"]
# setup.sh's SUPPORTED_REGIONS, in its order: the fake `shuf` keeps that order.
REGIONS = [
    "centralus",
    "eastus",
    "eastus2",
    "northcentralus",
    "northeurope",
    "westeurope",
    "westus",
    "uksouth",
]
# Obviously fake: a real workspace URL is adb-<16 digit workspace id>.<n>.azuredatabricks.net.
WORKSPACE_HOST = "adb-0000000000000000.0.azuredatabricks.net"
# az commands that change something in Azure (or the CLI's default subscription).
MUTATING = {
    "provider register",
    "group create",
    "group delete",
    "databricks workspace create",
    "databricks workspace delete",
    "account set",
}

# ---------------------------------------------------------------------------------------------
# Recorded Azure answers. One story per region, for Standard_DS3_v2 (standardDSv2Family, 4 vCPUs):
#   centralus       offered, but the subscription has no standardDSv2Family quota row: 0 free
#   eastus          family quota 8 of 10 used: 2 free < 4 needed
#   eastus2         fits (10 free); the retry test makes creating the workspace fail here
#   northcentralus  not offered at all
#   northeurope     only Standard_DS3_v2_Promo, which `--size` also matches: not offered
#   westeurope      fits: family 0 of 10 used, region 4 of 100; a Zone restriction does not count
#   westus          a Location restriction (NotAvailableForSubscription): restricted
#   uksouth         family has 10 free, but the region's total has 98 of 100 used: 2 free
# ---------------------------------------------------------------------------------------------


def _sku(name, restrictions=()):
    """One item of `az vm list-skus --resource-type virtualMachines -o json`, trimmed."""
    return {
        "capabilities": [
            {"name": "MaxResourceVolumeMB", "value": "28672"},
            {"name": "vCPUs", "value": "4"},
            {"name": "MemoryGB", "value": "14"},
        ],
        "family": "standardDSv2Family",
        "name": name,
        "resourceType": "virtualMachines",
        "restrictions": list(restrictions),
        "size": name.removeprefix("Standard_"),
        "tier": "Standard",
    }


def _restriction(kind, region, zones=None):
    return {
        "reasonCode": "NotAvailableForSubscription",
        "restrictionInfo": {"locations": [region], "zones": zones},
        "type": kind,
        "values": [region],
    }


def _usage(value, used, limit):
    """One item of `az vm list-usage -o json` (it reports the numbers as strings)."""
    return {"currentValue": str(used), "limit": str(limit), "name": {"value": value}}


def _usages(family, cores):
    rows = [_usage("standardDDSv5Family", 0, 10)]  # another family, which the query drops
    if family is not None:
        rows.append(_usage("standardDSv2Family", *family))
    rows.append(_usage("cores", *cores))
    return rows


DS3 = "Standard_DS3_v2"
SKUS_JSON = {
    "centralus": [_sku(DS3)],
    "eastus": [_sku(DS3)],
    "eastus2": [_sku(DS3)],
    "northcentralus": [],
    "northeurope": [_sku("Standard_DS3_v2_Promo")],
    "westeurope": [_sku(DS3, [_restriction("Zone", "westeurope", ["3"])])],
    "westus": [_sku(DS3, [_restriction("Location", "westus")])],
    "uksouth": [_sku(DS3)],
}
USAGE_JSON = {
    "centralus": _usages(None, (0, 100)),
    "eastus": _usages((8, 10), (8, 100)),
    "eastus2": _usages((0, 10), (0, 100)),
    "northcentralus": _usages((0, 10), (0, 100)),
    "northeurope": _usages((0, 10), (0, 100)),
    "westeurope": _usages((0, 10), (4, 100)),
    "westus": _usages((0, 10), (0, 100)),
    "uksouth": _usages((0, 10), (98, 100)),
}
# What setup.sh's queries print for the JSON above: family, vCPUs, region-wide restrictions ...
SKU_TSV = {
    "centralus": "standardDSv2Family\t4\t0\n",
    "eastus": "standardDSv2Family\t4\t0\n",
    "eastus2": "standardDSv2Family\t4\t0\n",
    "northcentralus": "",
    "northeurope": "",
    "westeurope": "standardDSv2Family\t4\t0\n",
    "westus": "standardDSv2Family\t4\t1\n",
    "uksouth": "standardDSv2Family\t4\t0\n",
}
# ... and name, used, limit of the family's and the region's vCPU quota, in the JSON's order.
USAGE_TSV = {
    "centralus": "cores\t0\t100\n",
    "eastus": "standardDSv2Family\t8\t10\ncores\t8\t100\n",
    "eastus2": "standardDSv2Family\t0\t10\ncores\t0\t100\n",
    "northcentralus": "standardDSv2Family\t0\t10\ncores\t0\t100\n",
    "northeurope": "standardDSv2Family\t0\t10\ncores\t0\t100\n",
    "westeurope": "standardDSv2Family\t0\t10\ncores\t4\t100\n",
    "westus": "standardDSv2Family\t0\t10\ncores\t0\t100\n",
    "uksouth": "standardDSv2Family\t0\t10\ncores\t98\t100\n",
}

# The fake az: logs its argv as one JSON line, then answers with the first rule whose command
# words and options match (options not named in a rule are ignored). No rule: exit 99, so a
# command the test did not expect fails loudly.
FAKE_AZ = """\
#!{python}
import json, os, sys

args = sys.argv[1:]
state = os.environ["FAKE_AZ_DIR"]
with open(os.path.join(state, "calls.jsonl"), "a") as log:
    log.write(json.dumps(args) + "\\n")
words, opts, i = [], {{}}, 0
while i < len(args) and not args[i].startswith("-"):
    words.append(args[i])
    i += 1
while i < len(args):
    if i + 1 < len(args) and not args[i + 1].startswith("-"):
        opts[args[i]] = args[i + 1]
        i += 2
    else:
        opts[args[i]] = True
        i += 1
with open(os.path.join(state, "answers.json")) as f:
    rules = json.load(f)
for rule in rules:
    if rule["cmd"] == " ".join(words) and all(opts.get(k) == v for k, v in rule["opts"].items()):
        sys.stdout.write(rule["stdout"])
        sys.stderr.write(rule["stderr"])
        sys.exit(rule["rc"])
sys.stderr.write("fake az: no recorded answer for: " + " ".join(args) + "\\n")
sys.exit(99)
"""

# The fake databricks CLI logs where it ran, with which profile, and its arguments.
FAKE_DATABRICKS = """\
#!/usr/bin/env bash
printf '%s|%s|%s\\n' "$PWD" "${DATABRICKS_CONFIG_PROFILE:-}" "$*" >>"$FAKE_AZ_DIR/databricks.log"
"""


def rule(cmd, opts=None, stdout="", rc=0, stderr=""):
    return {"cmd": cmd, "opts": opts or {}, "stdout": stdout, "rc": rc, "stderr": stderr}


def azure(
    subs=((SUB, "Lab subscription"),),
    unregistered=("Microsoft.Network",),
    group_exists=False,
    workspace=None,
    create_fails=(),
    resources="",
    created=False,
):
    """Rules for one state of the Azure world, as the scripts query it.

    workspace: the workspace already in the group; created: `workspace show` finds the workspace
    (it exists, or the run creates it).
    """
    rules = [
        rule("account list", stdout="".join(f"{i}\t{n}\n" for i, n in subs)),
        rule("account show", stdout=f"{subs[0][0]}\n" if subs else ""),  # default: the first
        *[
            rule(
                "provider show",
                {"--namespace": ns},
                stdout="NotRegistered\n" if ns in unregistered else "Registered\n",
            )
            for ns in PROVIDERS
        ],
        rule("provider register"),
        rule("extension show", {"--name": "databricks"}),
        rule("group exists", stdout="true\n" if group_exists else "false\n"),
        rule("group create"),
        rule("group delete"),
        rule("resource list", stdout=resources),
        *[rule("vm list-skus", {"--location": r}, stdout=SKU_TSV[r]) for r in REGIONS],
        *[rule("vm list-usage", {"--location": r}, stdout=USAGE_TSV[r]) for r in REGIONS],
        rule("databricks workspace list", stdout=f"{workspace}\n" if workspace else ""),
        *[
            rule(
                "databricks workspace create",
                {"--location": r},
                rc=1,
                stderr="(SkuNotAvailable) capacity\n",
            )
            for r in create_fails
        ],
        rule("databricks workspace create"),
    ]
    if workspace or created:
        rules.append(rule("databricks workspace show", stdout=f"{WORKSPACE_HOST}\n"))
    else:
        rules.append(rule("databricks workspace show", rc=3, stderr="(ResourceNotFound)\n"))
    return rules


class Sandbox:
    """setup/ copied into a fresh repo, a HOME, and fake az, shuf (and databricks) on PATH."""

    def __init__(self, root: Path, databricks_cli: bool):
        self.repo = root / "repo"
        self.home = root / "home"
        self.state = root / "state"
        self.bin = root / "bin"
        for folder in (self.repo / "setup", self.home, self.state, self.bin):
            folder.mkdir(parents=True)
        for script in SETUP.glob("*.sh"):
            shutil.copy2(script, self.repo / "setup" / script.name)
        self._tool("az", FAKE_AZ.format(python=sys.executable))
        # Identity shuffle: the supported regions are tried in setup.sh's order.
        self._tool("shuf", "#!/bin/sh\nexec cat\n")
        if databricks_cli:
            self._tool("databricks", FAKE_DATABRICKS)
        self.config = self.home / ".databrickscfg"
        self.answer(azure())

    def _tool(self, name, text):
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)

    def answer(self, rules):
        (self.state / "answers.json").write_text(json.dumps(rules))

    def run(self, script, *args, stdin=None, source=None):
        """Runs setup/<script> with args; with source, sources it and runs that bash instead."""
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "FAKE_AZ_DIR": str(self.state),
        }
        path = self.repo / "setup" / script
        command = [BASH, str(path), *args]
        if source is not None:
            # $0 stays "bash", so the script's `[[ ${BASH_SOURCE[0]} == "$0" ]]` keeps main off.
            command = [
                BASH,
                "-c",
                f'script=$1; shift; source "$script"; {source}',
                "bash",
                str(path),
                *args,
            ]
        return subprocess.run(
            command,
            env=env,
            cwd=self.home,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def calls(self):
        """The fake az's calls, each as its argv."""
        log = self.state / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def commands(self):
        """Each call's command words, e.g. 'vm list-usage'."""
        out = []
        for argv in self.calls():
            words = []
            for arg in argv:
                if arg.startswith("-"):
                    break
                words.append(arg)
            out.append(" ".join(words))
        return out

    def databricks_calls(self):
        log = self.state / "databricks.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def sandbox(tmp_path):
    return Sandbox(tmp_path, databricks_cli=False)


@pytest.fixture
def sandbox_with_cli(tmp_path):
    box = Sandbox(tmp_path, databricks_cli=True)
    (box.repo / "databricks.yml").write_text("bundle:\n  name: penguins\n")
    return box


# ---------------------------------------------------------------------------------------------
# setup.sh: arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "setup.sh: unknown option: --bogus"),
        (["-x"], "setup.sh: unknown option: -x"),
        (["--region"], "setup.sh: --region needs a value"),
        # A flag where the value should be is a forgotten value, not a region called --dry-run.
        (["--region", "--dry-run"], "setup.sh: --region needs a value"),
        (
            ["--region", "West Europe"],
            "setup.sh: --region must be a region name such as westeurope, not 'West Europe'",
        ),
        # The node type goes into a JMESPath query: a quote must not get through.
        (
            ["--node-type", "Standard_DS3_v2'"],
            "setup.sh: --node-type must be a VM size such as "
            "Standard_DS3_v2, not 'Standard_DS3_v2''",
        ),
        (["--nodes", "0"], "setup.sh: --nodes must be a whole number from 1 to 999"),
        (["--nodes=two"], "setup.sh: --nodes must be a whole number from 1 to 999"),
        (
            ["--resource-group", "rg."],
            "setup.sh: --resource-group: 1-90 letters, digits, '-', "
            "'_', '.', '(' or ')', not ending in '.'",
        ),
        (["--workspace", "ab"], "setup.sh: --workspace: 3-64 letters, digits, '-' or '_'"),
        (["--profile", "pen guins"], "setup.sh: --profile: letters, digits, '-', '_' or '.'"),
        (["--profile", "a]b"], "setup.sh: --profile: letters, digits, '-', '_' or '.'"),
    ],
)
def test_setup_bad_arguments_exit_2_with_one_line_and_usage(sandbox, args, message):
    result = sandbox.run("setup.sh", *args)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == message
    assert lines[1] == "Usage: setup.sh [options]"
    assert result.stdout == ""
    assert sandbox.calls() == []  # rejected before touching Azure


def test_setup_help_exits_0_on_stdout(sandbox):
    result = sandbox.run("setup.sh", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: setup.sh [options]\n")
    for flag in ("--region", "--resource-group", "--node-type", "--profile", "--dry-run", "--yes"):
        assert flag in result.stdout
    assert result.stderr == ""
    assert sandbox.calls() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # Defaults: the lab's node type, one node (single-node job cluster), profile penguins.
        ([], "||Standard_DS3_v2|1|penguins|1|0|0"),
        (
            ["--region", "westeurope", "--resource-group", "msl-abc1234", "--nodes", "2"],
            "westeurope|msl-abc1234|Standard_DS3_v2|2|penguins|1|0|0",
        ),
        # --flag=value is the same as --flag value.
        (
            ["--region=uksouth", "--profile=lab", "--no-deploy", "--dry-run", "--yes"],
            "uksouth||Standard_DS3_v2|1|lab|0|1|1",
        ),
        (["--node-type", "Standard_D4ds_v5", "-y"], "||Standard_D4ds_v5|1|penguins|1|0|1"),
    ],
)
def test_setup_parses_long_flags(sandbox, args, expected):
    show = (
        'parse_args "$@"; printf "%s|" "$REGION" "$RESOURCE_GROUP" "$NODE_TYPE" "$NODES" '
        '"$PROFILE" "$DEPLOY" "$DRY_RUN"; printf "%s\\n" "$ASSUME_YES"'
    )
    result = sandbox.run("setup.sh", *args, source=show)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"


def test_sourcing_setup_defines_functions_without_running_main(sandbox):
    result = sandbox.run("setup.sh", source="declare -F pick_region edit_profile")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pick_region\nedit_profile\n"
    assert sandbox.calls() == []


# ---------------------------------------------------------------------------------------------
# setup.sh: subscription and region choice
# ---------------------------------------------------------------------------------------------

TWO_SUBS = ((SUB, "Lab subscription"), (OTHER_SUB, "Other subscription"))


@pytest.mark.parametrize(
    ("subs", "args", "expected", "commands"),
    [
        # One subscription: nothing to ask.
        (((SUB, "Lab"),), [], SUB, ["account list"]),
        # Several and nobody to ask (stdin is not a terminal): the CLI's default one.
        (TWO_SUBS, [], SUB, ["account list", "account show"]),
        (TWO_SUBS, ["--yes"], SUB, ["account list", "account show"]),
        # Given: used as is, without listing.
        (TWO_SUBS, ["--subscription", OTHER_SUB], OTHER_SUB, []),
    ],
)
def test_setup_chooses_subscription(sandbox, subs, args, expected, commands):
    sandbox.answer(azure(subs=subs))
    show = 'parse_args "$@"; choose_subscription; printf "%s\\n" "${SUB_ARGS[@]}"'
    result = sandbox.run("setup.sh", *args, source=show)
    assert result.returncode == 0, result.stderr
    # Every later az call gets --subscription, so none depends on the CLI's default.
    assert result.stdout == f"--subscription\n{expected}\n"
    assert sandbox.commands() == commands


def test_setup_without_subscriptions_says_to_log_in(sandbox):
    sandbox.answer(azure(subs=()))
    result = sandbox.run("setup.sh", source="parse_args; choose_subscription")
    assert result.returncode == 1
    assert result.stderr == "setup.sh: error: no enabled Azure subscription: run 'az login' first\n"


SKIP = {
    "centralus": "centralus: 0 standardDSv2Family vCPUs free, 4 needed; skipping.",
    "eastus": "eastus: 2 standardDSv2Family vCPUs free, 4 needed; skipping.",
    "northcentralus": "northcentralus: Standard_DS3_v2 is not offered; skipping.",
    "northeurope": "northeurope: Standard_DS3_v2 is not offered; skipping.",
    "westus": "westus: Standard_DS3_v2 is restricted for this subscription; skipping.",
    "uksouth": "uksouth: 2 standardDSv2Family vCPUs free, 4 needed; skipping.",
}
WESTEUROPE_OK = "westeurope: 10 standardDSv2Family vCPUs free, 4 needed."


@pytest.mark.parametrize(
    ("nodes", "regions", "chosen", "log"),
    [
        # A given region with quota is used: 10 of 10 DSv2 vCPUs free, 96 in the region.
        (1, ["westeurope"], "westeurope", [WESTEUROPE_OK]),
        # No quota left in the family (eastus), restricted (westus), not offered (northeurope,
        # where only the _Promo size matches --size): each skipped, the next tried.
        (
            1,
            ["eastus", "westus", "northeurope", "westeurope"],
            "westeurope",
            [SKIP["eastus"], SKIP["westus"], SKIP["northeurope"], WESTEUROPE_OK],
        ),
        # The region's total counts too (uksouth: 10 in the family, 2 in the region), and no
        # quota row for the family at all means 0 (centralus).
        (
            1,
            ["uksouth", "centralus", "westeurope"],
            "westeurope",
            [SKIP["uksouth"], SKIP["centralus"], WESTEUROPE_OK],
        ),
        # Three nodes of 4 vCPUs need 12; westeurope has 10.
        (
            3,
            ["westeurope"],
            None,
            ["westeurope: 10 standardDSv2Family vCPUs free, 12 needed; skipping."],
        ),
        # None has quota: pick_region fails and prints nothing.
        (
            1,
            ["eastus", "westus", "northcentralus", "uksouth"],
            None,
            [SKIP["eastus"], SKIP["westus"], SKIP["northcentralus"], SKIP["uksouth"]],
        ),
    ],
)
def test_pick_region_from_recorded_quota(sandbox, nodes, regions, chosen, log):
    result = sandbox.run("setup.sh", DS3, str(nodes), *regions, source='pick_region "$@"')
    assert result.returncode == (0 if chosen else 1)
    assert result.stdout == (f"{chosen}\n" if chosen else "")
    assert result.stderr.splitlines() == log
    # Every region looked at got its SKU listed; only those with the SKU got their quota read.
    assert all(c in ("vm list-skus", "vm list-usage") for c in sandbox.commands())


def test_region_check_asks_az_for_the_exact_size_and_family(sandbox):
    sandbox.run("setup.sh", DS3, "1", "westeurope", source='pick_region "$@"')
    skus, usage = sandbox.calls()
    # --all: az hides the sizes restricted for the subscription unless asked to show them.
    assert skus[:9] == [
        "vm", "list-skus", "--location", "westeurope", "--size", DS3, "--all",
        "--resource-type", "virtualMachines",
    ]  # fmt: skip
    assert skus[9:] == ["--query", sku_query(sandbox), "-o", "tsv"]
    assert usage == [
        "vm", "list-usage", "--location", "westeurope",
        "--query", usage_query(sandbox), "-o", "tsv",
    ]  # fmt: skip


def sku_query(box):
    return box.run("setup.sh", DS3, source='sku_query "$1"').stdout


def usage_query(box):
    return box.run("setup.sh", "standardDSv2Family", source='usage_query "$1"').stdout


def _az_tsv(result):
    """What `az ... -o tsv` prints for a query result: knack's _TsvOutput (knack/output.py).

    A null result prints nothing; a top-level list prints one item a line; a row that is a list
    prints its cells tab-separated, a nested list as its length, a dict as "", None as "None".
    """
    if result is None:
        return ""

    def cell(value):
        if isinstance(value, list):
            return str(len(value))
        if isinstance(value, dict):
            return ""
        return str(value)

    lines = []
    for row in result if isinstance(result, list) else [result]:
        if isinstance(row, dict):
            lines.append("\t".join(cell(v) for _, v in sorted(row.items())))
        elif isinstance(row, list):
            lines.append("\t".join(cell(v) for v in row))
        elif isinstance(row, bool):
            lines.append(str(row).lower())
        else:
            lines.append(cell(row))
    return "".join(line + "\n" for line in lines)


def test_az_tsv_prints_a_flat_list_one_item_a_line():
    # Why sku_query returns rows: `[0].[family, vcpus, n]` is one flat list, which az prints one
    # item a line, and `read family vcpus restricted` would get the family only.
    assert _az_tsv(["standardDSv2Family", "4", 0]) == "standardDSv2Family\n4\n0\n"
    assert _az_tsv([["standardDSv2Family", "4", 0]]) == "standardDSv2Family\t4\t0\n"
    assert _az_tsv(True) == "true\n"  # `az group exists -o tsv`
    assert _az_tsv(None) == ""


@pytest.mark.parametrize("region", REGIONS)
def test_recorded_tsv_is_what_the_queries_give_on_recorded_json(sandbox, region):
    jmespath = pytest.importorskip(
        "jmespath", reason="pip install jmespath to check setup.sh's JMESPath queries"
    )
    assert _az_tsv(jmespath.search(sku_query(sandbox), SKUS_JSON[region])) == SKU_TSV[region]
    usage = jmespath.search(usage_query(sandbox), USAGE_JSON[region])
    assert _az_tsv(usage) == USAGE_TSV[region]


# ---------------------------------------------------------------------------------------------
# setup.sh: whole runs
# ---------------------------------------------------------------------------------------------

READ_ONLY_PREFIX = ["account list", *["provider show"] * 4, "extension show"]


def test_setup_dry_run_prints_changes_and_runs_only_queries(sandbox_with_cli):
    box = sandbox_with_cli
    result = box.run(
        "setup.sh", "--dry-run", "--region", "westeurope", "--resource-group", "msl-test123"
    )
    assert result.returncode == 0, result.stderr
    sub = f"--subscription {SUB}"
    dry_run = [line for line in result.stdout.splitlines() if line.startswith("DRY-RUN:")]
    assert dry_run == [
        # Only Microsoft.Network is unregistered in the recorded answers.
        f"DRY-RUN: az provider register --namespace Microsoft.Network --wait {sub}",
        f"DRY-RUN: az group create --name msl-test123 --location westeurope {sub} -o none",
        # databricks-<suffix> for msl-<suffix>, as in the lab.
        "DRY-RUN: az databricks workspace create --name databricks-test123 --resource-group "
        f"msl-test123 --location westeurope --sku premium {sub} -o none",
        # The workspace does not exist yet, so its URL is a placeholder.
        f"DRY-RUN: write [penguins] to {box.config}: host = https://<url of databricks-test123>, "
        "auth_type = azure-cli",
        # The databricks CLI is on PATH and the repo has a databricks.yml: it would deploy.
        "DRY-RUN: env DATABRICKS_CONFIG_PROFILE=penguins databricks bundle deploy -t dev",
        "DRY-RUN: env DATABRICKS_CONFIG_PROFILE=penguins databricks bundle run penguin_training "
        "-t dev",
    ]
    assert box.commands() == [
        *READ_ONLY_PREFIX,
        "group exists",
        "vm list-skus",
        "vm list-usage",
        "databricks workspace show",
    ]
    assert not MUTATING & set(box.commands())
    assert box.databricks_calls() == []
    assert not box.config.exists()
    # The exact commands to run next are printed, for the lab's dev target and training job.
    assert (
        "  export DATABRICKS_CONFIG_PROFILE=penguins\n"
        "  databricks bundle deploy -t dev\n"
        "  databricks bundle run penguin_training -t dev\n"
    ) in result.stdout


def test_setup_dry_run_without_region_takes_the_first_that_fits(sandbox):
    # The fake shuf keeps setup.sh's order: centralus and eastus lack quota, eastus2 fits.
    result = sandbox.run("setup.sh", "--dry-run")
    assert result.returncode == 0, result.stderr
    dry_run = [line for line in result.stdout.splitlines() if line.startswith("DRY-RUN:")]
    group = re.fullmatch(r"DRY-RUN: az group create --name (msl-[a-z0-9]{7}) .*", dry_run[1])
    assert group, dry_run[1]
    suffix = group.group(1).removeprefix("msl-")
    assert dry_run[2].startswith(
        f"DRY-RUN: az databricks workspace create --name databricks-{suffix} "
        f"--resource-group msl-{suffix} --location eastus2 "
    )
    # A new random group is not looked up: it cannot exist yet.
    assert "group exists" not in sandbox.commands()
    region_log = [line for line in result.stderr.splitlines() if line.split(":")[0] in REGIONS]
    assert region_log == [
        SKIP["centralus"],
        SKIP["eastus"],
        "eastus2: 10 standardDSv2Family vCPUs free, 4 needed.",
    ]
    assert not MUTATING & set(sandbox.commands())
    # No databricks CLI on PATH: only the printed commands, nothing run.
    assert "The databricks CLI is not on PATH" in result.stderr


def test_setup_retries_the_next_region_when_creating_the_workspace_fails(sandbox):
    sandbox.answer(azure(unregistered=(), create_fails=("eastus2",), created=True))
    result = sandbox.run("setup.sh", "--resource-group", "msl-test123")
    assert result.returncode == 0, result.stderr
    creates = {"group create --name", "databricks workspace create"}
    changes = [argv for argv in sandbox.calls() if " ".join(argv[:3]) in creates]
    locations = [argv[argv.index("--location") + 1] for argv in changes]
    # The group is created once, in the first region that fits; the workspace is tried there,
    # then in the next one that fits (northcentralus and northeurope do not offer the size).
    assert [argv[0] for argv in changes] == ["group", "databricks", "databricks"]
    assert locations == ["eastus2", "eastus2", "westeurope"]
    assert "eastus2: creating the workspace failed; trying the next region." in result.stderr
    assert "Workspace:      databricks-test123 (westeurope)\n" in result.stdout


def test_setup_fails_when_no_region_has_quota(sandbox):
    result = sandbox.run("setup.sh", "--region", "eastus", "--resource-group", "msl-test123")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "setup.sh: error: eastus cannot host 1 x Standard_DS3_v2: pick another --region, leave it "
        "out to search centralus eastus eastus2 northcentralus northeurope westeurope westus "
        "uksouth, or ask for more quota "
        "(https://learn.microsoft.com/azure/quotas/per-vm-quota-requests)"
    )
    assert "group create" not in sandbox.commands()
    assert not sandbox.config.exists()


OLD_CONFIG = """\
[DEFAULT]
host  = https://example.invalid
token = placeholder-not-a-token

[penguins]
host  = https://old.invalid
token = placeholder-not-a-token

[other]
host = https://other.invalid
"""
# [penguins] rewritten where it stood, its stale token gone; the other sections untouched.
NEW_CONFIG = f"""\
[DEFAULT]
host  = https://example.invalid
token = placeholder-not-a-token

[penguins]
host      = https://{WORKSPACE_HOST}
auth_type = azure-cli

[other]
host = https://other.invalid
"""


def test_setup_second_run_reuses_everything_and_rewrites_the_profile(sandbox_with_cli):
    box = sandbox_with_cli
    box.answer(azure(unregistered=(), group_exists=True, workspace="databricks-test123"))
    box.config.write_text(OLD_CONFIG)
    for _ in range(2):  # running twice changes nothing more
        result = box.run("setup.sh", "--resource-group", "msl-test123")
        assert result.returncode == 0, result.stderr
        assert box.config.read_text() == NEW_CONFIG
    assert not MUTATING & set(box.commands())
    assert "Workspace databricks-test123 already exists in msl-test123; reusing it." in (
        result.stderr
    )
    assert f"Workspace URL:  https://{WORKSPACE_HOST}\n" in result.stdout
    assert "token" not in result.stdout + result.stderr
    # Each run deployed and ran the bundle from the repo root with the new profile.
    assert box.databricks_calls() == 2 * [
        f"{box.repo}|penguins|bundle deploy -t dev",
        f"{box.repo}|penguins|bundle run penguin_training -t dev",
    ]


def test_setup_no_deploy_only_prints_the_commands(sandbox_with_cli):
    box = sandbox_with_cli
    box.answer(azure(unregistered=(), group_exists=True, workspace="databricks-test123"))
    result = box.run("setup.sh", "--resource-group", "msl-test123", "--no-deploy")
    assert result.returncode == 0, result.stderr
    assert box.databricks_calls() == []
    assert "  databricks bundle deploy -t dev\n" in result.stdout
    assert box.config.stat().st_mode & 0o777 == 0o600  # a new config file is private


# ---------------------------------------------------------------------------------------------
# lib.sh: the Databricks CLI profile
# ---------------------------------------------------------------------------------------------

H = "https://" + WORKSPACE_HOST
SECTION = f"[penguins]\nhost      = {H}\nauth_type = azure-cli\n"


@pytest.mark.parametrize(
    ("before", "host", "after"),
    [
        # No file: one with the section only.
        (None, H, SECTION),
        # Other sections kept; ours appended after one blank line.
        (
            "[DEFAULT]\nhost = https://a.invalid\n",
            H,
            f"[DEFAULT]\nhost = https://a.invalid\n\n{SECTION}",
        ),
        # Ours replaced where it stands; its old keys (a token) dropped; spacing kept.
        (
            "[a]\nx = 1\n\n[penguins]\nhost = https://old.invalid\ntoken = t\n\n[b]\ny = 2\n",
            H,
            f"[a]\nx = 1\n\n{SECTION}\n[b]\ny = 2\n",
        ),
        # Spaces inside the brackets name the same section.
        ("[ penguins ]\nhost = https://old.invalid\n", H, SECTION),
        # A section whose name only starts with ours is someone else's.
        ("[penguins-prod]\nhost = p\n", H, f"[penguins-prod]\nhost = p\n\n{SECTION}"),
        # Without a host the section is removed, with the blank line that set it apart.
        (
            "[a]\nx = 1\n\n[penguins]\nhost = https://old.invalid\n\n[b]\ny = 2\n",
            "",
            "[a]\nx = 1\n\n[b]\ny = 2\n",
        ),
        ("[a]\nx = 1\n\n[penguins]\nhost = https://old.invalid\n", "", "[a]\nx = 1\n"),
        # Nothing to remove from a file that is not there: it stays absent.
        (None, "", None),
    ],
)
def test_edit_profile(sandbox, before, host, after):
    config = sandbox.home / "cfg"
    if before is not None:
        config.write_text(before)
    for _ in range(2):  # the second edit must not change the first one's result
        result = sandbox.run(
            "setup.sh", str(config), host, source='edit_profile "$1" penguins "$2"'
        )
        assert result.returncode == 0, result.stderr
        assert (config.read_text() if config.exists() else None) == after
    assert sorted(p.name for p in config.parent.iterdir()) == (["cfg"] if after else [])


# ---------------------------------------------------------------------------------------------
# cleanup.sh
# ---------------------------------------------------------------------------------------------

RESOURCES = "Microsoft.Databricks/workspaces\tdatabricks-test123\n"
DELETE = ["group", "delete", "--name", "msl-test123", "--yes"]


def test_cleanup_requires_a_resource_group(sandbox):
    result = sandbox.run("cleanup.sh", "--yes")
    assert result.returncode == 2
    assert result.stderr.splitlines()[:2] == [
        "cleanup.sh: --resource-group is required",
        "Usage: cleanup.sh --resource-group NAME [options]",
    ]
    assert sandbox.calls() == []


def test_cleanup_dry_run_prints_the_delete(sandbox):
    sandbox.answer(azure(group_exists=True, resources=RESOURCES))
    sandbox.config.write_text(OLD_CONFIG)
    result = sandbox.run(
        "cleanup.sh", "--resource-group", "msl-test123", "--profile", "penguins", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "DRY-RUN: az group delete --name msl-test123 --yes",
        f"DRY-RUN: remove [penguins] from {sandbox.config}",
    ]
    # It shows what the group holds, and asks nothing in a dry run.
    assert "  Microsoft.Databricks/workspaces\tdatabricks-test123" in result.stderr.splitlines()
    assert sandbox.commands() == ["group exists", "resource list"]
    assert sandbox.config.read_text() == OLD_CONFIG


@pytest.mark.parametrize(
    ("args", "stdin", "rc", "deleted", "profile_left", "said"),
    [
        # Nobody to answer: refuse, delete nothing, keep the profile.
        ([], None, 1, None, True,
         "cleanup.sh: error: no answer on standard input; not deleting anything "
         "(pass --yes to skip the question)"),
        # Answered no: nothing deleted, and the profile stays (its workspace is still there).
        ([], "n\n", 0, None, True, "Nothing deleted."),
        ([], "y\n", 0, DELETE, False, "+ az group delete --name msl-test123 --yes"),
        # --yes skips the question; --no-wait returns once Azure has started.
        (["--yes", "--no-wait"], None, 0, [*DELETE, "--no-wait"], False,
         "+ az group delete --name msl-test123 --yes --no-wait"),
        (["--yes", "--subscription", SUB], None, 0, [*DELETE, "--subscription", SUB], False,
         f"+ az group delete --name msl-test123 --yes --subscription {SUB}"),
    ],
)  # fmt: skip
def test_cleanup_asks_before_deleting(sandbox, args, stdin, rc, deleted, profile_left, said):
    sandbox.answer(azure(group_exists=True, resources=RESOURCES))
    sandbox.config.write_text(OLD_CONFIG)
    result = sandbox.run(
        "cleanup.sh",
        "--resource-group",
        "msl-test123",
        "--profile",
        "penguins",
        *args,
        stdin=stdin,
    )
    assert result.returncode == rc
    assert said in result.stderr.splitlines()
    deletes = [argv for argv in sandbox.calls() if argv[:2] == ["group", "delete"]]
    assert deletes == ([deleted] if deleted else [])
    text = sandbox.config.read_text()
    assert ("[penguins]" in text) is profile_left
    assert "[DEFAULT]" in text and "[other]" in text


def test_cleanup_of_a_missing_group_still_removes_the_profile(sandbox):
    sandbox.answer(azure(group_exists=False))
    sandbox.config.write_text(OLD_CONFIG)
    result = sandbox.run("cleanup.sh", "--resource-group", "msl-gone", "--profile", "penguins")
    assert result.returncode == 0, result.stderr
    assert (
        "Resource group msl-gone does not exist; nothing to delete in Azure."
        in result.stderr.splitlines()
    )
    assert result.stdout == f"Removed profile [penguins] from {sandbox.config}.\n"
    assert sandbox.commands() == ["group exists"]
    assert "[penguins]" not in sandbox.config.read_text()


# ---------------------------------------------------------------------------------------------
# shellcheck
# ---------------------------------------------------------------------------------------------


def test_shellcheck_passes_on_the_bash_scripts():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    scripts = sorted(str(p.relative_to(ROOT)) for p in SETUP.glob("*.sh"))
    assert scripts == ["setup/cleanup.sh", "setup/lib.sh", "setup/setup.sh"]
    scripts += [".ci/run", "scripts/install_horovod.sh"]  # the other bash scripts of the repo
    # -x follows `source`; the `# shellcheck source=setup/lib.sh` directives are repo-relative.
    result = subprocess.run(
        [shellcheck, "-x", *scripts], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# PowerShell: parse and static checks (no pwsh here)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ps_parser():
    tree_sitter = pytest.importorskip(
        "tree_sitter", reason="pip install tree-sitter to parse the PowerShell scripts"
    )
    grammar = pytest.importorskip(
        "tree_sitter_powershell",
        reason="pip install tree-sitter-powershell to parse the PowerShell scripts",
    )
    return tree_sitter.Parser(tree_sitter.Language(grammar.language()))


def syntax_errors(parser, source: bytes):
    """Every ERROR and MISSING node of the parse, as 'line:column type text'."""
    found, stack = [], [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            row, column = node.start_point
            text = source[node.start_byte : node.end_byte].decode(errors="replace")[:60]
            found.append(f"{row + 1}:{column + 1} {node.type} {text!r}")
        stack.extend(node.children)
    return sorted(found)


PS_SCRIPTS = sorted(SETUP.glob("*.ps1"))


def test_powershell_scripts_are_there():
    # A glob that matches nothing would let the parse tests below pass silently.
    assert [p.name for p in PS_SCRIPTS] == ["DatabricksCliProfile.ps1", "cleanup.ps1", "setup.ps1"]


@pytest.mark.parametrize("script", PS_SCRIPTS, ids=lambda p: p.name)
def test_powershell_script_parses_without_errors(ps_parser, script):
    assert syntax_errors(ps_parser, script.read_bytes()) == []


@pytest.mark.parametrize(
    "snippet",
    [
        b"if ($ok) { Write-Host 'unbalanced'\n",  # a brace never closed
        b"$regions = @('eastus', 'westus'\n",  # a parenthesis never closed
        b"function Get-X { param([string]$Name) return $Name }}\n",  # one brace too many
        b"$x = 'never closed\n",  # an unterminated string
    ],
)
def test_powershell_parse_check_rejects_broken_code(ps_parser, snippet):
    assert syntax_errors(ps_parser, snippet) != []


def test_powershell_parse_check_accepts_a_good_snippet(ps_parser):
    # The control for the test above: the same kind of code, well formed.
    snippet = b"if ($ok) { $regions = @('eastus', 'westus').Where({ $_ -ne 'westus' }) }\n"
    assert syntax_errors(ps_parser, snippet) == []


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _text(source, node):
    return source[node.start_byte : node.end_byte].decode()


def _script_parameters(parser, path):
    source = path.read_bytes()
    tree = parser.parse(source)
    block = next(n for n in tree.root_node.children if n.type == "param_block")
    names = [
        _text(source, v).lstrip("$")
        for p in _walk(block)
        if p.type == "script_parameter"
        for v in p.children
        if v.type == "variable"
    ]
    return _text(source, block), names


@pytest.mark.parametrize(
    ("script", "parameters"),
    [
        (
            "setup.ps1",
            ["Region", "ResourceGroup", "Workspace", "NodeType", "NodeCount", "ProfileName",
             "SubscriptionId", "SkipDeploy", "Force"],
        ),
        ("cleanup.ps1", ["ResourceGroup", "ProfileName", "SubscriptionId", "Force"]),
    ],
)  # fmt: skip
def test_powershell_parameters_mirror_the_bash_flags(ps_parser, script, parameters):
    block, names = _script_parameters(ps_parser, SETUP / script)
    assert names == parameters
    # -WhatIf and -Confirm come from SupportsShouldProcess; -Profile is an alias of -ProfileName
    # ($PROFILE is an automatic variable, so the parameter itself cannot be called that).
    assert block.startswith("[CmdletBinding(SupportsShouldProcess)]")
    assert "[Alias('Profile')]" in block


# Commands that change something: Azure, the config file, or the bundle's workspace.
PS_MUTATING = {
    "register-azresourceprovider",
    "new-azresourcegroup",
    "new-azdatabricksworkspace",
    "remove-azresourcegroup",
    "new-item",
    "chmod",
}

# `& $Query` runs the Get-Az* lookup handed to Get-OrNull; any other `&` runs a program.
PS_READ_ONLY_CALLS = {"$Query"}


def _changes(source, tree):
    """Nodes of commands or method calls that change something, with a name for each."""
    for node in _walk(tree.root_node):
        if node.type == "command":
            name = next((c for c in node.children if c.type == "command_name"), None)
            if name is not None and _text(source, name).lower() in PS_MUTATING:
                yield _text(source, name), node
            elif _text(source, node.children[0]) == "&":
                target = _text(source, node.children[1])
                if target not in PS_READ_ONLY_CALLS:
                    yield "& " + target, node
        elif node.type == "member_name" and _text(source, node) == "WriteAllLines":
            yield "WriteAllLines", node


def _guarded_by_should_process(source, node):
    """Whether node sits in the then-block of `if ($PSCmdlet.ShouldProcess(...)) { ... }`."""
    while node.parent is not None:
        parent = node.parent
        if node.type == "statement_block" and parent.type == "if_statement":
            condition = next(c for c in parent.children if c.type == "pipeline")
            if re.fullmatch(r"\$PSCmdlet\.ShouldProcess\(.*\)", _text(source, condition), re.S):
                return True
        node = parent
    return False


@pytest.mark.parametrize("script", PS_SCRIPTS, ids=lambda p: p.name)
def test_powershell_changes_only_under_should_process(ps_parser, script):
    # What -WhatIf promises: every change sits under a positive ShouldProcess check.
    source = script.read_bytes()
    changes = list(_changes(source, ps_parser.parse(source)))
    assert changes, "found no changing command: the check below would pass vacuously"
    unguarded = [
        f"{node.start_point[0] + 1}: {name}"
        for name, node in changes
        if not _guarded_by_should_process(source, node)
    ]
    assert unguarded == []


def test_powershell_change_check_finds_an_unguarded_change(ps_parser):
    # The control for the test above: a negated check does not guard the call after it.
    source = (
        b"if (-not $PSCmdlet.ShouldProcess('rg', 'Create')) { return }\n"
        b"New-AzResourceGroup -Name rg\n"
    )
    changes = list(_changes(source, ps_parser.parse(source)))
    assert [name for name, _ in changes] == ["New-AzResourceGroup"]
    assert not _guarded_by_should_process(source, changes[0][1])


def test_powershell_and_bash_share_the_defaults():
    # The twins must agree on what they create and where they look.
    ps = (SETUP / "setup.ps1").read_text()
    sh = (SETUP / "setup.sh").read_text()
    ps_regions = re.search(r"\$SupportedRegions = (.+)", ps).group(1)
    sh_regions = re.search(r"SUPPORTED_REGIONS=\((.+)\)", sh).group(1)
    assert re.findall(r"'(\w+)'", ps_regions) == sh_regions.split() == REGIONS
    ps_providers = re.findall(r"'([\w.]+)'", re.search(r"\$Providers = (.+)", ps).group(1))
    sh_providers = re.search(r"PROVIDERS=\((.+)\)", sh).group(1).split()
    assert ps_providers == sh_providers == PROVIDERS
    for value in ("'Standard_DS3_v2'", "'penguins'", "'dev'", "'penguin_training'", "-Sku premium"):
        assert value in ps
    assert os.access(SETUP / "setup.sh", os.X_OK) and os.access(SETUP / "cleanup.sh", os.X_OK)
