"""The catalog: collections and companies.

- `routes.py`: GET/POST /collections, GET /collections/{id}, /collections/{id}/companies,
  GET /companies. Its SQL: `sql.py`.
- `sql.py`: every statement on collections and companies the gateway runs (also
  the demo data), `conn=` passed in; what a job's request names must exist is checked
  with the job's other checks (gateway/jobs/sql.py: `admission`).
- `demo.py`: the `conveyor seed` / `conveyor slowdb` verbs: demo companies and lists,
  and the 100 ms/row insert trigger of the classic version of this task.
"""
