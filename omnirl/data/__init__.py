"""Step-wise-supervision data: the schema and the checksummed, memory-mapped sequence store.

``schema`` defines the columns (``FIELDS``); ``store`` writes them shard by shard
(``DatasetWriter``, resumable) and reads them back without copying (``Dataset``).
``python -m omnirl.data verify DIR`` checks every shard of a dataset.
"""

from omnirl.data.schema import (FIELDS, SCHEMA_NAME, SCHEMA_VERSION, SEQUENCE_FIELDS, STEP_FIELDS,
                                column_specs, field_table, obs_dtype, schema_markdown,
                                task_hash_bytes, task_hash_hex)
from omnirl.data.store import Dataset, DatasetHeader, DatasetWriter, read_manifest, verify

__all__ = ["FIELDS", "SCHEMA_NAME", "SCHEMA_VERSION", "SEQUENCE_FIELDS", "STEP_FIELDS", "Dataset",
           "DatasetHeader", "DatasetWriter", "column_specs", "field_table", "obs_dtype",
           "read_manifest", "schema_markdown", "task_hash_bytes", "task_hash_hex", "verify"]
