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
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from penguins.bundle import load_bundle

SETUP = Path(__file__).resolve().parents[1] / "setup"
BASH = shutil.which("bash") or "/bin/bash"
SUB = "00000000-0000-0000-0000-000000000001"
HOST = "adb-0000000000000000.0.azuredatabricks.net"  # made up: a real one has a workspace id
TAG = {"created-by": "penguin-classifier"}
CHANGES = ("az provider register", "az group create", "az databricks workspace create")
CHANGES += ("az group delete", "databricks bundle deploy", "databricks bundle destroy")
CHANGES += ("databricks model-versions delete", "databricks serving-endpoints delete")

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
# The user's dev model as `bundle summary -o json` shows it: its name from the configuration (the
# development-mode prefix added), its id, the full name, from the deployment's state.
MODEL = "databricks_1a2b3c4.default.dev_ada_penguin_classifier"


def summary(model_id=MODEL, name="dev_ada_penguin_classifier", endpoint=None):
    """`databricks bundle summary -o json`: the part cleanup.sh reads (id: None when undeployed;
    the endpoint_name variable's value, when given)."""
    model = {"catalog_name": "main", "schema_name": "default", "name": name}
    model.update({"id": model_id} if model_id else {})
    variables = {"endpoint_name": {"value": endpoint}} if endpoint else {}
    resources = {"registered_models": {"penguin_classifier": model}}
    return json.dumps({"resources": resources, "variables": variables})


def versions(*numbers):
    """`databricks model-versions list FULL_NAME -o json`, in no particular order like the API."""
    return json.dumps([{"model_name": MODEL, "version": n} for n in numbers])


CLEANUP = [
    ("az account show", {"id": SUB, "name": "Lab subscription"}),
    ("az group show", {"name": GROUP, "tags": TAG}),
    ("az resource list", [WORKSPACE]),
    ("az resource show", {"properties": {"workspaceUrl": HOST}}),
    ("az", ""),
    ("databricks bundle summary", summary()),
    ("databricks model-versions list", versions(3, 1)),
    ("databricks", ""),
]
DELETES = [f"databricks model-versions delete {MODEL} {n}" for n in (1, 3)]


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
        ("setup.sh", ["--target", "prod"], "--target: dev or scale (prod is deployed by hand"),
        ("setup.sh", ["--num-workers", "2"], "--num-workers: only for --target scale"),
        ("setup.sh", ["--target", "scale", "--num-workers", "0"], "--num-workers: a whole number"),
        ("setup.sh", ["--target", "scale", "--num-workers", "2;x"], "--num-workers: a whole num"),
        ("cleanup.sh", [], "--resource-group is required"),
        ("cleanup.sh", ["--resource-group", GROUP, "--now"], "unknown option '--now'"),
        ("cleanup.sh", ["--resource-group", GROUP, "--target", "prod"], "--target: dev or scale"),
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


# Every node is Standard_D4ds_v5, 4 vCPUs. dev: the interactive cluster and the job's, a node
# each. scale: the job's single node, plus its distribute cluster's driver and workers.
WORKERS = int(load_bundle()["variables"]["num_workers"]["default"])  # 2


@pytest.mark.parametrize(
    ("options", "needed"),
    [
        ([], 8),
        (["--target", "scale"], 4 * (2 + WORKERS)),  # 16
        (["--target", "scale", "--num-workers", "4"], 4 * (2 + 4)),  # 24
    ],
)
def test_a_region_needs_the_vcpus_of_the_chosen_target(tmp_path, options, needed):
    target = "scale" if options else "dev"
    workers = options[3] if len(options) == 4 else str(WORKERS)
    again = ["--target", "scale", "--num-workers", workers] if options else []  # printed for later
    for free in (needed, needed - 1):  # just enough, then one short
        quota = [("az vm list-usage --location westeurope", usage((0, free)))]
        args = ["--dry-run", "--region", "westeurope", *options]
        result, _ = run(tmp_path, "setup.sh", *args, answers=quota + FRESH)
        assert f"westeurope: {free} vCPUs free for Standard_D4ds_v5" in result.stderr
        assert f"{needed} needed." in result.stderr
        if free < needed:
            assert result.returncode == 1
            assert result.stderr.splitlines()[-1].startswith(
                f"setup.sh: no region of westeurope has {needed} free vCPUs for Standard_D4ds_v5"
                f" (target {target}: {needed // 4} nodes of 4 vCPUs"
            )
            continue
        assert result.returncode == 0, result.stderr
        (deploy,) = [s for s in result.stdout.splitlines() if s.startswith("DRY-RUN: env")]
        words = shlex.split(deploy)
        assert words[3:8] == ["databricks", "bundle", "deploy", "-t", target]
        assert words[8] == "--var" and words[9].startswith("catalog=")
        assert words[10:] == (["--var", f"num_workers={workers}"] if options else [])
        # What it prints for later chooses the same target, with as many workers, again.
        rerun = re.search(r"reusing all of it: +(.*)", result.stdout)[1]
        assert shlex.split(rerun)[5:] == again
        cleanup = re.search(r"when you are done: +(.*)", result.stdout)[1]
        assert shlex.split(cleanup)[5:] == again[:2]


