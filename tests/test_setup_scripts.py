"""setup/setup.sh and setup/cleanup.sh against a fake ``az`` and a fake ``databricks``.

There is no Azure here. The fakes come first on PATH: each logs its call (arguments and the
DATABRICKS_* environment) and answers with the first of ``answers`` whose prefix starts the
command line. An answer that is not a string is JSON shaped like the real command's; the fake
applies the script's own ``--query`` to it with jmespath and prints it as ``-o tsv`` does, so the
scripts' JMESPath queries are tested too.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup"
BASH = shutil.which("bash") or "/bin/bash"
SUB = "00000000-0000-0000-0000-000000000001"
HOST = "adb-0000000000000000.0.azuredatabricks.net"  # made up: a real one has a workspace id
TAG = {"created-by": "penguin-classifier"}
CHANGES = ("az provider register", "az group create", "az databricks workspace create")
CHANGES += ("az group delete", "databricks bundle deploy", "databricks bundle destroy")

FAKE = """#!{python}
import json, os, sys
import jmespath
call = [os.path.basename(sys.argv[0]), *sys.argv[1:]]
env = {{k: v for k, v in os.environ.items() if k.startswith("DATABRICKS_")}}
env.pop("DATABRICKS_CONFIG_FILE")
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([call, env]) + "\\n")
line = " ".join(call)
answers = [(a[0], a[1], (a[2:] or [0])[0]) for a in json.load(open(os.environ["FAKE_ANSWERS"]))]
answer, status = next(((a, s) for p, a, s in answers if line.startswith(p)), (line + "?", 9))
if "--query" in call and not isinstance(answer, str):
    answer = jmespath.search(call[call.index("--query") + 1], answer)
if not isinstance(answer, str):  # -o tsv: a row per list item; None as "None", like az
    rows = answer if isinstance(answer, list) else [answer]
    answer = "".join("\\t".join(map(str, r if isinstance(r, list) else [r])) + "\\n" for r in rows)
