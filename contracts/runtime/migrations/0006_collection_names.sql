-- Issue 8: a list's name is unique as a person reads it (case and surrounding spaces
-- aside), so "Prospects" and " prospects " cannot both exist.

-- Lists that already share a name keep it on the oldest; the others get their id's
-- first eight hex digits appended, so the index can be built and no list is lost.
UPDATE collections c
   SET name = c.name || ' (' || left(c.id::text, 8) || ')'
 WHERE EXISTS (
    SELECT 1 FROM collections o
     WHERE lower(btrim(o.name)) = lower(btrim(c.name))
       AND (o.created_at, o.id) < (c.created_at, c.id)
 );

CREATE UNIQUE INDEX collections_name_key ON collections (lower(btrim(name)));
