"""The ``penguins`` command: run the job locally, predict, benchmark, submit to Databricks."""

from __future__ import annotations

import errno
import json
import shlex
import shutil
import sys
import sysconfig
import time
from pathlib import Path

from penguin_classifier.errors import PenguinInputError, PenguinRunError

from .arguments import (
    OneLineParser,
    comma_list,
    measurement,
    name_value,
    positive_int,
    positive_number,
)

# What the machine refuses about a path (not a bug of this code): one line naming the path.
# A missing file is not among them: the code checks for those itself, so one here is a bug.
PATH_ERRORS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR,
    errno.ELOOP, errno.ENOSPC, errno.EDQUOT,
}  # fmt: skip


def cmd_run(args) -> int:
    from penguin_classifier.lab import Lab

    from .jobs import from_tasks, local_tasks, only_tasks, rerun_keys
    from .runner import run_tasks

    variables = dict(args.var)
    if args.source is not None:
        variables["source_url"] = args.source
    parameters = {} if args.lab_dir is None else {"lab_dir": args.lab_dir}
    overrides = dict(args.param)
    for name, value in (("epochs", args.epochs), ("seed", args.seed)):
        if value is not None:
            overrides[name] = str(value)
    start = time.perf_counter()
    job = local_tasks(variables, args.target, parameters, job=args.job)
    tasks = job
    if args.only:
        tasks = only_tasks(job, args.only)
    if args.start:
        tasks = from_tasks(job, args.start)
    print(f"{args.job} tasks (databricks.yml): " + " -> ".join(t.key for t in tasks))

    def rerun(failed: str, notebook: str) -> str | None:
        keys = rerun_keys(job, tasks, failed, notebook)
        return rerun_command(args, keys, [t.key for t in job]) if keys else None

    results = run_tasks(tasks, overrides, rerun=rerun)
    print_cell_times(results)
    print("\n===== summary =====")
    for result in results:
        print(f"{result.key:<12} {result.seconds:6.1f} s")
    print(f"{'total':<12} {time.perf_counter() - start:6.1f} s (Spark start-up included)")
    print_outcome(Lab(overrides.get("lab_dir") or tasks[0].params["lab_dir"]), results)
    return 0


def print_outcome(lab, results) -> None:
    """What the tasks that ran (``results``) left in ``lab``: accuracies, the new penguin's
    species, the figures, where MLflow keeps the runs."""
    from penguin_classifier.jsonfile import read_json

    ran = {result.key for result in results}
    if "distribute" in ran and lab.distributed_metrics.exists():
        d = read_json(lab.distributed_metrics)
        print(
            f"distributed ({d['backend']}, {d['num_processes']} processes): test accuracy "
            f"{d['accuracy']:.4f}, {d['wall_s']:.1f} s"
        )
    if "evaluate" in ran and lab.evaluation.exists():
        evaluation = read_json(lab.evaluation)
        new = evaluation["new_penguin"]
        print(f"test accuracy: {evaluation['accuracy']:.4f} on {evaluation['rows']} held-out rows")
        print(f"new penguin {new['input']}: {new['species']}")
        print(f"figures: {lab.loss_plot}, {lab.confusion_plot}")
        if warning := did_not_learn(evaluation):
            print(warning)
    if ran & {"train", "evaluate", "distribute"}:
        from penguin_classifier import tracking

        if record := tracking.recorded(lab):
            print_tracking(record)


def program(name: str) -> str:
    """How to start this environment's command ``name`` from here, as a user types it: its name
    where PATH finds this one (an activated .venv), else its path (``.venv/bin/penguins``
    under the project, where ``make`` puts it)."""
    path = Path(sysconfig.get_path("scripts")) / name
    found = shutil.which(name)
    if not path.is_file() or (found and Path(found).resolve() == path.resolve()):
        return name
    return str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


