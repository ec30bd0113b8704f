"""The catalog: collections and companies.

- `routes.py`: GET/POST /collections, GET /collections/{id}, /collections/{id}/companies,
  GET /companies. Its SQL: `sql.py`.
- `sql.py`: every statement on collections and companies the gateway runs
  (also what POST /moves checks exists: `missing_for_move`), `conn=` passed in.
"""
