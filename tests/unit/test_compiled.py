"""Statements built by peewee once (service/store/compiled.py): each value lands where peewee would
have put it, constants and defaults keep peewee's conversions, the SQL is built once per kind of
database, and a wrong set of values or a frozen callable default is refused. Real SQLite in
memory; the store's tests run the compiled writes themselves on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import peewee
import pytest

from serverprep.service.store.compiled import Compiled
from serverprep.service.store.models import db


class Thing(peewee.Model):
    name = peewee.CharField(unique=True)
    size = peewee.IntegerField(default=7)
    seen_at = peewee.DoubleField(null=True)
    changed_at = peewee.DoubleField(null=True)
    flag = peewee.BooleanField(default=False)
    note = peewee.TextField(default="")

    class Meta:
        database = db


@pytest.fixture
def database():
    saved = db.obj
    database = peewee.SqliteDatabase(":memory:")
    db.initialize(database)
    database.create_tables([Thing])
    yield database
    database.close()
    db.initialize(saved)


def test_values_land_where_peewee_puts_them_and_defaults_are_kept(database):
    insert = Compiled(lambda v: Thing.insert(name=v.name, seen_at=v.at, changed_at=v.at, note=v.note))
    insert.run(name="a", at=1.5, note="x")
    Thing.insert(name="b", seen_at=1.5, changed_at=1.5, note="x").execute()  # peewee's own way
    a, b = (Thing.get(Thing.name == n) for n in "ab")
    assert (a.size, a.seen_at, a.changed_at, a.flag, a.note) == (b.size, b.seen_at, b.changed_at, b.flag, b.note) == (7, 1.5, 1.5, False, "x")
    # A constant and an expression beside the values, and a value used twice.
    touch = Compiled(lambda v: Thing.update(size=Thing.size + 1, flag=True, changed_at=v.at, seen_at=v.at).where(Thing.name == v.name))
    assert touch.rows_affected(name="a", at=9.0) == 1
    assert touch.rows_affected(name="nobody", at=9.0) == 0
    a = Thing.get(Thing.name == "a")
    assert (a.size, a.flag, a.seen_at, a.changed_at) == (8, True, 9.0, 9.0)
    assert Thing.get(Thing.name == "b").size == 7


def test_the_sql_is_built_once_per_kind_of_database(database):
    builds = []

    def build(v):
        builds.append(1)
        return Thing.select(Thing.size).where(Thing.name == v.name)

    find = Compiled(build)
    Thing.create(name="a")
    assert [find.run(name="a").fetchone() for _ in range(3)] == [(7,)] * 3
    assert len(builds) == 1
    assert find.sql(peewee.PostgresqlDatabase("elsewhere")) == 'SELECT "t1"."size" FROM "thing" AS "t1" WHERE ("t1"."name" = %s)'
    assert len(builds) == 2
    assert find.sql() == 'SELECT "t1"."size" FROM "thing" AS "t1" WHERE ("t1"."name" = ?)'
    assert len(builds) == 2


def test_a_wrong_set_of_values_is_refused(database):
    touch = Compiled(lambda v: Thing.update(seen_at=v.at).where(Thing.name == v.name))
    with pytest.raises(TypeError, match=r"values for \['at', 'name'\] expected, got \['name'\]"):
        touch.run(name="a")
    with pytest.raises(TypeError, match=r"got \['at', 'name', 'typo'\]"):
        touch.run(name="a", at=1.0, typo=2)


def test_the_drivers_errors_come_as_peewees(database):
    insert = Compiled(lambda v: Thing.insert(name=v.name))
    insert.run(name="a")
    with pytest.raises(peewee.IntegrityError):
        insert.run(name="a")


def test_a_callable_default_is_not_frozen_into_the_statement(database):
    class Stamped(peewee.Model):
        at = peewee.DoubleField(default=time.time)

        class Meta:
            database = db

    with pytest.raises(ValueError, match="Stamped has a callable default"):
        Compiled(lambda v: Stamped.insert(id=v.id)).run(id=1)