def test_the_commands_it_prints_are_shell_quoted(tmp_path):
    # Values from Azure and from the workspace, with spaces and shell characters in them.
    sub, catalog = "sub 1; touch pwned", "lab's catalog $(touch pwned)"
    answers = [
        ("az account show", {"id": sub, "name": "Lab subscription"}),
        ("databricks metastores current", json.dumps({"default_catalog_name": catalog})),
    ]
    result, calls = run(tmp_path, "setup.sh", answers=answers + MADE + FRESH)
    assert result.returncode == 0, result.stderr
    ((deploy, _),) = [c for c in calls if c[0][1:3] == ["bundle", "deploy"]]
    assert deploy[-2:] == ["--var", f"catalog={catalog}"]
    # Each command printed for later, read back as a shell reads it, has those values whole.
    later = result.stdout.split("From the repository root:\n")[1].splitlines()
    assert [shlex.split(line.split(":  ")[-1]) for line in later] == [
        ["export", "DATABRICKS_CONFIG_PROFILE=penguins"],
        ["databricks", "bundle", "deploy", "-t", "dev", "--var", f"catalog={catalog}"],
        ["databricks", "bundle", "run", "penguin_training", "-t", "dev"],
        ["setup/setup.sh", "--subscription", sub, "--resource-group", GROUP],
        ["setup/cleanup.sh", "--subscription", sub, "--resource-group", GROUP],
    ]


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
    destroy = [*DELETES, "databricks bundle destroy -t dev --auto-approve"] if reachable else []
    assert changes(calls) == destroy + [
        f"az group delete --name {GROUP} --yes --subscription {SUB}"
    ]
    if reachable:
        (env,) = [env for argv, env in calls if argv[1:3] == ["bundle", "destroy"]]
        assert env["DATABRICKS_AZURE_RESOURCE_ID"] == WS_ID
    else:  # the volume and the model outlive the group: say so
        assert "its lab volume and registered model will outlive the group" in result.stderr


def test_cleanup_deletes_your_dev_model_versions_before_the_destroy_and_says_so(tmp_path):
    # `bundle destroy` deletes the model with a plain delete, which fails while it has versions
    # (databricks/cli#1848): the versions go first, all of them, then the destroy, then Azure.
    result, calls = run(tmp_path, "cleanup.sh", "--resource-group", GROUP, "--yes", answers=CLEANUP)
    assert result.returncode == 0, result.stderr
    assert changes(calls) == [
        f"databricks model-versions delete {MODEL} 1",
        f"databricks model-versions delete {MODEL} 3",
        "databricks bundle destroy -t dev --auto-approve",
        f"az group delete --name {GROUP} --yes --subscription {SUB}",
    ]
    # The model is the one the deployment's state names, read in that workspace, from the bundle.
    (summary_call,) = [c for c in calls if c[0][1:3] == ["bundle", "summary"]]
    assert summary_call[0][3:] == ["-t", "dev", "-o", "json"]
    assert summary_call[1]["DATABRICKS_AZURE_RESOURCE_ID"] == WS_ID
    assert result.stdout.splitlines() == [
        f"Deleted versions 1, 3 of registered model {MODEL}.",
        f"Deleted resource group {GROUP} (subscription {SUB}).",
    ]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        # Never deployed (or the model already gone): the state has no id for it.
        (summary(model_id=None), "Your deployment of dev has no registered model"),
        # The state's model is not the one the configuration names for this user.
        (summary(model_id="main.default.penguin_classifier"), "is not your development model"),
        # A name without the development-mode prefix is nobody's own dev model.
        (summary("main.default.penguins", name="penguins"), "is not your development model"),
    ],
)
def test_cleanup_deletes_the_versions_of_no_other_model(tmp_path, state, message):
    answers = [("databricks bundle summary", state)] + CLEANUP
    result, calls = run(tmp_path, "cleanup.sh", "--resource-group", GROUP, "--yes", answers=answers)
    assert result.returncode == 0, result.stderr
    assert message in result.stderr
    assert not any(argv[1] == "model-versions" for argv, _ in calls)
    assert changes(calls) == [
        "databricks bundle destroy -t dev --auto-approve",
        f"az group delete --name {GROUP} --yes --subscription {SUB}",
    ]