(sys.stdout if status == 0 else sys.stderr).write(answer)
sys.exit(status)
"""
GROUP, WS = "msl-1a2b3c4", "databricks-1a2b3c4"
WS_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{GROUP}/providers/Microsoft.Databricks/workspaces/{WS}"
)


def sku(*restrictions):
    """`az vm list-skus --size Standard_D4ds_v5`: it matches by prefix, so a Promo size comes."""
    return [
        {"name": "Standard_D4ds_v5", "restrictions": [{"type": kind} for kind in restrictions]},
        {"name": "Standard_D4ds_v5_Promo", "restrictions": []},
    ]


def usage(family, cores=(4, 100)):
    """`az vm list-usage`: (used, limit) of the DDSv5 family (None: no row) and of all cores."""
    rows = {"cores": cores, "standardDSv2Family": (0, 100), "standardDDSv5Family": family}
    return [
        {"name": {"value": k}, "currentValue": v[0], "limit": v[1]} for k, v in rows.items() if v
    ]


# A subscription where nothing exists yet and, of the lab's regions, only westeurope can host a
# dev deploy (8 vCPUs): whatever region setup.sh starts from, it must end there.
FRESH = [
    ("az account show", {"id": SUB, "name": "Lab subscription"}),
    ("az account list-locations", [{"name": r} for r in ("westeurope", "eastus", "uksouth")]),
    ("az extension show", ""),
    ("az provider show --namespace Microsoft.Databricks", {"registrationState": "NotRegistered"}),
    ("az provider show", {"registrationState": "Registered"}),
    ("az group list", [{"name": "someone-else", "tags": None}]),
    ("az group exists", True),
    ("az vm list-skus --location northcentralus", []),  # not offered
    ("az vm list-skus --location westus", sku("Location")),  # restricted for this subscription
    ("az vm list-skus --location westeurope", sku("Zone")),  # a Zone restriction does not count
    ("az vm list-skus", sku()),
    ("az vm list-usage --location westeurope", usage((0, 10))),  # 10 free
    ("az vm list-usage --location eastus", usage((4, 10))),  # family: 6 free
    ("az vm list-usage --location uksouth", usage((0, 10), cores=(96, 100))),  # region: 4 free
    ("az vm list-usage", usage(None)),  # no quota for the family
    (
        "az databricks workspace show",
        {"provisioningState": "Succeeded", "workspaceUrl": HOST, "id": WS_ID},
    ),
    ("databricks --version", "Databricks CLI v0.240.0\n"),
    ("databricks metastores current", '{"default_catalog_name": "databricks_1a2b3c4"}'),
    ("az", ""),  # every other az command (provider register, group create, ...) succeeds
    ("databricks", ""),
]
# What setup.sh made before: the tagged group with its workspace.
MADE = [
    ("az group list", [{"name": GROUP, "tags": TAG}, {"name": "rg-other", "tags": None}]),
    ("az databricks workspace list", [{"name": WS}]),
]
WORKSPACE = {"type": "Microsoft.Databricks/workspaces", "name": WS, "id": WS_ID, "tags": TAG}
STORAGE = {"type": "Microsoft.Storage/storageAccounts", "name": "mydata", "id": "/x", "tags": None}
CLEANUP = [
    ("az account show", {"id": SUB, "name": "Lab subscription"}),
    ("az group show", {"name": GROUP, "tags": TAG}),
    ("az resource list", [WORKSPACE]),
    ("az resource show", {"properties": {"workspaceUrl": HOST}}),
    ("az", ""),
    ("databricks", ""),
]


def run(tmp_path, script, *args, answers=FRESH):
    """Run setup/<script> with nothing on stdin; its result and the fakes' calls, [argv, env]."""
    fakes, log = tmp_path / "bin", tmp_path / "calls.log"
    fakes.mkdir(exist_ok=True)
    for name in ("az", "databricks"):
        (fakes / name).write_text(FAKE.format(python=sys.executable))
        (fakes / name).chmod(0o755)
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    log.unlink(missing_ok=True)
    # A clean environment: no DATABRICKS_* from the developer's shell, no test-session settings.
    env = {
        "PATH": f"{fakes}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "FAKE_LOG": str(log),
        "FAKE_ANSWERS": str(tmp_path / "answers.json"),
        "DATABRICKS_CONFIG_FILE": str(tmp_path / "databrickscfg"),
    }
    command = [BASH, str(SETUP / script), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def changes(calls):
    """The calls that would change something, as command lines."""
    lines = [" ".join(argv) for argv, _ in calls]
    return [line for line in lines if line.startswith(CHANGES)]


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("setup.sh", ["--bogus"], "unknown option '--bogus'"),
        ("setup.sh", ["--region"], "--region needs a value"),
        ("setup.sh", ["--region", "West Europe"], "--region: a name such as westeurope"),
        ("setup.sh", ["--resource-group", "msl/x"], "--resource-group: up to 90 letters"),
        ("setup.sh", ["--profile", "a b"], "--profile: letters, digits"),
        ("cleanup.sh", [], "--resource-group is required"),
        ("cleanup.sh", ["--resource-group", GROUP, "--now"], "unknown option '--now'"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(tmp_path, script, args, message):
    result, calls = run(tmp_path, script, *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{script}: {message}") and len(result.stderr.splitlines()) == 1
    assert calls == []


def test_dry_run_prints_every_change_and_makes_none(tmp_path):
    result, calls = run(tmp_path, "setup.sh", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert changes(calls) == [] and not (tmp_path / "databrickscfg").exists()
    group = re.search(r"--name (msl-[0-9a-f]{7}) --location", result.stdout)[1]
    ws = "databricks-" + group[4:]
    sub, tag = f"--subscription {SUB}", "--tags created-by=penguin-classifier"
    assert [line for line in result.stdout.splitlines() if line.startswith("DRY-RUN")] == [
        f"DRY-RUN: az provider register --namespace Microsoft.Databricks --wait {sub}",
        f"DRY-RUN: az group create --name {group} --location westeurope {tag} {sub} -o none",
        f"DRY-RUN: az databricks workspace create --name {ws} --resource-group {group}"
        f" --location westeurope --sku premium {tag} {sub} -o none",
        f"DRY-RUN: write [penguins] to {tmp_path}/databrickscfg: host = https://<URL of {ws}>,"
        f" auth_type = azure-cli, azure_workspace_resource_id = <resource id of {ws}>",
        "DRY-RUN: env DATABRICKS_CONFIG_PROFILE=penguins databricks bundle deploy -t dev"
        rf" --var catalog=\<default\ catalog\ of\ {ws}\>",
    ]
    # The commands it prints for later name the subscription.
    assert f"setup/setup.sh {sub} --resource-group {group}" in result.stdout
    assert f"setup/cleanup.sh {sub} --resource-group {group}" in result.stdout


@pytest.mark.parametrize(
    ("region", "why"),
    [
        ("westeurope", "westeurope: 10 vCPUs free"),
        ("eastus", "eastus: 6 vCPUs free"),  # family: 10 - 4
        ("uksouth", "uksouth: 4 vCPUs free"),  # region total: 100 - 96
        ("centralus", "centralus: 0 vCPUs free"),  # no family quota at all
        ("westus", "Standard_D4ds_v5 is restricted for this subscription"),
        ("northcentralus", "Standard_D4ds_v5 is not offered"),
    ],
)
def test_a_region_needs_the_vm_size_and_8_free_vcpus(tmp_path, region, why):
    known = [("az account list-locations", [{"name": region}])]
    result, _ = run(tmp_path, "setup.sh", "--dry-run", "--region", region, answers=known + FRESH)
    assert why in result.stderr
    if region == "westeurope":
        assert result.returncode == 0
    else:
        assert result.returncode == 1
        assert result.stderr.splitlines()[-1].startswith(f"setup.sh: no region of {region} has 8")


def test_an_unknown_region_is_its_own_error(tmp_path):
    result, calls = run(tmp_path, "setup.sh", "--dry-run", "--region", "marsnorth")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "setup.sh: unknown region 'marsnorth' ('az account list-locations -o table' lists them)"
    )
    assert not any(argv[1] == "vm" for argv, _ in calls)


def test_setup_tags_what_it_creates_writes_an_azure_cli_profile_and_deploys(tmp_path):
    config = tmp_path / "databrickscfg"
    config.write_text(
        "[other]\nhost = https://x.invalid\ntoken = keep\n\n[penguins]\ntoken = old\n"
    )
    result, calls = run(tmp_path, "setup.sh", "--region", "westeurope")
    assert result.returncode == 0, result.stderr
    made = changes(calls)
    assert [line.split(" --")[0] for line in made] == [
        "az provider register",
        "az group create",
        "az databricks workspace create",
        "databricks bundle deploy -t dev",
    ]
    assert all("--tags created-by=penguin-classifier" in line for line in made[1:3])
    # [penguins] is replaced whole, so its old token is gone; [other] stays as it was.
    profile = configparser.ConfigParser(interpolation=None)
    profile.read(config)
    assert dict(profile["penguins"]) == {
        "host": f"https://{HOST}",
        "auth_type": "azure-cli",
        "azure_workspace_resource_id": WS_ID,
    }
    assert dict(profile["other"]) == {"host": "https://x.invalid", "token": "keep"}
    # The catalog is the workspace's, read with Azure CLI sign-in; the deploy uses the profile.
    (metastore_env,) = [env for argv, env in calls if argv[1:3] == ["metastores", "current"]]
    assert metastore_env["DATABRICKS_AUTH_TYPE"] == "azure-cli"
    assert metastore_env["DATABRICKS_HOST"] == f"https://{HOST}"
    ((deploy, deploy_env),) = [c for c in calls if c[0][1:3] == ["bundle", "deploy"]]
    assert deploy[-2:] == ["--var", "catalog=databricks_1a2b3c4"]
    assert deploy_env == {"DATABRICKS_CONFIG_PROFILE": "penguins"}


def test_running_setup_again_reuses_the_tagged_group_and_workspace(tmp_path):
    result, calls = run(tmp_path, "setup.sh", "--no-deploy", answers=MADE + FRESH)
    assert result.returncode == 0, result.stderr
    assert changes(calls) == [
        f"az provider register --namespace Microsoft.Databricks --wait --subscription {SUB}"
    ]
    assert f"Reusing workspace {WS} in {GROUP}" in result.stderr
    assert f"Workspace {WS} (https://{HOST}), resource group {GROUP}" in result.stdout


def test_a_failed_workspace_creation_names_the_group_it_leaves(tmp_path):
    failing = [("az databricks workspace create", "ERROR: InvalidParameter\n", 1)]
    result, _ = run(tmp_path, "setup.sh", "--no-deploy", answers=failing + FRESH)
    assert result.returncode == 1
    group = re.search(r"resource group (msl-\w{7})", result.stderr)[1]
    assert result.stderr.splitlines()[-1] == (
        f"setup.sh: creating workspace databricks-{group[4:]} failed (Azure's error is above);"
        f" it leaves resource group {group} behind: setup/cleanup.sh --subscription {SUB}"
        f" --resource-group {group}"
    )


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (
            ("Databricks CLI v0.230.0\n", 0),
            "Databricks CLI v0.230.0 is too old: bundles with volumes",
        ),
        (("command not found\n", 127), "the Databricks CLI is not installed"),
    ],
)
def test_deploying_needs_databricks_cli_0_236(tmp_path, version, message):
    result, calls = run(tmp_path, "setup.sh", answers=[("databricks --version", *version)] + FRESH)
    assert result.returncode == 2
    assert result.stderr.startswith(f"setup.sh: {message}")
    assert [argv for argv, _ in calls] == [["databricks", "--version"]]


def test_without_a_unity_catalog_default_catalog_it_does_not_deploy(tmp_path):
    hive = [("databricks metastores current", '{"default_catalog_name": "hive_metastore"}')]
    result, calls = run(tmp_path, "setup.sh", answers=MADE + hive + FRESH)
    assert result.returncode == 1
    assert "has no Unity Catalog default catalog: deploy with --var catalog=" in result.stderr
    assert not any(line.startswith("databricks bundle") for line in changes(calls))


@pytest.mark.parametrize("reachable", [True, False])
def test_cleanup_destroys_the_bundle_first_then_deletes_the_group(tmp_path, reachable):
    me = [("databricks current-user me", "", 0 if reachable else 1)]
    result, calls = run(
        tmp_path, "cleanup.sh", "--resource-group", GROUP, "--yes", answers=me + CLEANUP
    )
    assert result.returncode == 0, result.stderr
    destroy = ["databricks bundle destroy -t dev --auto-approve"] if reachable else []
    assert changes(calls) == destroy + [
        f"az group delete --name {GROUP} --yes --subscription {SUB}"
    ]
    if reachable:
        (env,) = [env for argv, env in calls if argv[1:3] == ["bundle", "destroy"]]
        assert env["DATABRICKS_AZURE_RESOURCE_ID"] == WS_ID
    else:  # the volume outlives the group: say so
        assert "its lab volume will outlive the group" in result.stderr


def test_cleanup_dry_run_and_an_unanswered_question_change_nothing(tmp_path):
    result, calls = run(
        tmp_path, "cleanup.sh", "--resource-group", GROUP, "--dry-run", answers=CLEANUP
    )
    assert result.returncode == 0, result.stderr
    assert changes(calls) == []
    assert result.stdout.splitlines() == [
        f"DRY-RUN: databricks bundle destroy -t dev --auto-approve  # in https://{HOST}",
        f"DRY-RUN: az group delete --name {GROUP} --yes --subscription {SUB}",
    ]
    result, calls = run(tmp_path, "cleanup.sh", "--resource-group", GROUP, answers=CLEANUP)
    assert result.returncode == 1
    assert "no answer on standard input; nothing deleted" in result.stderr
    assert changes(calls) == []


@pytest.mark.parametrize(
    ("group_tags", "message"),
    [
        # A group the user named for setup.sh: cleanup offers to delete only the workspace.
        (None, "has no tag created-by=penguin-classifier: setup.sh did not make it, so it stays"),
        # setup.sh's group, with something else put in it since.
        (TAG, "holds what setup.sh did not make: mydata (Microsoft.Storage/storageAccounts)"),
    ],
)
def test_cleanup_refuses_a_group_it_did_not_make_wholly(tmp_path, group_tags, message):
    mixed = [("az group show", {"tags": group_tags}), ("az resource list", [WORKSPACE, STORAGE])]
    result, calls = run(
        tmp_path, "cleanup.sh", "--resource-group", GROUP, "--yes", answers=mixed + CLEANUP
    )
    assert result.returncode == 1
    assert message in result.stderr.splitlines()[-1]
    assert changes(calls) == []
    if group_tags is None:
        assert result.stdout == (
            f"To delete just workspace {WS}: az databricks workspace delete"
            f" --resource-group {GROUP} --name {WS} --subscription {SUB}\n"
        )


def test_cleanup_that_cannot_see_the_group_changes_nothing(tmp_path):
    missing = [("az group show", "ERROR: Resource group 'msl-gone' could not be found.\n", 3)]
    result, calls = run(
        tmp_path, "cleanup.sh", "--resource-group", "msl-gone", answers=missing + CLEANUP
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"cleanup.sh: cannot see resource group msl-gone in subscription {SUB}; nothing changed"
    )
    assert changes(calls) == []


def test_shellcheck():
    scripts = sorted(f"setup/{path.name}" for path in SETUP.glob("*.sh"))
    assert scripts == ["setup/cleanup.sh", "setup/lib.sh", "setup/setup.sh"]
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    # From the repository root, where the scripts' `# shellcheck source=setup/lib.sh` points.
    result = subprocess.run(
        ["shellcheck", *scripts], capture_output=True, text=True, cwd=SETUP.parent
    )
    assert result.returncode == 0, result.stdout
