"""Hot statements built by peewee once per kind of database, then run with new values.

A preparation's writes are the same few statements over and over, and peewee builds each one's
SQL anew every time. Creating 500 preparations, starting them and storing one log batch each took
1.39 s of CPU, 0.93 s of it peewee building SQL and 0.16 s SQLite running it; with the statements
built once, 0.22 s. That CPU is the database thread's, which shares the GIL with the event loop:
while a thousand preparations run, a write waits for every write ahead of it in its group
commit, and `Prepare` waits for its write. Built here, the SQL stays peewee's (its quoting, its
placeholders, the models' columns and constant defaults); only the values change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import peewee

from serverprep.service.store.models import db


class Slot:
    """Where a value given at each run goes; the SQL is built with these in the values' places."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


class _Values:
    """What ``build`` receives: ``v.name`` is the place of the value named ``name``."""

    def __init__(self) -> None:
        self._names: set[str] = set()  # private: a value may well be called "names"

    def __getattr__(self, name: str) -> peewee.Value:
        self._names.add(name)
        return peewee.Value(Slot(name), converter=False, unpack=False)


class Compiled:
    """A statement that ``build`` makes from ``v``, whose attributes stand for the values
    (``lambda v: Row.update(state=v.state).where(Row.id == v.id)``), built once per kind of
    database and run on the models' database with one value per name.

    The values are bound as they are given, without the fields' conversions: give what the column
    stores (a state's ``.value``, JSON as text). An insert's columns left out take the model's
    defaults as they were when the statement was built, so a model with a callable default is
    refused.
    """

    def __init__(self, build: Callable[[Any], peewee.Query]):
        self.build = build
        self.names: frozenset[str] | None = None
        self._built: dict[type, tuple[str, list[tuple[bool, Any]]]] = {}

    def _for(self, database: peewee.Database) -> tuple[str, list[tuple[bool, Any]]]:
        built = self._built.get(type(database))
        if built is None:
            v = _Values()
            query = self.build(v)
            if isinstance(query, peewee.ModelInsert) and any(callable(f.default) for f in query.model._meta.fields.values()):
                raise ValueError(f"{query.model.__name__} has a callable default, which a compiled insert would freeze")
            sql, params = database.get_sql_context().sql(query).query()
            self.names = frozenset(v._names)
            built = self._built[type(database)] = (sql, [(True, p.name) if isinstance(p, Slot) else (False, p) for p in params])
        return built

    def sql(self, database: peewee.Database | None = None) -> str:
        return self._for(database or db.obj)[0]

    def run(self, **values: Any) -> Any:
        """Execute on the models' database through peewee, which turns the driver's errors into its
        own (an ``IntegrityError``, say); the cursor."""
        database = db.obj
        sql, plan = self._for(database)
        if values.keys() != self.names:
            raise TypeError(f"values for {sorted(self.names or ())} expected, got {sorted(values)}")
        return database.execute_sql(sql, [values[v] if slot else v for slot, v in plan])

    def rows_affected(self, **values: Any) -> int:
        return int(self.run(**values).rowcount)