@pytest.mark.parametrize(
    ("failing", "changed", "message"),
    [
        (
            (f"databricks model-versions delete {MODEL} 3", "Error: PERMISSION_DENIED\n", 1),
            DELETES,
            f"could not delete version 3 of {MODEL} (the error is above; deleted before it: 1);"
            " nothing deleted in Azure",
        ),
        (
            ("databricks bundle destroy", "Error: cannot delete registered model\n", 1),
            [*DELETES, "databricks bundle destroy -t dev --auto-approve"],
            "databricks bundle destroy failed (the error is above); nothing deleted in Azure:"
            " fix it, then run cleanup again",
        ),
        (
            ("databricks bundle summary", "Error: cannot read the deployment state\n", 1),
            [],
            "could not read your deployment of dev (the error is above); nothing deleted",
        ),
    ],
)
def test_a_failure_in_the_workspace_stops_cleanup_before_azure(tmp_path, failing, changed, message):
    answers = [failing] + CLEANUP
    result, calls = run(tmp_path, "cleanup.sh", "--resource-group", GROUP, "--yes", answers=answers)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"cleanup.sh: {message}"
    assert changes(calls) == changed


def test_versions_it_cannot_list_are_left_to_the_destroy(tmp_path):
    missing = [("databricks model-versions list", "Error: model does not exist\n", 1)]
    answers = missing + CLEANUP
    result, calls = run(tmp_path, "cleanup.sh", "--resource-group", GROUP, "--yes", answers=answers)
    assert result.returncode == 0, result.stderr
    assert f"Could not list the versions of {MODEL} (the error is above)" in result.stderr
    assert changes(calls) == [
        "databricks bundle destroy -t dev --auto-approve",
        f"az group delete --name {GROUP} --yes --subscription {SUB}",
    ]


def test_cleanup_of_the_scale_target_destroys_that_one(tmp_path):
    scale = MODEL + "_scale"
    answers = [
        ("databricks bundle summary", summary(scale, name="dev_ada_penguin_classifier_scale")),
        ("databricks model-versions list", versions(1)),
    ]
    args = ["--resource-group", GROUP, "--target", "scale", "--yes"]
    result, calls = run(tmp_path, "cleanup.sh", *args, answers=answers + CLEANUP)
    assert result.returncode == 0, result.stderr
    assert [argv[3:5] for argv, _ in calls if argv[1] == "bundle"] == [["-t", "scale"]] * 2
    assert changes(calls) == [
        f"databricks model-versions delete {scale} 1",
        "databricks bundle destroy -t scale --auto-approve",
        f"az group delete --name {GROUP} --yes --subscription {SUB}",
    ]


def test_cleanup_dry_run_and_an_unanswered_question_change_nothing(tmp_path):
    result, calls = run(
        tmp_path, "cleanup.sh", "--resource-group", GROUP, "--dry-run", answers=CLEANUP
    )
    assert result.returncode == 0, result.stderr
    assert changes(calls) == []
    assert result.stdout.splitlines() == [
        f"DRY-RUN: databricks model-versions delete {MODEL} 1  # in https://{HOST}",
        f"DRY-RUN: databricks model-versions delete {MODEL} 3  # in https://{HOST}",
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


@pytest.mark.parametrize(
    ("endpoint", "exists", "deleted", "said"),
    [
        (
            "predict-penguin-dev-ada",
            True,
            True,
            "Deleted serving endpoint predict-penguin-dev-ada.",
        ),
        ("predict-penguin-dev-ada", False, False, "does not exist: none to delete"),
        ("predict-penguin", True, False, "is not your development endpoint: it stays"),
    ],
)
def test_cleanup_deletes_your_serving_endpoint_and_no_other(
    tmp_path, endpoint, exists, deleted, said
):
    # Notebook 08 creates the endpoint with the SDK, so `bundle destroy` does not know it.
    get = [] if exists else [("databricks serving-endpoints get", "Error: not found\n", 1)]
    answers = [("databricks bundle summary", summary(endpoint=endpoint)), *get, *CLEANUP]
    result, calls = run(tmp_path, "cleanup.sh", "--resource-group", GROUP, "--yes", answers=answers)
    assert result.returncode == 0, result.stderr
    delete = [f"databricks serving-endpoints delete {endpoint}"] if deleted else []
    assert changes(calls) == [
        *DELETES,
        *delete,
        "databricks bundle destroy -t dev --auto-approve",
        f"az group delete --name {GROUP} --yes --subscription {SUB}",
    ]
    assert said in result.stdout + result.stderr
