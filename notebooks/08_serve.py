# Databricks notebook source
# MAGIC %md
# MAGIC # 08 Serve: the champion behind a real-time endpoint
# MAGIC
# MAGIC Serves the registered model's version that `05_evaluate` made `champion` over HTTP and asks
# MAGIC it about one penguin. On Databricks: creates the model serving endpoint `endpoint_name`, or
# MAGIC points it at the new version (CPU, size Small, scale to zero on dev), waits until it is
# MAGIC ready and queries it with the SDK. Elsewhere: starts MLflow's own scoring server on a
# MAGIC localhost port, sends the same requests over HTTP, and stops it. Both take
# MAGIC `{"dataframe_records": [...]}`, `{"dataframe_split": ...}` or `{"inputs": ...}` and answer
# MAGIC under `predictions`. A version that did not become champion leaves the endpoint as it was.
# MAGIC Task of the `penguin_training` job after `05_evaluate`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `endpoint_name` | yes on Databricks | `predict-penguin` | serving endpoint; the bundle names one per target and user |
# MAGIC | `scale_to_zero` | no | `true` | let an idle endpoint scale to zero (dev); `false` keeps it warm |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.text("endpoint_name", "predict-penguin", "Serving endpoint")
dbutils.widgets.dropdown("scale_to_zero", "true", ["true", "false"], "Scale to zero")

# COMMAND ----------

# DBTITLE 1,Read parameters
from penguin_classifier import params
from penguin_classifier.runtime import on_databricks
from penguin_classifier.serving import endpoint_name

lab = params.lab_dir(dbutils)
endpoint = endpoint_name(params.text(dbutils, "endpoint_name"), "parameter endpoint_name")
scale_to_zero = params.choice(dbutils, "scale_to_zero", ["true", "false"]) == "true"

# COMMAND ----------

# DBTITLE 1,Which version is champion
from penguin_classifier import tracking
from penguin_classifier.jsonfile import read_json

lab.require("trained", "evaluation")
registration = read_json(lab.folder("evaluation") / tracking.MLFLOW_JSON)  # 05's registration
model_name, version = registration["registered_model"], registration["version"]
if registration["alias"] != "champion":
    message = f"{model_name} version {version} is not champion: endpoint {endpoint} left as it was"
    print(message)
    dbutils.notebook.exit(message)
print(f"champion: {model_name} version {version}")

# COMMAND ----------

# DBTITLE 1,Serve it
from penguin_classifier import serving

if on_databricks():
    from databricks.sdk import WorkspaceClient

    w = WorkspaceClient()  # the notebook's own credentials
    print(serving.deploy(w, endpoint, model_name, version, scale_to_zero))
else:  # MLflow's scoring server, the one `mlflow models serve` runs, on a localhost port
    import mlflow

    tracking.reopen(lab, "trained")  # 04's store
    server = serving.LocalServer(mlflow.pyfunc.load_model(f"models:/{model_name}/{version}"))
    print(f"serving {model_name} version {version} at {server.start().url}/invocations")

# COMMAND ----------

# DBTITLE 1,Ask it about the lab's new penguin and the lab's example
import json

import pandas as pd
from penguin_classifier.predict import Penguin

new_penguin = read_json(lab.evaluation)["new_penguin"]["input"]  # 05's penguin
records = [Penguin.parse(new_penguin).frame().iloc[0].to_dict(), serving.EXAMPLE]
print(json.dumps({"dataframe_records": records}))
if on_databricks():
    predictions = serving.ask_endpoint(w, endpoint, records)
else:
    predictions = serving.ask_local(server.url, records)
display(pd.DataFrame(predictions))
dbutils.jobs.taskValues.set("served_version", version)

# COMMAND ----------

# DBTITLE 1,Stop the local server
if not on_databricks():
    server.stop()
