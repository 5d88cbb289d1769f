"""Stage 2, prepare: clean, encode, scale, split and oversample with Spark DataFrames.

Two changes from the lab, both for honest figures:

* the island vocabulary is sorted and saved (the lab's ``collect_set`` order changes between
  runs, so index 1 meant different islands on different days);
* the data is split first (stratified by species, seeded) and only the training split is
  oversampled (the lab oversampled before splitting, so copies of test rows landed in training).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from .ingest import COLUMNS, SPECIES
from .layout import Lab, atomic_dir, write_json

FEATURES = ["IslandIdx", "CulmenLength", "CulmenDepth", "FlipperScaled", "MassScaled"]
LABEL = "Species"
SCALING = {"FlipperLength": 10.0, "BodyMass": 100.0}  # FlipperScaled = FlipperLength / 10, ...


@dataclass
class PrepareReport:
    rows: int  # complete rows
    train_rows: int  # before oversampling
    test_rows: int
    oversampled_rows: int
    islands: list[str]

    def summary(self) -> str:
        return (
            f"{self.rows} complete rows; islands {dict(enumerate(self.islands))}\n"
            f"split: {self.train_rows} train / {self.test_rows} test; "
            f"train oversampled to {self.oversampled_rows} rows"
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


def parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in path.glob("*.parquet"))


def write_ordered(df: DataFrame, path: Path, order: list[str]) -> None:
    """One Parquet file whose row order is ``order``: training reads batches in this order."""
    df.coalesce(1).sortWithinPartitions(*order).select(*FEATURES, LABEL).write.parquet(str(path))


def prepare(
    spark: SparkSession,
    lab: Lab,
    oversample_copies: int = 4,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> PrepareReport:
    """Read ``lab.raw``, write ``lab.prepared_dir`` (train, test, features.json) atomically."""
    lab.require(lab.raw, stage="01_ingest")
    data = clean(read_raw(spark, lab.raw)).cache()
    islands = island_vocabulary(data)
    train, test = stratified_split(encode(data, islands), test_fraction, seed)
    with atomic_dir(lab.prepared_dir) as out:
        write_ordered(
            oversample(train, oversample_copies), out / "train.parquet", ["_copy", "_key"]
        )
        write_ordered(test, out / "test.parquet", ["_key"])
        # Row counts from the Parquet footers: no more Spark jobs for them.
        train_rows = parquet_rows(out / "train.parquet") // oversample_copies
        test_rows = parquet_rows(out / "test.parquet")
        write_json(
            out / "features.json",
            {
                "features": FEATURES,
                "label": LABEL,
                "species": SPECIES,
                "islands": islands,
                "scaling": SCALING,
                "oversample": oversample_copies,
                "test_fraction": test_fraction,
                "seed": seed,
                "rows": {
                    "complete": train_rows + test_rows,
                    "train": train_rows,
                    "test": test_rows,
                    "train_oversampled": train_rows * oversample_copies,
                },
            },
        )
    data.unpersist()
    return PrepareReport(
        train_rows + test_rows, train_rows, test_rows, train_rows * oversample_copies, islands
    )
