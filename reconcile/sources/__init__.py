"""Where the logs come from: one module per log API, one engine, one snapshot.

base.py           the LogSource protocol every source implements
choose.py         which source a run uses (--source, else the credentials given)
token.py          GET /api/log/token, paged (the seed's deployment)
token_unpaged.py  GET /api/log/token answering a plain list (upstream new-api)
self.py           GET /api/log/self with a user's access token
admin.py          GET /api/log/ with an administrator's access token
user.py           what self and admin share (access token, New-Api-User, filters)
paged.py          one fetch of a paged API: scopes, id scheme, the gateway's own sum
stable.py         reading by id: windows, pages in parallel, repairs
content.py        reading by content: windows of one page, multisets
engine.py         what every reader shares: URLs, page checks, splitting, scheme
http.py           one request: retries, deadline, answers classified
items.py          gateway items to the logs table, redacted, with row keys
database.py       the gateway's own database, read a day at a time (dbconn, dbframe, dsn)
fetch_into.py     a fetch straight into a snapshot on disk, a day at a time from a database
snapshot.py       the fetched logs stored and verified, one Parquet file per local day:
                  snapshot_manifest.py, snapshot_write.py (writer, copy), snapshot_read.py
                  (SnapshotStore: the snapshot as a LogStore)
progress.py       progress on stderr
"""