def run_options(args) -> list[str]:
    """The options of this ``penguins run`` but the tasks it runs (``--only``, ``--from``)."""
    options = [] if args.job == "penguin_training" else ["--job", args.job]
    for option, value in (("--lab-dir", args.lab_dir), ("--source", args.source)):
        options += [option, value] if value is not None else []
    options += [x for name, value in args.var for x in ("--var", f"{name}={value}")]
    options += [] if args.target == "dev" else ["--target", args.target]
    for option, value in (("--epochs", args.epochs), ("--seed", args.seed)):
        options += [option, str(value)] if value is not None else []
    return options + [x for name, value in args.param for x in ("--param", f"{name}={value}")]


def rerun_command(args, keys: list[str], job: list[str]) -> str:
    """This ``penguins run`` for the tasks ``keys`` of the job's tasks ``job``: ``--from
    <first>`` when they are the first and every later task, else ``--only <keys>``."""
    tasks = ["--from", keys[0]] if keys == job[job.index(keys[0]) :] else ["--only", ",".join(keys)]
    return shlex.join([program("penguins"), "run", *run_options(args), *tasks])


def did_not_learn(evaluation: dict) -> str | None:
    """A warning when the held-out accuracy is no better than always answering the species
    commonest among the held-out rows (``evaluation.json``'s support): a model that did not
    learn (a learning rate far too large, too few epochs) still trains to finite weights."""
    support = {name: row["support"] for name, row in evaluation["per_species"].items()}
    commonest = max(support, key=support.get)
    baseline = support[commonest] / evaluation["rows"]
    if evaluation["accuracy"] > baseline:
        return None
    return (
        f"WARNING: test accuracy {evaluation['accuracy']:.4f} is no better than always "
        f"answering the commonest species, {commonest} ({baseline:.4f}): the model did not "
        "learn; check lr and epochs"
    )


def print_cell_times(results) -> None:
    """Every cell's time, by its title, task by task: once, after the last task."""
    print("\n===== time per cell =====")
    for result in results:
        print(f"{result.key} ({result.seconds:.1f} s)")
        for title, seconds in result.cells:
            print(f"  {seconds:6.2f} s  {title}")


def print_tracking(record: dict) -> None:
    """Where the tracked stages' ``mlflow.json`` (:func:`tracking.recorded`) say the runs and
    the registered model are."""
    print(f"MLflow runs: experiment {record['experiment']} in {record['tracking_uri']}")
    for stage, key in (("04_train", "train_run_id"), ("06_distribute", "distribute_run_id")):
        if record.get(key):
            print(f"  {stage:<13} run {record[key]}")
    if record.get("version"):
        alias = f" (@{record['alias']})" if record["alias"] else " (no alias: below min_accuracy)"
        print(f"registered model: {record['registered_model']} version {record['version']}{alias}")
    if record["tracking_uri"].startswith("sqlite:"):
        uri = shlex.quote(record["tracking_uri"])
        print(f"browse them: {program('mlflow')} ui --backend-store-uri {uri}")


def cmd_predict(args) -> int:
    from penguin_classifier.lab import Lab
    from penguin_classifier.predict import Penguin, predict

    penguin = Penguin(
        args.island, args.culmen_length, args.culmen_depth, args.flipper_length, args.body_mass
    )
    if args.endpoint:
        from .serve import predict_endpoint

        species, probabilities = predict_endpoint(args.endpoint, args.profile, penguin)
    elif args.model_uri:
        from penguin_classifier import registry, tracking

        tracking.configure(Lab(args.lab_dir), experiment=None)  # the local store beside it
        species, probabilities = registry.classify_with(args.model_uri, penguin)
    else:
        species, probabilities = predict(Lab(args.lab_dir), penguin)
    if args.json:
        print(json.dumps({"species": species, "probabilities": probabilities}))
    else:
        print(species)
        for name, p in probabilities.items():
            print(f"  {name:<10} {p:.4f}")
    return 0


def cmd_bench_loop(args) -> int:
    from .bench import bench, format_bench

    result = bench(args.epochs, args.seed, repeat=args.repeat)
    print(json.dumps(result) if args.json else format_bench(result))
    return 0


