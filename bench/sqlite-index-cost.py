#!/usr/bin/env python3
"""CPU time per inserted row of the request log's SQLite table with its indexes of schema 2
(seven), of schema 3 (four) and none: what each index costs the writer thread. Python 3
stdlib only; the table is the engine's (engine/src/reqlog/sqlite.rs), written in batches of
250 in WAL mode as the writer does. Prints one line per repeat.

  python3 bench/sqlite-index-cost.py [--rows 60000] [--repeats 3]
"""

import argparse
import json
import os
import random
import sqlite3
import tempfile
import time

TABLE = """CREATE TABLE requests (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL,
  time_us INTEGER NOT NULL, key_id TEXT, team TEXT, customer TEXT, endpoint TEXT NOT NULL,
  requested_model TEXT, provider TEXT, model TEXT, attempts TEXT NOT NULL,
  status INTEGER NOT NULL, error_type TEXT, prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL,
  cache TEXT NOT NULL, guardrails TEXT NOT NULL, total_us INTEGER NOT NULL, upstream_us INTEGER,
  ttft_us INTEGER, overhead_us INTEGER NOT NULL, stream INTEGER NOT NULL,
  client_disconnected INTEGER NOT NULL, request_body TEXT, response_body TEXT, tool TEXT)"""
INDEX = {
    "time": "CREATE INDEX requests_time ON requests (time_us)",
    "key": "CREATE INDEX requests_key ON requests (key_id, time_us)",
    "team": "CREATE INDEX requests_team ON requests (team, time_us)",
    "customer": "CREATE INDEX requests_customer ON requests (customer, time_us)",
    "model": "CREATE INDEX requests_model ON requests (COALESCE(model, requested_model), time_us)",
    "provider": "CREATE INDEX requests_provider ON requests (provider, time_us)",
    "status": "CREATE INDEX requests_status ON requests (status, time_us)",
}
SCHEMA_2 = list(INDEX)
SCHEMA_3 = ["time", "key", "model", "status"]
COLUMNS = ("request_id,time_us,key_id,team,customer,endpoint,requested_model,provider,model,"
           "attempts,status,error_type,prompt_tokens,completion_tokens,cached_tokens,cost_usd,"
           "cache,guardrails,total_us,upstream_us,ttft_us,overhead_us,stream,"
           "client_disconnected,request_body,response_body,tool")


def rows(n):
    base = 1_700_000_000_000_000
    guardrails = json.dumps([{"name": "pii", "action": "flag"}])
    return [(f"req-{k:016x}", base + k * 200, f"vk-{random.randrange(1000)}",
             f"team-{random.randrange(50)}", f"cust-{random.randrange(10)}", "chat", "gpt-4o",
             "openai", "gpt-4o", "[]", 200, None, 12, 20, 0, 0.00012, "off", guardrails, 900,
             700, None, 25, 0, 0, None, None, None) for k in range(n)]


def cpu_us_per_row(indexes, data, batch=250):
    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(os.path.join(d, "logs.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(TABLE)
        for name in indexes:
            conn.execute(INDEX[name])
        insert = f"INSERT INTO requests ({COLUMNS}) VALUES ({','.join('?' * 27)})"
        started = time.process_time()
        for i in range(0, len(data), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, data[i:i + batch])
            conn.execute("COMMIT")
        spent = time.process_time() - started
        conn.close()
    return spent / len(data) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    data = rows(args.rows)
    for _ in range(args.repeats):
        cells = [f"{label} {cpu_us_per_row(indexes, data):.1f}"
                 for label, indexes in [("7 indexes (schema 2)", SCHEMA_2),
                                        ("4 indexes (schema 3)", SCHEMA_3), ("none", [])]]
        print("CPU µs per row: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
