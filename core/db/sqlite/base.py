"""Django's SQLite backend on a SQLite that can load extensions, with sqlite-vec loaded.

Python's own `sqlite3` on many systems (this one included) is built without
`enable_load_extension`, so it cannot load sqlite-vec. `pysqlite3-binary`
ships the same DB-API module on a current SQLite (with FTS5) that can; this
backend is Django's own with that module swapped in, and every new connection
loads sqlite-vec before Django uses it.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping
from itertools import tee
from typing import Any

import pysqlite3.dbapi2 as Database
import sqlite_vec
from django.db.backends.sqlite3 import base
from django.db.backends.sqlite3._functions import register as register_functions
from django.utils.asyncio import async_unsafe

# The same conversions Django registers on the standard module.
Database.register_converter("bool", b"1".__eq__)
Database.register_converter("date", base.decoder(base.parse_date))
Database.register_converter("time", base.decoder(base.parse_time))
Database.register_converter("datetime", base.decoder(base.parse_datetime))
Database.register_converter("timestamp", base.decoder(base.parse_datetime))
Database.register_adapter(decimal.Decimal, str)
Database.register_adapter(datetime.date, base.adapt_date)
Database.register_adapter(datetime.datetime, base.adapt_datetime)


class SQLiteCursorWrapper(Database.Cursor):
    """Django's cursor wrapper ("format"/"pyformat" placeholders to SQLite's), on this module's cursor."""

    convert_query = base.SQLiteCursorWrapper.convert_query

    def execute(self, query: str, params: Any = None) -> Any:
        if params is None:
            return super().execute(query)
        param_names = list(params) if isinstance(params, Mapping) else None
        return super().execute(self.convert_query(query, param_names=param_names), params)

    def executemany(self, query: str, param_list: Any) -> Any:
        peekable, param_list = tee(iter(param_list))
        params = next(peekable, None)
        param_names = list(params) if params and isinstance(params, Mapping) else None
        return super().executemany(self.convert_query(query, param_names=param_names), param_list)


class DatabaseWrapper(base.DatabaseWrapper):
    Database = Database

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params["detect_types"] = Database.PARSE_DECLTYPES | Database.PARSE_COLNAMES
        return params

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        conn = Database.connect(**conn_params)
        conn.enable_load_extension(True)
        try:
            sqlite_vec.load(conn)
        finally:
            conn.enable_load_extension(False)
        register_functions(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA legacy_alter_table = OFF")
        for init_command in self.init_commands:
            if init_command := init_command.strip():
                conn.execute(init_command)
        return conn

    def create_cursor(self, name: str | None = None) -> Any:
        return self.connection.cursor(factory=SQLiteCursorWrapper)