def cmd_bench_accuracy(args) -> int:
    from .bench import seed_accuracies

    rows = seed_accuracies(args.seeds, args.epochs, log=None if args.json else print)
    accuracies = [r["accuracy"] for r in rows]
    summary = {"seeds": rows, "mean": sum(accuracies) / len(rows), "min": min(accuracies)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"mean {summary['mean']:.4f}  min {summary['min']:.4f} over {len(rows)} seeds")
    return 0


def cmd_bench_distributed(args) -> int:
    from .bench_distributed import HEADER, bench_distributed

    if not args.json:
        print(HEADER)
    rows = bench_distributed(args.epochs, log=None if args.json else print)
    if args.json:
        print(json.dumps(rows))
    return 0


def cmd_bench_seed_lab(args) -> int:
    from .bench_seed_lab import bench_seed_lab, format_seed_lab

    result = bench_seed_lab(args.repeat)
    print(json.dumps(result) if args.json else format_seed_lab(result))
    return 0


def cmd_bench_scoring(args) -> int:
    from penguin_classifier import tracking
    from penguin_classifier.lab import Lab
    from penguin_classifier.runtime import local_spark

    from .bench_scoring import bench_scoring, bench_scoring_job

    tracking.configure(Lab(args.lab_dir), experiment=None)
    # The job first, each run in a process of its own, before this one starts Spark.
    job = bench_scoring_job(args.rows, args.lab_dir, args.model_uri, args.repeat)
    spark = local_spark("penguins-bench-scoring")
    result = {**bench_scoring(spark, args.rows, args.model_uri, args.repeat), "job": job}
    print(json.dumps(result) if args.json else format_scoring(result, args.model_uri))
    return 0


def cmd_bench_serving(args) -> int:
    from .serve import bench_serving, format_serving

    result = bench_serving(
        args.lab_dir, args.model_uri, args.clients, args.seconds, args.max_requests
    )
    print(json.dumps(result) if args.json else format_serving(result))
    return 0


def format_scoring(result: dict, model_uri: str) -> str:
    rows, repeat, job = result["rows"], result["repeat"], result["job"]
    lines = [
        f"the penguin_scoring job on {rows:,} rows with {model_uri}, median of {repeat}:",
        f"  {job['wall_s']:6.2f} s  wall, from a new process to the job's end "
        f"({rows / job['wall_s']:,.0f} rows/s)",
        f"  {job['spark_start_s']:6.2f} s  starting Spark",
    ]
    for (title, seconds), (_, again) in zip(job["cells_s"], job["again_cells_s"], strict=True):
        lines.append(f"  {seconds:6.2f} s  {title}  (again: {again:.2f} s)")
    lines += [
        f"  again in the same process, Spark and its Python workers started: "
        f"{job['again_work_s']:.2f} s from the read on, {job['again_rows_per_s']:,} rows/s",
        f"scoring alone, {rows:,} rows in memory, {result['partitions']} partitions, "
        f"median of {repeat} (warm-up apart: Python workers started, the model built in each):",
    ]
    rows_of = [
        (
            "model_udf",
            f"notebook 07's pandas UDF, Arrow batches of {result['batch_rows']:,}",
        ),
        (
            "default_batch",
            f"the same, batches of {result['default_batch_rows']:,} (Spark's default)",
        ),
        ("spark_udf", f"mlflow.pyfunc.spark_udf, batches of {result['batch_rows']:,}"),
        ("pandas", "pandas, one predict call of the pyfunc on the driver"),
    ]
    for name, what in rows_of:
        warmup = result["warmup_s"].get(name)
        after = f" (warm-up {warmup:.2f} s)" if warmup is not None else ""
        speed, seconds = result[f"{name}_rows_per_s"], result[f"{name}_s"]
        lines.append(f"  {speed:>10,} rows/s ({seconds:.2f} s)  {what}{after}")
    return "\n".join(lines)


