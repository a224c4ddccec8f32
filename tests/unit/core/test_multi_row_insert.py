"""Which statements SQLite sends as multi-row INSERTs (store/database.py)."""

from __future__ import annotations

from loopai.core.store.database import _multi_row
from loopai.core.store.executions import EXECUTIONS


def test_a_one_row_insert_of_numbered_parameters_in_order_splits() -> None:
    sql = EXECUTIONS.insert_sql + " ON CONFLICT (id) DO NOTHING"
    split = _multi_row(sql)
    assert split is not None
    head, width, tail = split
    assert head.startswith("INSERT INTO executions (id, task_id") and head.endswith(" VALUES ")
    assert width == len(EXECUTIONS.fields)
    assert tail == " ON CONFLICT (id) DO NOTHING"


def test_anything_else_goes_row_by_row() -> None:
    assert _multi_row("INSERT INTO t (a, b) VALUES ($2, $1)") is None
    assert _multi_row("INSERT INTO t (a, b) VALUES ($1, 3)") is None
    assert _multi_row("INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = $1") is None
    assert _multi_row("UPDATE t SET a = $1 WHERE b = $2") is None
    assert _multi_row("INSERT INTO t (a) SELECT $1") is None
