"""Stage 2, prepare: clean, encode, scale, split and oversample with Spark DataFrames.

Two changes from the lab, both for honest figures:

* the island vocabulary is sorted and saved (the lab's ``collect_set`` order changes between
  runs, so index 1 meant different islands on different days);
* the data is split first (stratified by species, seeded) and only the training split is
  oversampled (the lab oversampled before splitting, so copies of test rows landed in training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from .errors import PenguinInputError
from .features import COLUMNS, FEATURES, LABEL, MEASUREMENT, SCALING, SPECIES, is_measurement
from .layout import Handover, Lab, write_json


@dataclass
class PrepareReport:
    rows: int  # complete rows
    train_rows: int  # before oversampling
    test_rows: int
    oversampled_rows: int
    islands: list[str]
    warnings: list[str]

    def summary(self) -> str:
        return "\n".join(
            [
                f"{self.rows} complete rows; islands {dict(enumerate(self.islands))}",
                f"split: {self.train_rows} train / {self.test_rows} test; "
                f"train oversampled to {self.oversampled_rows} rows",
                *(f"WARNING: {w}" for w in self.warnings),
            ]
        )


def read_raw(spark: SparkSession, path: str | Path) -> DataFrame:
    schema = StructType([StructField(c, StringType()) for c in COLUMNS])
    return spark.read.csv(str(path), header=True, schema=schema)


def clean(raw: DataFrame) -> DataFrame:
    """Drop incomplete rows and cast measurements to float, species to int."""
    measurements = [c for c in COLUMNS if c not in ("Island", LABEL)]
    return raw.dropna().select(
        F.col("Island"),
        *(F.col(c).cast("float").alias(c) for c in measurements),
        F.col(LABEL).cast("int").alias(LABEL),
    )


def island_vocabulary(df: DataFrame) -> list[str]:
    """Islands in sorted order: index i always means the same island."""
    return sorted(r["Island"] for r in df.select("Island").distinct().collect())


def encode(df: DataFrame, islands: list[str]) -> DataFrame:
    """Island → its index in ``islands``; flipper and mass scaled near the bill measurements."""
    index = F.create_map(*(x for i, name in enumerate(islands) for x in (F.lit(name), F.lit(i))))
    return df.select(
        index[F.col("Island")].cast("float").alias("IslandIdx"),
        F.col("CulmenLength"),
        F.col("CulmenDepth"),
        (F.col("FlipperLength") / SCALING["FlipperLength"]).cast("float").alias("FlipperScaled"),
        (F.col("BodyMass") / SCALING["BodyMass"]).cast("float").alias("MassScaled"),
        F.col(LABEL),
    )


def stratified_split(df: DataFrame, test_fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Exactly ``round(n * test_fraction)`` rows of each species go to test.

    Rows are ordered within each species by a seeded hash of their values, so the split depends
    on the seed and the data only, not on how Spark partitions the file.
    """
    key = F.xxhash64(F.lit(seed), *FEATURES, LABEL)
    by_species = Window.partitionBy(LABEL)
    ranked = df.withColumn("_key", key).withColumn(
        "_rank", F.row_number().over(by_species.orderBy("_key", *FEATURES))
    )
    ranked = ranked.withColumn(
        "_n_test", F.floor(F.count("*").over(by_species) * test_fraction + 0.5)
    )
    test = ranked.where(F.col("_rank") <= F.col("_n_test")).drop("_rank", "_n_test")
    train = ranked.where(F.col("_rank") > F.col("_n_test")).drop("_rank", "_n_test")
    return train, test


def oversample(train: DataFrame, copies: int) -> DataFrame:
    """``copies`` copies of the training rows, one after the other, as the lab's union does."""
    copy = F.explode(F.sequence(F.lit(0), F.lit(copies - 1))).alias("_copy")
    return train.select("*", copy)