def cmd_validate(args) -> int:
    from pathlib import Path

    from .bundle import bundle_file, load_bundle
    from .bundle_checks import check_bundle, load_schema, schema_problems

    path = Path(args.bundle) if args.bundle else bundle_file()
    if not path.is_file():
        raise PenguinInputError(f"{path} not found")
    config = load_bundle(path)
    problems = check_bundle(config, path.parent)
    checked = "consistency"
    if args.schema:
        if not Path(args.schema).is_file():
            raise PenguinInputError(f"--schema {args.schema} not found")
        problems += schema_problems(config, load_schema(Path(args.schema)))
        checked += " and JSON schema"
    for problem in problems:
        print(f"{path.name}: {problem}")
    print(f"{path.name}: {checked} checked, {len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_serve(args) -> int:
    from .serve import serve

    return serve(args)


def cmd_submit(args) -> int:
    from . import submit

    return submit.main(args)


def add_bench(sub) -> None:
    """``penguins bench MODE``: a subcommand per benchmark, each with only its own options;
    ``penguins bench`` alone lists them."""
    bench = sub.add_parser(
        "bench",
        help="benchmarks: penguins bench loop|accuracy|distributed|seed-lab|scoring|serving",
        description="Benchmarks, one a MODE; the figures measured so far: docs/benchmarks.md.",
    )

    def list_modes(_args) -> int:
        bench.print_help()
        return 0

    bench.set_defaults(func=list_modes)
    modes = bench.add_subparsers(title="modes", metavar="MODE")

    def mode(name: str, what: str, func, *shared: OneLineParser) -> OneLineParser:
        parser = modes.add_parser(name, help=what, description=what, parents=shared)
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.set_defaults(func=func, command=f"bench {name}")  # errors: "penguins bench NAME: "
        return parser

    epochs = OneLineParser(add_help=False)
    epochs.add_argument(
        "--epochs", type=positive_int, default=100, help="training epochs (default: 100)"
    )
    repeat = OneLineParser(add_help=False)
    repeat.add_argument(
        "--repeat",
        type=positive_int,
        default=3,
        metavar="N",
        help="run each N times, in turn; report the median (default: 3)",
    )
    model = OneLineParser(add_help=False)
    model.add_argument(
        "--model-uri",
        default="models:/penguin_classifier@champion",
        help="the model (default: %(default)s)",
    )
    model.add_argument(
        "--lab-dir", default="lab", help="lab folder whose MLflow store to use (default: lab)"
    )

    loop = mode(
        "loop",
        "the lab's training loop against notebook 04's and the autograd floor (make bench)",
        cmd_bench_loop,
        epochs,
        repeat,
    )
    loop.add_argument(
        "--seed", type=int, default=0, help="seed of the split and initial weights (default: 0)"
    )
    accuracy = mode(
        "accuracy",
        "held-out accuracy at the default parameters, one lab folder a seed",
        cmd_bench_accuracy,
        epochs,
    )
    accuracy.add_argument(
        "--seeds", type=positive_int, default=5, metavar="N", help="seeds 0..N-1 (default: 5)"
    )
    mode(
        "distributed",
        "1 process against 2 per backend, on the lab's data and on a x100 training set",
        cmd_bench_distributed,
        epochs,
    )
    mode(
        "seed-lab",
        "penguins run (make run) against the seed lab's own cells (ingest, prepare, 100 "
        "epochs), each a new process, in turn",
        cmd_bench_seed_lab,
        repeat,
    )
    scoring = mode(
        "scoring",
        "the scoring job cell by cell, and rows/s scoring with Spark against one pandas call "
        "(needs a registered model: run penguins run first)",
        cmd_bench_scoring,
        repeat,
        model,
    )
    scoring.add_argument(
        "--rows", type=positive_int, default=1_000_000, help="rows to score (default: 1000000)"
    )
    serving = mode(
        "serving",
        "requests/s and latency of the local scoring server, 1-row and 1,000-row requests "
        "(needs a registered model)",
        cmd_bench_serving,
        model,
    )
    serving.add_argument(
        "--clients", type=positive_int, default=4, help="concurrent clients (default: 4)"
    )
    serving.add_argument(
        "--seconds",
        type=positive_number,
        default=10,
        help="seconds of load per request size (default: 10)",
    )
    serving.add_argument(
        "--max-requests",
        type=positive_int,
        default=20_000,
        help="requests per request size (default: 20000)",
    )


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="penguins", description="Penguin species classifier: the Databricks deep learning lab."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="run the job of databricks.yml locally: its tasks, order and parameters"
    )
    run.add_argument(
        "--job",
        default="penguin_training",
        help="job of databricks.yml: penguin_training (default) or penguin_scoring",
    )
    run.add_argument("--lab-dir", help="lab folder (default: ./lab)")
    tasks = run.add_mutually_exclusive_group()
    tasks.add_argument(
        "--only",
        type=comma_list,
        metavar="STAGE[,STAGE]",
        help="run only these tasks of the job, in its order, e.g. --only prepare,model",
    )
    tasks.add_argument(
        "--from",
        dest="start",
        metavar="STAGE",
        help="run this task and every later task of the job, in its order, e.g. --from model",
    )
    run.add_argument("--source", help="source CSV: path or http(s) URL (default: shipped data)")
    run.add_argument(
        "--var",
        type=name_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable of databricks.yml (repeatable), e.g. --var distribute_backend=torch",
    )
    run.add_argument("--target", default="dev", help="bundle target (default: dev)")
    run.add_argument("--epochs", type=int, help="training epochs, 1 to 100000 (default: 100)")
    run.add_argument(
        "--seed", type=int, help="seed of the split and weights, 0 to 2**32 - 1 (default: 0)"
    )
    run.add_argument(
        "--param",
        type=name_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set this widget in every stage that has it (repeatable)",
    )
    run.set_defaults(func=cmd_run)

    predict = sub.add_parser("predict", help="species of one penguin from its measurements")
    predict.add_argument("--lab-dir", default="lab", help="lab folder with a trained model")
    predict.add_argument("--island", required=True, help="Biscoe, Dream or Torgersen")
    for name, unit in (
        ("--culmen-length", "MM"),
        ("--culmen-depth", "MM"),
        ("--flipper-length", "MM"),
        ("--body-mass", "G"),
    ):
        predict.add_argument(name, type=measurement, required=True, metavar=unit)
    predict.add_argument(
        "--model-uri",
        metavar="URI",
        help="a logged or registered MLflow model instead of the lab folder's weights, e.g. "
        "models:/penguin_classifier@champion (the local store is the one beside --lab-dir)",
    )
    predict.add_argument(
        "--endpoint",
        metavar="NAME",
        help="ask this Databricks serving endpoint (08_serve deploys it) instead, e.g. "
        "predict-penguin-dev-<you>",
    )
    predict.add_argument("--profile", help="Databricks CLI profile for --endpoint")
    predict.add_argument("--json", action="store_true", help="print one JSON object")
    predict.set_defaults(func=cmd_predict)

    add_bench(sub)

    serve = sub.add_parser(
        "serve", help="serve a registered model over HTTP on localhost (MLflow's scoring server)"
    )
    serve.add_argument("--model-uri", default="models:/penguin_classifier@champion")
    serve.add_argument("--port", type=positive_int, default=5000)
    serve.add_argument("--lab-dir", default="lab", help="lab folder whose MLflow store to use")
    serve.set_defaults(func=cmd_serve)

    validate = sub.add_parser(
        "validate", help="check databricks.yml: single node, notebooks, widgets, the task chain"
    )
    validate.add_argument("--bundle", help="bundle file (default: the project's databricks.yml)")
    validate.add_argument("--schema", help="also validate against this bundle JSON schema file")
    validate.set_defaults(func=cmd_validate)

    from .submit import add_arguments as add_submit_arguments

    submit = sub.add_parser("submit", help="start the deployed Databricks job and follow it")
    add_submit_arguments(submit)
    submit.set_defaults(func=cmd_submit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PenguinInputError as err:
        print(f"penguins {args.command}: {err}", file=sys.stderr)
        return 2
    except PenguinRunError as err:
        print(f"penguins {args.command}: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno not in PATH_ERRORS or err.filename is None:
            raise
        print(f"penguins {args.command}: {err.strerror}: {err.filename}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
