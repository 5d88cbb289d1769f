"""The ``penguins`` command: run the job locally, predict, benchmark, submit to Databricks."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from .errors import PenguinInputError, PenguinRunError


def parse_assignments(items: list[str], flag: str) -> dict[str, str]:
    """``["epochs=5", "seed=1"]`` → ``{"epochs": "5", "seed": "1"}``."""
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise PenguinInputError(f"{flag} {item!r}: expected NAME=VALUE")
        values[name] = value
    return values


def cmd_run(args) -> int:
    from .jobs import local_tasks
    from .layout import Lab, read_json
    from .runner import run_tasks

    variables = parse_assignments(args.var, "--var")
    parameters = {} if args.lab_dir is None else {"lab_dir": args.lab_dir}
    if args.source is not None:
        variables["source_url"] = args.source
    overrides = parse_assignments(args.param, "--param")
    for name, value in (("epochs", args.epochs), ("seed", args.seed)):
        if value is not None:
            overrides[name] = str(value)
    start = time.perf_counter()
    tasks = local_tasks(variables, args.target, parameters)
    print("tasks (databricks.yml): " + " -> ".join(t.key for t in tasks))
    results = run_tasks(tasks, overrides)
    print("\n===== summary =====")
    for result in results:
        print(f"{result.key:<12} {result.seconds:6.1f} s")
    print(f"{'total':<12} {time.perf_counter() - start:6.1f} s (Spark start-up included)")
    lab = Lab(overrides.get("lab_dir") or tasks[0].params["lab_dir"])
    if lab.distributed_metrics.exists():
        d = read_json(lab.distributed_metrics)
        print(
            f"distributed ({d['backend']}, {d['num_processes']} processes): test accuracy "
            f"{d['accuracy']:.4f}, {d['wall_s']:.1f} s"
        )
    if lab.evaluation.exists():
        evaluation = read_json(lab.evaluation)
        new = evaluation["new_penguin"]
        print(f"test accuracy: {evaluation['accuracy']:.4f} on {evaluation['rows']} held-out rows")
        print(f"new penguin {new['input']}: {new['species']}")
    return 0


def number_arg(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise PenguinInputError(f"--{name}: {value!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise PenguinInputError(f"--{name}: {value} is not a positive number")
    return number


def cmd_predict(args) -> int:
    from .layout import Lab
    from .predict import Penguin, predict

    penguin = Penguin(
        args.island,
        number_arg("culmen-length", args.culmen_length),
        number_arg("culmen-depth", args.culmen_depth),
        number_arg("flipper-length", args.flipper_length),
        number_arg("body-mass", args.body_mass),
    )
    species, probabilities = predict(Lab(args.lab_dir), penguin)
    if args.json:
        print(json.dumps({"species": species, "probabilities": probabilities}))
    else:
        print(species)
        for name, p in probabilities.items():
            print(f"  {name:<10} {p:.4f}")
    return 0


def cmd_bench(args) -> int:
    from .bench import bench, format_bench

    if args.epochs < 1:
        raise PenguinInputError(f"--epochs: {args.epochs} is below 1")
    if args.seeds:
        from .bench import seed_accuracies

        rows = seed_accuracies(args.seeds, args.epochs, log=None if args.json else print)
        accuracies = [r["accuracy"] for r in rows]
        summary = {"seeds": rows, "mean": sum(accuracies) / len(rows), "min": min(accuracies)}
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"mean {summary['mean']:.4f}  min {summary['min']:.4f} over {len(rows)} seeds")
        return 0
    if args.distributed:
        from .bench_distributed import HEADER, bench_distributed

        if not args.json:
            print(HEADER)
        rows = bench_distributed(args.epochs, log=None if args.json else print)
        if args.json:
            print(json.dumps(rows))
        return 0
    result = bench(args.epochs, args.seed)
    print(json.dumps(result) if args.json else format_bench(result))
    return 0


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


def cmd_submit(args) -> int:
    from . import submit

    return submit.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="penguins", description="Penguin species classifier: the Databricks deep learning lab."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="run the job of databricks.yml locally: its tasks, order and parameters"
    )
    run.add_argument("--lab-dir", help="lab folder (default: ./lab)")
    run.add_argument("--source", help="source CSV: path or http(s) URL (default: shipped data)")
    run.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable of databricks.yml (repeatable), e.g. --var distribute_backend=torch",
    )
    run.add_argument("--target", default="dev", help="bundle target (default: dev)")
    run.add_argument("--epochs", type=int, help="training epochs (default: 100)")
    run.add_argument("--seed", type=int, help="seed of the split and initial weights (default: 0)")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set this widget in every stage that has it (repeatable)",
    )
    run.set_defaults(func=cmd_run)

    predict = sub.add_parser("predict", help="species of one penguin from its measurements")
    predict.add_argument("--lab-dir", default="lab", help="lab folder with a trained model")
    predict.add_argument("--island", required=True, help="Biscoe, Dream or Torgersen")
    predict.add_argument("--culmen-length", required=True, metavar="MM")
    predict.add_argument("--culmen-depth", required=True, metavar="MM")
    predict.add_argument("--flipper-length", required=True, metavar="MM")
    predict.add_argument("--body-mass", required=True, metavar="G")
    predict.add_argument("--json", action="store_true", help="print one JSON object")
    predict.set_defaults(func=cmd_predict)

    bench = sub.add_parser("bench", help="time the lab's training loop against this project's")
    bench.add_argument("--epochs", type=int, default=100)
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument(
        "--seeds",
        type=int,
        default=0,
        metavar="N",
        help="held-out accuracy at the defaults for seeds 0..N-1 instead of timing loops",
    )
    bench.add_argument(
        "--distributed",
        action="store_true",
        help="1 process against 2 per backend, on the lab's data and on a x200 training set",
    )
    bench.set_defaults(func=cmd_bench)

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


if __name__ == "__main__":
    sys.exit(main())