def split_sizes(data: DataFrame, test_fraction: float) -> dict[int, tuple[int, int]]:
    """``{species: (train rows, test rows)}`` the split will give; one Spark job.

    Refuses, with one line, data from which no valid split can be built: no complete row, a
    measurement that is not a finite positive number, or a species too small to be in both
    the training and the test split.
    """
    measurements = [c for c in COLUMNS if c not in ("Island", LABEL)]
    stats = data.groupBy(LABEL).agg(
        F.count("*").alias("rows"),
        *(F.min(c).alias(f"min_{c}") for c in measurements),
        *(F.max(c).alias(f"max_{c}") for c in measurements),
    )
    sizes = {}
    for row in stats.collect():
        for c in measurements:
            low, high = row[f"min_{c}"], row[f"max_{c}"]
            if not (is_measurement(low) and is_measurement(high)):
                raise PenguinInputError(
                    f"column {c}: values from {low} to {high}; every measurement must be "
                    + MEASUREMENT
                )
        n_test = math.floor(row["rows"] * test_fraction + 0.5)
        sizes[row[LABEL]] = (row["rows"] - n_test, n_test)
    if not sizes:
        raise PenguinInputError("no complete rows: every row has a missing value")
    small = [f"{SPECIES[s]} ({sum(n)} rows)" for s, n in sorted(sizes.items()) if 0 in n]
    if small:
        raise PenguinInputError(
            f"too few complete rows to have every species in both train and test at "
            f"test_fraction {test_fraction}: {', '.join(small)}"
        )
    return sizes


def split_table(sizes: dict[int, tuple[int, int]]):
    """Rows per species in each split, as a small pandas table to display."""
    import pandas as pd

    rows = [(SPECIES[s], train, test) for s, (train, test) in sorted(sizes.items())]
    return pd.DataFrame(rows, columns=["species", "train", "test"])


def write_ordered(df: DataFrame, path: Path, order: list[str]) -> None:
    """One Parquet file whose row order is ``order``: training reads batches in this order."""
    df.coalesce(1).sortWithinPartitions(*order).select(*FEATURES, LABEL).write.parquet(str(path))


def save_prepared(
    handover: Handover,
    lab: Lab,
    train: DataFrame,
    test: DataFrame,
    islands: list[str],
    sizes: dict[int, tuple[int, int]],
) -> PrepareReport:
    """Write the oversampled training split, the test split and features.json; commit them."""
    # Spark writes its Parquet folders straight into the lab folder: on Databricks it writes
    # volumes through cloud storage, not the FUSE mount.
    write_ordered(train, lab.train, ["_copy", "_key"])
    write_ordered(test, lab.test, ["_key"])
    copies = handover.parameters["oversample"]
    train_rows = sum(n for n, _ in sizes.values())
    test_rows = sum(n for _, n in sizes.values())
    warnings = [
        f"species {s} has no complete rows" for i, s in enumerate(SPECIES) if i not in sizes
    ]
    spec = {
        "features": FEATURES,
        "label": LABEL,
        "species": SPECIES,
        "islands": islands,
        "scaling": SCALING,
        **handover.parameters,
        "rows": {
            "complete": train_rows + test_rows,
            "train": train_rows,
            "test": test_rows,
            "train_oversampled": train_rows * copies,
            "per_species": {
                SPECIES[s]: {"train": train, "test": test} for s, (train, test) in sizes.items()
            },
        },
        "warnings": warnings,
    }
    write_json(handover.local / lab.features.name, spec)
    handover.commit()
    return PrepareReport(
        train_rows + test_rows, train_rows, test_rows, train_rows * copies, islands, warnings
    )


def prepare(
    spark: SparkSession,
    lab: Lab,
    oversample_copies: int = 4,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> PrepareReport:
    """The whole stage, as notebook 02 runs it step by step: ``lab.raw`` to ``prepared/``."""
    inputs = lab.require("raw")
    parameters = {"oversample": oversample_copies, "test_fraction": test_fraction, "seed": seed}
    handover = Handover(lab.folder("prepared"), "02_prepare", parameters, inputs)
    data = clean(read_raw(spark, lab.raw)).cache()
    islands = island_vocabulary(data)
    sizes = split_sizes(data, test_fraction)
    train, test = stratified_split(encode(data, islands), test_fraction, seed)
    report = save_prepared(
        handover, lab, oversample(train, oversample_copies), test, islands, sizes
    )
    data.unpersist()
    return report
