"""The catalog: collections and companies.

- `routes.py`: GET/POST /collections, GET /collections/{id}, /collections/{id}/companies,
  GET /companies. Its SQL: `sql.py`.
- `sql.py`: every statement on collections and companies the gateway runs
  (also what POST /moves checks exists: `missing_for_move`; the demo data), `conn=`
  passed in.
- `demo.py`: the `conveyor seed` / `conveyor slowdb` verbs: demo companies and lists,
  and the 100 ms/row insert trigger of the classic version of this task.
"""
